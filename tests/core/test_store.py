"""The store behind throttling and revocation, on both backends.

Redis tests need a reachable Redis at REDIS_URL: skipped without one on a developer's
machine, failed (never skipped) in CI, where a missing Redis is a broken setup.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest

from app.core.store import Limit, Store, platform_key, tenant_key
from tests.app_fixtures import SHARED_REDIS


def _redis_url() -> str | None:
    url = os.environ.get("REDIS_URL")
    if url is None and os.environ.get("CI") == "true":
        pytest.fail("CI=true but REDIS_URL is not set: the Redis tests must run in CI")
    return url


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        backend = Store.from_url(None)
    else:
        url = _redis_url()
        if url is None:
            pytest.skip("REDIS_URL is not set (CI sets it; see README)")
        backend = Store.from_url(url, SHARED_REDIS)
        try:
            await backend.ping()
        except Exception as exc:
            await backend.close()
            if os.environ.get("CI") == "true":
                pytest.fail(f"CI=true but Redis at REDIS_URL is unreachable: {exc}")
            pytest.skip(f"Redis at REDIS_URL is unreachable: {exc}")
    try:
        yield backend
    finally:
        await backend.close()


async def test_redis_is_the_shared_backend(store: Store) -> None:
    assert store.shared is (store._cache.NAME != "memory")


async def test_values_round_trip_as_json(store: Store) -> None:
    key = tenant_key(uuid.uuid4(), "value")
    await store.put(key, {"a": [1, "two"], "b": None}, ttl_seconds=60)

    assert await store.get(key) == {"a": [1, "two"], "b": None}
    await store.delete(key)
    assert await store.get(key) is None


async def test_window_counters_count_per_key(store: Store) -> None:
    key, other = platform_key("t", uuid.uuid4().hex), platform_key("t", uuid.uuid4().hex)

    assert (await store.count(key, window_seconds=60)).count == 0
    assert (await store.hit(key, window_seconds=60)).count == 1
    assert (await store.hit(key, window_seconds=60, amount=2)).count == 3
    counted = await store.count(key, window_seconds=60)

    assert counted.count == 3
    assert 1 <= counted.resets_in <= 60
    assert (await store.count(other, window_seconds=60)).count == 0


async def test_tenant_keys_carry_the_tenant_and_never_collide() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()

    assert str(a) in tenant_key(a, "x").value
    assert tenant_key(a, "x") != tenant_key(b, "x")
    assert tenant_key(a, "x") != platform_key("x")


async def test_a_tenants_value_is_not_served_under_another_tenant(store: Store) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    await store.put(tenant_key(a, "profile"), "A's", ttl_seconds=60)

    assert await store.get(tenant_key(b, "profile")) is None


def _keys(n: int) -> list[str]:
    return [uuid.uuid4().hex for _ in range(n)]


async def test_concurrent_claims_never_exceed_the_limit(store: Store) -> None:
    # given a limit of 7 and 50 claims racing for it
    limit = Limit(platform_key("claims", uuid.uuid4().hex), 7)

    claims = await asyncio.gather(*(store.claim([limit], window_seconds=60) for _ in range(50)))

    # then exactly 7 were granted, and the count is 7, not 50
    assert sum(c.granted for c in claims) == 7
    assert (await store.count(limit.key, window_seconds=60)).count == 7
    refused = next(c for c in claims if not c.granted)
    assert 1 <= refused.resets_in <= 60
    assert refused.window_keys == ()


async def test_a_claim_counts_on_every_limit_or_on_none(store: Store) -> None:
    a, b = (platform_key("claims", k) for k in _keys(2))
    await store.hit(b, window_seconds=60, amount=2)

    first = await store.claim([Limit(a, 5), Limit(b, 3)], window_seconds=60)
    second = await store.claim([Limit(a, 5), Limit(b, 3)], window_seconds=60)

    assert first.granted
    # b is used up (3 of 3): nothing is counted, not even on a
    assert not second.granted
    assert (await store.count(a, window_seconds=60)).count == 1
    assert (await store.count(b, window_seconds=60)).count == 3


async def test_a_released_claim_is_given_back_once_and_never_below_zero(store: Store) -> None:
    key = platform_key("claims", uuid.uuid4().hex)
    kept = await store.claim([Limit(key, 2)], window_seconds=60)
    given_back = await store.claim([Limit(key, 2)], window_seconds=60)

    await store.release(given_back)
    assert (await store.count(key, window_seconds=60)).count == 1
    # a window that is gone (expired, or dropped) is not recreated below zero
    await store._cache.delete(kept.window_keys[0])
    await store.release(kept)
    assert (await store.count(key, window_seconds=60)).count == 0
    assert await store._cache.get(kept.window_keys[0]) is None


async def test_a_refused_claim_has_nothing_to_release(store: Store) -> None:
    key = platform_key("claims", uuid.uuid4().hex)
    await store.claim([Limit(key, 1)], window_seconds=60)
    refused = await store.claim([Limit(key, 1)], window_seconds=60)

    await store.release(refused)

    assert (await store.count(key, window_seconds=60)).count == 1


async def test_an_add_stores_only_where_nothing_is(store: Store) -> None:
    key = tenant_key(uuid.uuid4(), "session")

    first = await store.add(key, "live", ttl_seconds=60)
    second = await store.add(key, "other", ttl_seconds=60)

    assert (first, second) == (True, False)
    assert await store.get(key) == "live"
