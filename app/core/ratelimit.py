"""Token buckets: a burst of requests at once, refilled at a steady rate.

A bucket holds at most `burst` tokens and gains `per_minute` a minute; each request takes one,
and a request finding less than one is refused with how long until one is there. Unlike a
fixed window, a client cannot double its rate at a window's edge, and a quiet client keeps its
burst for when it needs it.

With Redis (the store's backend when `REDIS_URL` is set) every take is one Lua script, run
atomically on Redis's own clock, so all server processes share one bucket per key. Without
Redis the buckets live in this process's memory, where a take never yields to the event loop
and so is atomic too; at most `max_memory_buckets` are kept (the least recently used go
first: a bucket found again later is full, as a new one would be).

Keys are `StoreKey`s like the store's (`platform_key` for per-address buckets, `tenant_key`
for a tenant's), so a later per-tenant or per-user limit reuses the same primitive.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.core.store import Store, StoreKey


@dataclass(frozen=True)
class Rate:
    """`burst` requests at once, refilled at `per_minute` a minute."""

    burst: int
    per_minute: int

    @property
    def per_second(self) -> float:
        return self.per_minute / 60

    @property
    def refill_seconds(self) -> int:
        """How long an empty bucket takes to fill up again."""
        return math.ceil(self.burst / self.per_second)


@dataclass(frozen=True)
class Take:
    """The outcome of taking one token."""

    allowed: bool
    # Whole tokens left after this take.
    remaining: int
    # Seconds until a token is there again (0 when this take was allowed).
    retry_after: int


# KEYS[1]: the bucket (a hash of `tokens` and `at`, in milliseconds of Redis's clock).
# ARGV: burst, tokens per millisecond, seconds until an empty bucket is full again.
_TAKE_SCRIPT = """
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {allowed, math.floor(tokens), tostring(wait)}
"""


class TokenBuckets:
    """Buckets on the store's backend: shared in Redis, else in this process's memory."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_memory_buckets: int = 100_000,
    ) -> None:
        self.store = store
        self._clock = clock
        self._max = max_memory_buckets
        self._memory: OrderedDict[str, tuple[float, float]] = OrderedDict()
        redis = store.redis
        self._script: Any = None if redis is None else redis.register_script(_TAKE_SCRIPT)

    async def take(self, key: StoreKey, rate: Rate) -> Take:
        """Take one token from `key`'s bucket, if it holds one."""
        if self._script is not None:
            allowed, remaining, wait_ms = await self._script(
                keys=[self.store.backend_key(key)],
                args=[rate.burst, rate.per_second / 1000, rate.refill_seconds + 1],
            )
            return _take(bool(allowed), int(remaining), float(wait_ms) / 1000)
        return self._take_in_memory(key.value, rate)

    def _take_in_memory(self, key: str, rate: Rate) -> Take:
        # No await in here: nothing else runs between the read and the write.
        now = self._clock()
        tokens, at = self._memory.pop(key, (float(rate.burst), now))
        tokens = min(float(rate.burst), tokens + max(0.0, now - at) * rate.per_second)
        allowed = tokens >= 1
        wait = 0.0
        if allowed:
            tokens -= 1
        else:
            wait = (1 - tokens) / rate.per_second
        self._memory[key] = (tokens, now)
        if len(self._memory) > self._max:
            self._memory.popitem(last=False)
        return _take(allowed, math.floor(tokens), wait)


def _take(allowed: bool, remaining: int, wait_seconds: float) -> Take:
    # Retry-After is whole seconds: rounded up, so a client retrying then finds its token.
    return Take(allowed, remaining, 0 if allowed else max(1, math.ceil(wait_seconds)))
