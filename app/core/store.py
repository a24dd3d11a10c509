"""A small key-value store for counters and short-lived flags, over aiocache.

Redis when `REDIS_URL` is set (shared by every server process), process memory otherwise
(the embedded default: one process). Sign-in throttling (atomic claims: `claim`, `release`),
rate limits (app/core/ratelimit.py), session revocation and the tenant caches use it.

Redis is optional at run time. Every call to it has a budget of tens of milliseconds
(`RedisOptions.timeout_ms`), and a circuit breaker (app/core/breaker.py) stops calling it
after a few failures in a row, or at once when a write fails: until a background probe finds
it answering again, every call is served from this process's memory, the same code on an
in-memory backend. So a dead or frozen Redis costs a few requests one budget each, then
nothing. Writes made to memory meanwhile (cache entries, invalidations, revocation marks)
are journaled and replayed to Redis before the breaker closes, so no process reads a Redis
that missed them; then the memory copy is dropped. What each use gives up while Redis is
away (limits count per process, caches are per process) is in docs/operations.md.

Every key is built by `tenant_key` or `platform_key`, so a tenant's keys always carry its
id and can be purged per tenant; values are JSON, never pickle.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from aiocache import Cache
from aiocache.base import BaseCache
from aiocache.serializers import JsonSerializer
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from app.core.breaker import CircuitBreaker
from app.core.settings import Settings

logger = logging.getLogger("tenantry.store")

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


@dataclass(frozen=True)
class RedisOptions:
    """How the store treats Redis (TENANTRY_REDIS_* settings)."""

    # The budget of each call: a frozen Redis costs a request at most this (per call).
    timeout_ms: int = 50
    # Failed or timed-out calls in a row that open the circuit (a failed write opens it at once).
    failures_to_open: int = 3
    # While open, how often a background probe tries Redis again.
    retry_ms: int = 1000


class RedisUnavailable(Exception):
    """Redis did not answer (or the breaker is open): readiness reports the store degraded."""


# What fails when Redis is down, frozen, restarting, out of memory or (after a failover) a
# read-only replica. Anything else (a script error, a wrong type) is a bug and propagates.
_UNREACHABLE = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.BusyLoadingError,
    redis_errors.ReadOnlyError,
    redis_errors.OutOfMemoryError,
    OSError,
    TimeoutError,
)
# At most this many keys written to memory while Redis is away are replayed to it.
_MAX_JOURNAL = 100_000
T = TypeVar("T")


@dataclass(frozen=True)
class _Set:
    value: Any
    # time.monotonic() when the value expires.
    expires_at: float


@dataclass(frozen=True)
class _Delete:
    pass


@dataclass(frozen=True)
class _Increment:
    amount: int


class Store:
    def __init__(self, cache: BaseCache, *, options: RedisOptions | None = None) -> None:
        # Redis, or (without REDIS_URL) process memory; `_memory` is where calls go while
        # Redis is unreachable (the same object when there is no Redis).
        self._cache = cache
        self._memory = cache if cache.NAME == "memory" else _memory_cache()
        options = options or RedisOptions()
        self._timeout = options.timeout_ms / 1000
        self.breaker = CircuitBreaker(
            "Redis",
            failures_to_open=options.failures_to_open,
            retry_seconds=options.retry_ms / 1000,
            probe=self._probe,
            on_recovery=self._replay,
        )
        # Writes made to memory while Redis was unreachable, by backend key, replayed to it.
        self._journal: dict[str, _Set | _Delete | _Increment] = {}
        # Serialises claims and releases in process memory, where each aiocache call may
        # yield to the event loop: without the lock two claims could both read a count below
        # the limit before either adds to it.
        self._claims_lock = asyncio.Lock()
        self._scripts: dict[str, Any] = {}

    @classmethod
    def from_url(cls, redis_url: str | None, options: RedisOptions | None = None) -> Store:
        """Redis for `redis://…` / `rediss://…`; process memory when None."""
        if redis_url is None:
            return cls(_memory_cache())
        options = options or RedisOptions()
        cache = Cache.from_url(redis_url)
        # The client aiocache made waits 5 s for a socket: the store enforces its budget
        # itself (`_within_budget`), so the client's own timeouts are only a backstop; it
        # keeps the URL's credentials, database and TLS, and never retries by itself.
        backstop = max(1.0, 10 * options.timeout_ms / 1000)
        cache.client = Redis.from_url(
            redis_url,
            socket_timeout=backstop,
            socket_connect_timeout=backstop,
            retry=Retry(NoBackoff(), 0),
        )
        cache.serializer = JsonSerializer()
        cache.namespace = _NAMESPACE
        # The budget is enforced around each call (`_call`), without aiocache's task per call.
        cache.timeout = None
        return cls(cache, options=options)

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        """The server's store: REDIS_URL and the TENANTRY_REDIS_* settings."""
        return cls.from_url(
            settings.redis_url,
            RedisOptions(
                timeout_ms=settings.redis_timeout_ms,
                failures_to_open=settings.redis_failures_to_open,
                retry_ms=settings.redis_retry_ms,
            ),
        )

    @property
    def shared(self) -> bool:
        """Whether other server processes see the same values (Redis)."""
        return bool(self._cache.NAME != "memory")

    @property
    def redis(self) -> Any:
        """The Redis client (redis.asyncio.Redis) when the store is Redis, else None: for the
        atomic scripts of other core modules (app/core/ratelimit.py, through `call`)."""
        return self._cache.client if self.shared else None

    def backend_key(self, key: StoreKey) -> str:
        """`key` as the backend holds it, with the store's namespace (for scripts)."""
        return str(self._cache.build_key(key.value))

    async def close(self) -> None:
        await self.breaker.close()
        # aiocache 0.12 closes Redis with the deprecated `close()`; `aclose()` is current.
        client = getattr(self._cache, "client", None)
        if client is not None:
            await client.aclose()
        else:
            await self._cache.close()

    async def call(
        self,
        on_redis: Callable[[Any], Awaitable[T]],
        in_memory: Callable[[], Awaitable[T]],
        *,
        write: bool = False,
    ) -> T:
        """`on_redis(client)` within the budget while the breaker allows it, else (or when it
        fails) `in_memory()`. Without Redis, always `in_memory()`. A failed `write` opens the
        breaker at once: memory then holds something Redis may not."""
        if not self.shared:
            return await in_memory()
        if self.breaker.allows():
            try:
                result = await self._within_budget(on_redis(self._cache.client))
            except _UNREACHABLE as error:
                self.breaker.failed(error, open_now=write)
            else:
                self.breaker.succeeded()
                return result
        return await in_memory()

    async def _within_budget(self, call: Awaitable[T]) -> T:
        """`call`'s result, or TimeoutError once the budget has passed without it.

        Not `asyncio.timeout`, which cancels the call when its timer fires: on an event loop
        busy with other requests, a reply that arrived in time and the expired timer are
        handled in the same loop iteration, and the cancellation would discard the reply.
        Here the call runs as a task and is waited for; its wake-up on the reply is queued
        before ours, so a reply that arrived within the budget is taken, and only a Redis
        that has not answered counts as a failure.
        """
        task = asyncio.ensure_future(call)
        await asyncio.wait((task,), timeout=self._timeout)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, *_UNREACHABLE):
                await task
            raise TimeoutError
        return task.result()

    async def _call(self, op: Callable[[BaseCache], Awaitable[T]], *, write: bool = False) -> T:
        """The same aiocache operation on Redis, or on memory when Redis is unreachable."""
        return await self.call(lambda _: op(self._cache), lambda: op(self._memory), write=write)

    async def _write(self, key: str, op: Callable[[BaseCache], Awaitable[T]], entry: Any) -> T:
        """A write that must reach Redis: when it cannot, it is made in memory and journaled
        (replayed to Redis before the breaker closes)."""
        if not self.shared:
            return await op(self._memory)
        written_to_redis = False

        async def on_redis(_: Any) -> T:
            nonlocal written_to_redis
            result = await op(self._cache)
            written_to_redis = True
            return result

        result = await self.call(on_redis, lambda: op(self._memory), write=True)
        if not written_to_redis:
            self._journal_write(self._cache.build_key(key), entry)
        return result

    def _journal_write(self, backend_key: str, entry: _Set | _Delete | _Increment) -> None:
        previous = self._journal.pop(backend_key, None)
        if isinstance(entry, _Increment) and isinstance(previous, _Increment):
            entry = _Increment(previous.amount + entry.amount)
        if len(self._journal) >= _MAX_JOURNAL:
            logger.error(
                "Redis unavailable: too many writes to replay; %s is not kept", backend_key
            )
            return
        self._journal[backend_key] = entry

    async def _probe(self) -> None:
        await self._within_budget(self._cache.client.ping())

    async def _replay(self) -> None:
        """Write to Redis what was written to memory while it was away, then forget the
        memory copy (its limits and caches start afresh at the next outage)."""
        while self._journal:
            key, entry = next(iter(self._journal.items()))
            await self._within_budget(self._replay_one(key, entry))
            # Only once written: a write journaled meanwhile for the same key stays.
            if self._journal.get(key) is entry:
                del self._journal[key]
        # Synchronously: the breaker closes right after this returns, with no await between.
        self._memory = _memory_cache()

    async def _replay_one(self, key: str, entry: _Set | _Delete | _Increment) -> None:
        client = self._cache.client
        if isinstance(entry, _Set):
            remaining = entry.expires_at - time.monotonic()
            if remaining > 0:
                await client.set(key, json.dumps(entry.value), px=math.ceil(remaining * 1000))
        elif isinstance(entry, _Delete):
            await client.delete(key)
        else:
            await client.incrby(key, entry.amount)

    async def ping(self) -> None:
        """Raises RedisUnavailable when Redis does not answer within the budget, or at once
        while the breaker is open (readiness then reports the store degraded)."""
        if not self.shared:
            return
        if self.breaker.is_open:
            raise RedisUnavailable("circuit open")
        try:
            await self._within_budget(self._cache.client.ping())
        except _UNREACHABLE as error:
            self.breaker.failed(error)
            raise RedisUnavailable(type(error).__name__) from None

    async def get(self, key: StoreKey) -> Any:
        return await self._call(lambda c: c.get(key.value))

    async def put(self, key: StoreKey, value: Any, *, ttl_seconds: int) -> None:
        # Not `set(ttl=…)`: aiocache sends Redis the deprecated SETEX for that. Should the
        # process die between the two calls, the key merely outlives its ttl.
        async def op(cache: BaseCache) -> None:
            await cache.set(key.value, value)
            await cache.expire(key.value, ttl_seconds)

        await self._write(key.value, op, _Set(value, time.monotonic() + ttl_seconds))

    async def add(self, key: StoreKey, value: Any, *, ttl_seconds: int) -> bool:
        """Store `value` only where the key holds nothing (Redis SET NX): whatever got there
        first wins. False when it did, and False (nothing stored) while Redis is unreachable:
        what is added is meant to be shared (a live session vouched for to every process),
        and a process's memory is not."""

        async def on_redis(_: Any) -> bool:
            try:
                return bool(await self._cache.add(key.value, value, ttl=ttl_seconds))
            except ValueError:  # aiocache's "key already exists"
                return False

        async def in_memory() -> bool:
            if self.shared:
                return False
            try:
                return bool(await self._memory.add(key.value, value, ttl=ttl_seconds))
            except ValueError:
                return False

        return await self.call(on_redis, in_memory)

    async def get_many(self, keys: list[StoreKey]) -> list[Any]:
        """Several values in one round trip (MGET); None for missing keys. Values may be JSON
        documents or raw counters (`bump`)."""
        values = await self._call(
            lambda c: c.multi_get([k.value for k in keys], loads_fn=_json_or_counter)
        )
        return list(values)

    async def bump(self, key: StoreKey) -> int:
        """Increment a counter that never expires; returns it."""
        return int(await self._write(key.value, lambda c: c.increment(key.value, 1), _Increment(1)))

    async def delete(self, key: StoreKey) -> None:
        await self._write(key.value, lambda c: c.delete(key.value), _Delete())

    # Fixed-window counters: the window number is part of the key, so a window's count
    # starts from zero without a reset, and the key expires with its window.
    def _window(self, key: StoreKey, window_seconds: int) -> tuple[str, int]:
        now = time.time()
        number = int(now // window_seconds)
        resets_in = max(1, math.ceil((number + 1) * window_seconds - now))
        return f"{key.value}:w{window_seconds}:{number}", resets_in

    async def hit(self, key: StoreKey, *, window_seconds: int, amount: int = 1) -> WindowCount:
        """Add `amount` to the current window's count; returns the new count. (While Redis
        is unreachable, this process counts on its own: limits still bound, per process.)"""
        window_key, resets_in = self._window(key, window_seconds)

        async def op(cache: BaseCache) -> int:
            count = int(await cache.increment(window_key, amount))
            if count == amount:
                # The first hit of the window sets its expiry (the key outlives it a bit).
                await cache.expire(window_key, window_seconds + 1)
            return count

        return WindowCount(await self._call(op), resets_in)

    async def count(self, key: StoreKey, *, window_seconds: int) -> WindowCount:
        window_key, resets_in = self._window(key, window_seconds)
        # Counters are raw integers (INCRBY), not JSON documents.
        value = await self._call(lambda c: c.get(window_key, loads_fn=_counter))
        return WindowCount(value or 0, resets_in)

    async def claim(self, limits: Sequence[Limit], *, window_seconds: int) -> Claim:
        """Count one on every limit's current window, atomically, if none is used up yet;
        else count nothing (`granted` is False). Concurrent claims never exceed a limit: of N
        claims racing for the last M places, exactly M are granted (per process while Redis
        is unreachable)."""
        windows = [self._window(limit.key, window_seconds) for limit in limits]
        keys = tuple(key for key, _ in windows)
        resets_in = min((r for _, r in windows), default=window_seconds)

        async def on_redis(_: Any) -> bool:
            return bool(
                await self._script("claim", _CLAIM_SCRIPT)(
                    keys=[self._cache.build_key(k) for k in keys],
                    args=[window_seconds + 1, *(limit.limit for limit in limits)],
                )
            )

        async def in_memory() -> bool:
            memory = self._memory
            async with self._claims_lock:
                counts = [await memory.get(k, loads_fn=_counter) or 0 for k in keys]
                granted = all(c < limit.limit for c, limit in zip(counts, limits, strict=True))
                if granted:
                    for key in keys:
                        if await memory.increment(key, 1) == 1:
                            await memory.expire(key, window_seconds + 1)
            return granted

        granted = await self.call(on_redis, in_memory)
        return Claim(granted, resets_in, keys if granted else ())

    async def release(self, claim: Claim) -> None:
        """Give a granted claim back: one less on each window it counted in (those still
        there; a window that ended has nothing to give back)."""
        if not claim.window_keys:
            return

        async def on_redis(_: Any) -> None:
            await self._script("release", _RELEASE_SCRIPT)(
                keys=[self._cache.build_key(k) for k in claim.window_keys]
            )

        async def in_memory() -> None:
            memory = self._memory
            async with self._claims_lock:
                for key in claim.window_keys:
                    if (await memory.get(key, loads_fn=_counter) or 0) > 0:
                        await memory.increment(key, -1)

        await self.call(on_redis, in_memory)

    def _script(self, name: str, source: str) -> Any:
        # Registered once per store: redis-py then runs it by its SHA (EVALSHA), loading it
        # again only when the server does not know it (a restarted Redis).
        if name not in self._scripts:
            self._scripts[name] = self._cache.client.register_script(source)
        return self._scripts[name]


def _memory_cache() -> BaseCache:
    # No per-call timeout: nothing in memory waits.
    return Cache(Cache.MEMORY, serializer=JsonSerializer(), namespace=_NAMESPACE, timeout=None)


def _json_or_counter(raw: object) -> Any:
    # Memory keeps counters as ints; Redis returns every value as text.
    if raw is None or isinstance(raw, int):
        return raw
    return json.loads(raw)  # type: ignore[arg-type]


def _counter(raw: object) -> int | None:
    return None if raw is None else int(raw)  # type: ignore[call-overload]
