"""Token buckets on both backends: atomic takes, all-or-nothing across buckets, amounts.

Redis tests use the CI machine's Redis (REDIS_URL): skipped without one on a developer's
machine, failed in CI.
"""

from __future__ import annotations

import asyncio
import uuid

from app.core.ratelimit import Bucket, Rate, TokenBuckets
from app.core.store import Store, platform_key
from tests.core.test_store import store

__all__ = ["store"]


async def test_concurrent_takes_get_exactly_the_burst(store: Store) -> None:
    buckets = TokenBuckets(store)
    key = platform_key("bucket", uuid.uuid4().hex)

    takes = await asyncio.gather(*(buckets.take(key, Rate(5, 1)) for _ in range(30)))

    assert sum(t.allowed for t in takes) == 5
    refused = next(t for t in takes if not t.allowed)
    assert refused.remaining == 0
    assert 1 <= refused.retry_after <= 60


async def test_a_take_is_all_or_nothing_across_buckets(store: Store) -> None:
    buckets = TokenBuckets(store)
    wide, narrow = Rate(burst=10, per_minute=1), Rate(burst=2, per_minute=1)
    a, b = (platform_key("bucket", uuid.uuid4().hex) for _ in range(2))

    first = await buckets.take_all([Bucket(a, wide), Bucket(b, narrow)], amount=2)
    second = await buckets.take_all([Bucket(a, wide), Bucket(b, narrow)], amount=2)

    assert [t.allowed for t in first] == [True, True]
    assert [t.remaining for t in first] == [8, 0]
    # b is empty: nothing is taken from a either
    assert [t.allowed for t in second] == [False, False]
    assert [t.remaining for t in second] == [8, 0]
    assert second[0].retry_after == 0
    assert 1 <= second[1].retry_after <= 120


async def test_an_amount_is_taken_whole_and_refused_with_the_wait_for_it(store: Store) -> None:
    buckets = TokenBuckets(store)
    key = platform_key("bucket", uuid.uuid4().hex)
    rate = Rate(burst=100, per_minute=60)  # one a second

    [spent] = await buckets.take_all([Bucket(key, rate)], amount=90)
    [refused] = await buckets.take_all([Bucket(key, rate)], amount=20)

    assert spent.allowed
    assert spent.remaining == 10
    assert not refused.allowed
    # ten more tokens are needed, at one a second
    assert 9 <= refused.retry_after <= 11
    assert refused.remaining in (10, 11)
