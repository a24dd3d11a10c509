"""The store when Redis dies or freezes: a budget per call, a circuit breaker, process memory
meanwhile, and a replay of what was written there before Redis is read again.

Against a private redis-server this test starts, freezes (SIGSTOP), resumes and kills; the
machine's shared Redis is never touched. Nothing is timed: the breaker's counts say how many
calls reached Redis.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from app.core.ratelimit import Rate, TokenBuckets
from app.core.store import Limit, RedisOptions, RedisUnavailable, Store, platform_key, tenant_key
from tests.redis_server import PrivateRedis, private_redis

# A probe may start at the first call after the breaker opened: the tests drive recovery by
# awaiting it, never by waiting.
OPTIONS = RedisOptions(timeout_ms=50, failures_to_open=3, retry_ms=0)


@pytest.fixture
def redis_server() -> Iterator[PrivateRedis]:
    with private_redis() as server:
        yield server


@pytest.fixture
async def store(redis_server: PrivateRedis) -> AsyncIterator[Store]:
    made = Store.from_url(redis_server.url, OPTIONS)
    try:
        yield made
    finally:
        await made.close()


async def _recover(store: Store) -> None:
    """Let the breaker probe Redis once (a bypassed call starts the probe)."""
    await store.get(platform_key("probe", "trigger"))
    probe = store.breaker.probing
    assert probe is not None
    await probe


async def test_a_dead_redis_costs_three_calls_then_none(
    store: Store, redis_server: PrivateRedis
) -> None:
    # given a value in Redis, then Redis killed
    key = tenant_key(uuid.uuid4(), "value")
    await store.put(key, "before", ttl_seconds=60)
    redis_server.kill()

    # when twenty reads come in
    values = [await store.get(key) for _ in range(20)]

    # then they are answered from memory (which has nothing), and only three reached Redis
    assert values == [None] * 20
    assert store.breaker.is_open
    assert store.breaker.stats.failures == OPTIONS.failures_to_open
    assert store.breaker.stats.bypassed == 20 - OPTIONS.failures_to_open
    assert store.breaker.stats.opened == 1


async def test_a_frozen_redis_costs_three_budgets_then_none(
    store: Store, redis_server: PrivateRedis
) -> None:
    key = tenant_key(uuid.uuid4(), "value")
    await store.put(key, "before", ttl_seconds=60)
    redis_server.freeze()
    try:
        # when concurrent and later reads come in while Redis accepts but never answers
        first = await asyncio.gather(*(store.get(key) for _ in range(OPTIONS.failures_to_open)))
        later = [await store.get(key) for _ in range(20)]

        # then the first ones each waited one budget and failed; nothing after reached Redis
        assert first == [None] * OPTIONS.failures_to_open
        assert later == [None] * 20
        assert store.breaker.stats.failures == OPTIONS.failures_to_open
        assert store.breaker.stats.bypassed == 20
        # readiness is told at once, without a call
        with pytest.raises(RedisUnavailable):
            await store.ping()
        assert store.breaker.stats.failures == OPTIONS.failures_to_open
    finally:
        redis_server.resume()

    # and once Redis answers, a probe closes the breaker and Redis is read again (a probe
    # that started while it was frozen failed; the next one finds it)
    for _ in range(3):
        if store.breaker.is_open:
            await _recover(store)
    assert not store.breaker.is_open
    assert store.breaker.stats.closed == 1
    assert await store.get(key) == "before"


async def test_writes_made_while_redis_was_away_reach_it_before_it_is_read(
    store: Store, redis_server: PrivateRedis
) -> None:
    # given: a cached value, a revocation-like mark and a generation counter in Redis
    tenant = uuid.uuid4()
    cached, mark, generation = (tenant_key(tenant, n) for n in ("cached", "mark", "generation"))
    await store.put(cached, "stale", ttl_seconds=60)
    await store.bump(generation)
    redis_server.freeze()

    try:
        # when: while Redis is frozen, the value is invalidated, the mark set, the counter
        # bumped twice (the first write fails and opens the breaker at once)
        await store.delete(cached)
        assert store.breaker.is_open
        assert store.breaker.stats.failures == 1
        await store.put(mark, 1, ttl_seconds=60)
        await store.bump(generation)
        await store.bump(generation)
        # this process sees its own writes meanwhile
        assert await store.get_many([cached, mark]) == [None, 1]
    finally:
        redis_server.resume()
    await _recover(store)

    # then: Redis has every write, as another server process reading it sees
    other = Store.from_url(redis_server.url, OPTIONS)
    try:
        assert await other.get_many([cached, mark, generation]) == [None, 1, 3]
    finally:
        await other.close()
    assert not store.breaker.is_open


async def test_a_restarted_redis_is_used_again(store: Store, redis_server: PrivateRedis) -> None:
    key = tenant_key(uuid.uuid4(), "value")
    redis_server.kill()
    for _ in range(OPTIONS.failures_to_open):
        await store.get(key)
    assert store.breaker.is_open
    # a probe while it is still down keeps the breaker open
    await _recover(store)
    assert store.breaker.is_open
    assert store.breaker.stats.failed_probes == 1

    # when it is back (empty: killed without persistence)
    redis_server.start()
    await _recover(store)

    # then values written now are in Redis again
    assert not store.breaker.is_open
    await store.put(key, "after", ttl_seconds=60)
    other = Store.from_url(redis_server.url, OPTIONS)
    try:
        assert await other.get(key) == "after"
    finally:
        await other.close()


async def test_limits_keep_bounding_in_memory_while_redis_is_dead(
    store: Store, redis_server: PrivateRedis
) -> None:
    # given Redis dead and the breaker open
    redis_server.kill()
    for _ in range(OPTIONS.failures_to_open):
        await store.get(platform_key("x"))
    buckets = TokenBuckets(store)
    rate = Rate(burst=3, per_minute=1)
    bucket = platform_key("bucket", uuid.uuid4().hex)
    claim = Limit(platform_key("claims", uuid.uuid4().hex), 2)

    # when many takes and claims race
    takes = await asyncio.gather(*(buckets.take(bucket, rate) for _ in range(10)))
    claims = await asyncio.gather(*(store.claim([claim], window_seconds=60) for _ in range(10)))

    # then each limit still holds: never unlimited (counted in this process's memory)
    assert sum(t.allowed for t in takes) == 3
    assert sum(c.granted for c in claims) == 2
    assert store.breaker.stats.failures == OPTIONS.failures_to_open


async def test_an_add_is_never_kept_in_memory_while_redis_is_away(
    store: Store, redis_server: PrivateRedis
) -> None:
    # given: what is added is meant for every process (a live session vouched for)
    key, other = (tenant_key(uuid.uuid4(), "session") for _ in range(2))
    assert await store.add(key, "live", ttl_seconds=10)
    assert not await store.add(key, "live", ttl_seconds=10)
    redis_server.kill()
    for _ in range(OPTIONS.failures_to_open):
        await store.get(key)

    # when an add comes while Redis is away
    added = await store.add(other, "live", ttl_seconds=10)

    # then nothing is stored: this process reads the truth again next time
    assert not added
    assert await store.get(other) is None


async def test_a_read_only_redis_after_a_failover_is_treated_as_away(
    store: Store, redis_server: PrivateRedis
) -> None:
    # given Redis turned into a replica (of nothing reachable): it answers, refuses writes
    admin = Redis.from_url(redis_server.url)
    key = tenant_key(uuid.uuid4(), "mark")
    try:
        await admin.execute_command("REPLICAOF", "127.0.0.1", "1")

        # when a write comes, the breaker opens at once and the write is kept in memory
        await store.put(key, "revoked", ttl_seconds=60)
        assert store.breaker.is_open
        assert await store.get(key) == "revoked"

        # then once Redis is a primary again, the write reaches it before it is read
        await admin.execute_command("REPLICAOF", "NO", "ONE")
        await _recover(store)
        assert not store.breaker.is_open
        assert await admin.get(store.backend_key(key)) == b'"revoked"'
    finally:
        await admin.aclose()
