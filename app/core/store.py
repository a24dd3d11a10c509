"""A small key-value store for counters and short-lived flags, over aiocache.

Redis when `REDIS_URL` is set (shared by every server process), process memory otherwise
(the embedded default: one process). Sign-in throttling and session revocation use it now;
the cache layer builds on the same backends.

Every key is built by `tenant_key` or `platform_key`, so a tenant's keys always carry its
id and can be purged per tenant; values are JSON, never pickle.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from aiocache import Cache
from aiocache.base import BaseCache
from aiocache.serializers import JsonSerializer

_NAMESPACE = "tenantry:"


@dataclass(frozen=True)
class StoreKey:
    value: str


def tenant_key(tenant_id: UUID, *parts: str) -> StoreKey:
    """A key owned by one tenant (every tenant-scoped key is made here)."""
    return StoreKey(":".join(("t", str(tenant_id), *parts)))


def platform_key(*parts: str) -> StoreKey:
    """A key that belongs to no tenant (e.g. per-IP counters)."""
    return StoreKey(":".join(("p", *parts)))


@dataclass(frozen=True)
class WindowCount:
    count: int
    # Seconds until the current window ends and the count starts again from zero.
    resets_in: int


class Store:
    def __init__(self, cache: BaseCache) -> None:
        self._cache = cache

    @classmethod
    def from_url(cls, redis_url: str | None) -> Store:
        """Redis for `redis://…` / `rediss://…`; process memory when None."""
        if redis_url is None:
            cache = Cache(Cache.MEMORY, serializer=JsonSerializer(), namespace=_NAMESPACE)
        else:
            cache = Cache.from_url(redis_url)
            cache.serializer = JsonSerializer()
            cache.namespace = _NAMESPACE
        return cls(cache)

    @property
    def shared(self) -> bool:
        """Whether other server processes see the same values (Redis)."""
        return bool(self._cache.NAME != "memory")

    async def close(self) -> None:
        # aiocache 0.12 closes Redis with the deprecated `close()`; `aclose()` is current.
        client = getattr(self._cache, "client", None)
        if client is not None:
            await client.aclose()
        else:
            await self._cache.close()

    async def ping(self) -> None:
        """Raises when the backend is unreachable."""
        await self._cache.exists("ping")

    async def get(self, key: StoreKey) -> Any:
        return await self._cache.get(key.value)

    async def put(self, key: StoreKey, value: Any, *, ttl_seconds: int) -> None:
        # Not `set(ttl=…)`: aiocache sends Redis the deprecated SETEX for that. Should the
        # process die between the two calls, the key merely outlives its ttl.
        await self._cache.set(key.value, value)
        await self._cache.expire(key.value, ttl_seconds)

    async def add(self, key: StoreKey, value: Any, *, ttl_seconds: int) -> bool:
        """Store `value` only where the key holds nothing (Redis SET NX): whatever got there
        first wins. False when it did."""
        try:
            return bool(await self._cache.add(key.value, value, ttl=ttl_seconds))
        except ValueError:
            return False

    async def get_many(self, keys: list[StoreKey]) -> list[Any]:
        """Several values in one round trip (MGET); None for missing keys. Values may be JSON
        documents or raw counters (`bump`)."""
        return list(await self._cache.multi_get([k.value for k in keys], loads_fn=_json_or_counter))

    async def bump(self, key: StoreKey) -> int:
        """Increment a counter that never expires (e.g. a cache generation); returns it."""
        return int(await self._cache.increment(key.value, 1))

    async def delete(self, key: StoreKey) -> None:
        await self._cache.delete(key.value)

    # Fixed-window counters: the window number is part of the key, so a window's count
    # starts from zero without a reset, and the key expires with its window.
    def _window(self, key: StoreKey, window_seconds: int) -> tuple[str, int]:
        now = time.time()
        number = int(now // window_seconds)
        resets_in = max(1, math.ceil((number + 1) * window_seconds - now))
        return f"{key.value}:w{window_seconds}:{number}", resets_in

    async def hit(self, key: StoreKey, *, window_seconds: int, amount: int = 1) -> WindowCount:
        """Add `amount` to the current window's count; returns the new count."""
        window_key, resets_in = self._window(key, window_seconds)
        count = int(await self._cache.increment(window_key, amount))
        if count == amount:
            # The first hit of the window sets its expiry (the key outlives the window a bit).
            await self._cache.expire(window_key, window_seconds + 1)
        return WindowCount(count, resets_in)

    async def count(self, key: StoreKey, *, window_seconds: int) -> WindowCount:
        window_key, resets_in = self._window(key, window_seconds)
        # Counters are raw integers (INCRBY), not JSON documents.
        value = await self._cache.get(window_key, loads_fn=_counter)
        return WindowCount(value or 0, resets_in)


def _json_or_counter(raw: object) -> Any:
    # Memory keeps counters as ints; Redis returns every value as text.
    if raw is None or isinstance(raw, int):
        return raw
    return json.loads(raw)  # type: ignore[arg-type]


def _counter(raw: object) -> int | None:
    return None if raw is None else int(raw)  # type: ignore[call-overload]
