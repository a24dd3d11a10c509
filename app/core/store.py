"""A small key-value store for counters and short-lived flags, over aiocache.

Redis when `REDIS_URL` is set (shared by every server process), process memory otherwise
(the embedded default: one process). Sign-in throttling (atomic claims: `claim`, `release`)
and session revocation use it now; the cache layer builds on the same backends.

Every key is built by `tenant_key` or `platform_key`, so a tenant's keys always carry its
id and can be purged per tenant; values are JSON, never pickle.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Sequence
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


@dataclass(frozen=True)
class Limit:
    """At most `limit` claims on `key` per window."""

    key: StoreKey
    limit: int


@dataclass(frozen=True)
class Claim:
    """The outcome of `Store.claim`: granted (one counted on every limit's window) or not
    (nothing counted). A granted claim can be given back with `Store.release`."""

    granted: bool
    # Seconds until the current window ends and its counts start again from zero.
    resets_in: int
    # The exact window keys counted, so a release decrements the windows the claim counted
    # in even when a new window has begun since.
    window_keys: tuple[str, ...] = ()


# Both scripts run atomically in Redis: no other client's command runs between a script's
# reads and writes. Every key is a window counter of the same window length (ARGV[1] is its
# expiry); ARGV[i + 1] is the limit of KEYS[i].
_CLAIM_SCRIPT = """
for i = 1, #KEYS do
  if tonumber(redis.call('GET', KEYS[i]) or '0') >= tonumber(ARGV[i + 1]) then
    return 0
  end
end
for i = 1, #KEYS do
  if redis.call('INCR', KEYS[i]) == 1 then
    redis.call('EXPIRE', KEYS[i], ARGV[1])
  end
end
return 1
"""
# Only counters that still exist and are positive: DECR on an expired key would create a
# counter of -1 without expiry.
_RELEASE_SCRIPT = """
for i = 1, #KEYS do
  if tonumber(redis.call('GET', KEYS[i]) or '0') > 0 then
    redis.call('DECR', KEYS[i])
  end
end
return 1
"""


class Store:
    def __init__(self, cache: BaseCache) -> None:
        self._cache = cache
        # Serialises claims and releases in process memory, where each aiocache call may
        # yield to the event loop (its timeout runs it as a task): without the lock two
        # claims could both read a count below the limit before either adds to it.
        self._claims_lock = asyncio.Lock()
        self._scripts: dict[str, Any] = {}

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

    @property
    def redis(self) -> Any:
        """The Redis client (redis.asyncio.Redis) when the store is Redis, else None: for the
        atomic scripts of other core modules (app/core/ratelimit.py)."""
        return self._cache.client if self.shared else None

    def backend_key(self, key: StoreKey) -> str:
        """`key` as the backend holds it, with the store's namespace (for scripts)."""
        return str(self._cache.build_key(key.value))

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

    async def claim(self, limits: Sequence[Limit], *, window_seconds: int) -> Claim:
        """Count one on every limit's current window, atomically, if none is used up yet;
        else count nothing (`granted` is False). Concurrent claims never exceed a limit: of N
        claims racing for the last M places, exactly M are granted."""
        windows = [self._window(limit.key, window_seconds) for limit in limits]
        keys = tuple(key for key, _ in windows)
        resets_in = min((r for _, r in windows), default=window_seconds)
        if self.shared:
            granted = await self._script("claim", _CLAIM_SCRIPT)(
                keys=[self._cache.build_key(k) for k in keys],
                args=[window_seconds + 1, *(limit.limit for limit in limits)],
            )
        else:
            async with self._claims_lock:
                counts = [await self._cache.get(k, loads_fn=_counter) or 0 for k in keys]
                granted = all(c < limit.limit for c, limit in zip(counts, limits, strict=True))
                if granted:
                    for key in keys:
                        if await self._cache.increment(key, 1) == 1:
                            await self._cache.expire(key, window_seconds + 1)
        return Claim(bool(granted), resets_in, keys if granted else ())

    async def release(self, claim: Claim) -> None:
        """Give a granted claim back: one less on each window it counted in (those still
        there; a window that ended has nothing to give back)."""
        if not claim.window_keys:
            return
        if self.shared:
            await self._script("release", _RELEASE_SCRIPT)(
                keys=[self._cache.build_key(k) for k in claim.window_keys]
            )
            return
        async with self._claims_lock:
            for key in claim.window_keys:
                if (await self._cache.get(key, loads_fn=_counter) or 0) > 0:
                    await self._cache.increment(key, -1)

    def _script(self, name: str, source: str) -> Any:
        # Registered once per store: redis-py then runs it by its SHA (EVALSHA), loading it
        # again only when the server does not know it (a restarted Redis).
        if name not in self._scripts:
            self._scripts[name] = self._cache.client.register_script(source)
        return self._scripts[name]


def _json_or_counter(raw: object) -> Any:
    # Memory keeps counters as ints; Redis returns every value as text.
    if raw is None or isinstance(raw, int):
        return raw
    return json.loads(raw)  # type: ignore[arg-type]


def _counter(raw: object) -> int | None:
    return None if raw is None else int(raw)  # type: ignore[call-overload]
