"""The APQ document cache: bounded in number, size and time, per owner, shared through Redis,
and never trusting a digest (app/core/document_cache.py)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from uuid import uuid4

import pytest

from app.core.document_cache import DocumentCache, sha256_hex
from app.core.settings import Settings
from app.core.store import Store, StoreKey, platform_key, tenant_key
from tests.app_fixtures import SHARED_REDIS
from tests.auth.helpers import store_url

STORES = ["redis", "memory"]


class Clock:
    """A clock the test moves (the memory backend's; Redis keeps its own)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest, app_settings: Settings) -> AsyncIterator[Store]:
    opened = Store.from_url(store_url(request.param, app_settings), SHARED_REDIS)
    try:
        yield opened
    finally:
        await opened.close()


def owner() -> StoreKey:
    """An owner no other test (or run: Redis keeps keys) uses."""
    return platform_key("apq-test", secrets.token_hex(8))


def document(n: int) -> str:
    return f"query Q{n} {{ viewer {{ id }} }}"


async def test_a_document_is_found_by_its_hash_only(store: Store) -> None:
    cache = DocumentCache(store, ttl_seconds=60, max_entries=10, max_bytes=1000)
    mine = owner()

    assert await cache.put(mine, document(1))

    assert await cache.get(mine, sha256_hex(document(1))) == document(1)
    assert await cache.get(mine, sha256_hex(document(2))) is None
    assert await cache.get(owner(), sha256_hex(document(1))) is None  # another owner's


async def test_at_most_max_entries_are_kept_the_oldest_go_first(store: Store) -> None:
    cache = DocumentCache(store, ttl_seconds=60, max_entries=3, max_bytes=1000)
    mine = owner()
    for n in range(5):
        await cache.put(mine, document(n))
    # Registering one again renews it: it is no longer the oldest.
    await cache.put(mine, document(2))
    await cache.put(mine, document(5))

    kept = [n for n in range(6) if await cache.get(mine, sha256_hex(document(n))) is not None]

    assert kept == [2, 4, 5]


async def test_a_document_over_the_size_bound_is_not_kept(store: Store) -> None:
    cache = DocumentCache(store, ttl_seconds=60, max_entries=10, max_bytes=40)
    mine = owner()
    large = "query Large { viewer { id email displayName status } }"
    assert len(large.encode()) > 40

    assert await cache.put(mine, large) is False
    assert await cache.get(mine, sha256_hex(large)) is None


async def test_memory_entries_expire_with_their_lifetime() -> None:
    clock = Clock()
    cache = DocumentCache(
        Store.from_url(None), ttl_seconds=60, max_entries=10, max_bytes=1000, clock=clock
    )
    mine = owner()
    await cache.put(mine, document(1))

    clock.now += 59
    assert await cache.get(mine, sha256_hex(document(1))) == document(1)
    clock.now += 1
    assert await cache.get(mine, sha256_hex(document(1))) is None


async def test_memory_keeps_a_bounded_number_of_owners() -> None:
    cache = DocumentCache(
        Store.from_url(None), ttl_seconds=60, max_entries=10, max_bytes=1000, max_owners=2
    )
    first, second, third = owner(), owner(), owner()
    for who in (first, second, third):
        await cache.put(who, document(1))

    digest = sha256_hex(document(1))
    assert [await cache.get(who, digest) is not None for who in (first, second, third)] == [
        False,
        True,
        True,
    ]


async def test_redis_entries_expire_on_redis_clock(app_settings: Settings) -> None:
    store = Store.from_url(store_url("redis", app_settings), SHARED_REDIS)
    try:
        cache = DocumentCache(store, ttl_seconds=60, max_entries=10, max_bytes=1000)
        mine = owner()
        await cache.put(mine, document(1))
        documents, registered = cache._keys(mine)
        # Registered 61 s ago on Redis's clock (what 61 s of waiting would do).
        seconds, _ = await store.redis.time()
        await store.redis.zadd(registered, {sha256_hex(document(1)): (seconds - 61) * 1000})

        assert await cache.get(mine, sha256_hex(document(1))) is None
        # Expired entries are dropped, not only hidden.
        assert await store.redis.hlen(documents) == 0
    finally:
        await store.close()


async def test_redis_entries_are_shared_by_every_process(app_settings: Settings) -> None:
    url = store_url("redis", app_settings)
    one, two = Store.from_url(url, SHARED_REDIS), Store.from_url(url, SHARED_REDIS)
    try:
        mine = owner()
        await DocumentCache(one, ttl_seconds=60, max_entries=10, max_bytes=1000).put(
            mine, document(1)
        )

        found = await DocumentCache(two, ttl_seconds=60, max_entries=10, max_bytes=1000).get(
            mine, sha256_hex(document(1))
        )

        assert found == document(1)
    finally:
        await one.close()
        await two.close()


async def test_redis_out_of_reach_falls_back_to_this_process_memory() -> None:
    # given: a Redis no one listens on (port 1)
    store = Store.from_url("redis://127.0.0.1:1/0")
    try:
        cache = DocumentCache(store, ttl_seconds=60, max_entries=10, max_bytes=1000)
        mine = owner()

        # when / then: no error reaches the request; this process keeps and finds the document
        assert await cache.put(mine, document(1)) is True
        assert await cache.get(mine, sha256_hex(document(1))) == document(1)
        assert await cache.get(mine, sha256_hex(document(2))) is None
    finally:
        await store.close()


async def test_a_document_that_does_not_match_its_hash_is_a_miss(app_settings: Settings) -> None:
    # given: a store whose entry was tampered with (or corrupted)
    store = Store.from_url(store_url("redis", app_settings), SHARED_REDIS)
    try:
        cache = DocumentCache(store, ttl_seconds=60, max_entries=10, max_bytes=1000)
        mine = tenant_key(uuid4(), "apq")
        await cache.put(mine, document(1))
        documents, _ = cache._keys(mine)
        await store.redis.hset(documents, sha256_hex(document(1)), "mutation { evil }")

        # when / then: the hash is verified against what is read back
        assert await cache.get(mine, sha256_hex(document(1))) is None
    finally:
        await store.close()
