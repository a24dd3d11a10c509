"""Token buckets: a burst at once, refilled at a steady rate.

A bucket holds at most `burst` tokens and gains `per_minute` a minute; a request takes one (or,
for a cost budget, its cost), and a request finding too few is refused with how long until
they are there. Unlike a fixed window, a client cannot double its rate at a window's edge,
and a quiet client keeps its burst for when it needs it. One take may draw on several buckets
(a tenant's and its user's): from all of them, or from none.

With Redis (the store's backend when `REDIS_URL` is set) every take is one Lua script, run
atomically on Redis's own clock, so all server processes share one bucket per key. Without
Redis, and while the store's circuit breaker finds Redis unreachable, the buckets live in this
process's memory, where a take never yields to the event loop and so is atomic too: limits
keep bounding, per process. At most `max_memory_buckets` are kept (the least recently used go
first: a bucket found again later is full, as a new one would be).

Keys are `StoreKey`s like the store's: `platform_key` for per-address buckets, `tenant_key`
for a tenant's and its users'.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
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
class PlanRates:
    """What a tenant's plan allows (None: unlimited): its requests and each user's, and the
    cost of its operations (app/api/limits.py), each a bucket refilled per minute."""

    tenant: Rate | None = None
    user: Rate | None = None
    cost: Rate | None = None


@dataclass(frozen=True)
class Bucket:
    """One bucket a take draws on: its key and its rate."""

    key: StoreKey
    rate: Rate


@dataclass(frozen=True)
class Take:
    """The outcome of a take, for one bucket (or, from `take`, the only one)."""

    allowed: bool
    # Whole tokens left after this take (or, when refused, left as they were).
    remaining: int
    # Seconds until the bucket holds what this take asked for (0 when it did).
    retry_after: int


# KEYS[i]: a bucket (a hash of `tokens` and `at`, in milliseconds of Redis's clock).
# ARGV[1]: the tokens to take from every bucket; then per bucket: burst, tokens per
# millisecond, seconds until an empty bucket is full again. Takes from every bucket, or (when
# one holds too few) from none. Returns 1 or 0, then per bucket its whole tokens left and the
# milliseconds until it holds the amount.
_TAKE_SCRIPT = """
local amount = tonumber(ARGV[1])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local tokens = {}
local allowed = 1
for i = 1, #KEYS do
  local burst = tonumber(ARGV[i * 3 - 1])
  local rate = tonumber(ARGV[i * 3])
  local state = redis.call('HMGET', KEYS[i], 'tokens', 'at')
  local held = tonumber(state[1])
  local at = tonumber(state[2])
  if held == nil or at == nil then
    held = burst
    at = now
  end
  held = math.min(burst, held + math.max(0, now - at) * rate)
  tokens[i] = held
  if held < amount then
    allowed = 0
  end
end
local result = {allowed}
for i = 1, #KEYS do
  local rate = tonumber(ARGV[i * 3])
  local held = tokens[i]
  local wait = 0
  if held < amount then
    wait = (amount - held) / rate
  end
  if allowed == 1 then
    held = held - amount
  end
  redis.call('HSET', KEYS[i], 'tokens', tostring(held), 'at', tostring(now))
  redis.call('EXPIRE', KEYS[i], ARGV[i * 3 + 1])
  table.insert(result, math.floor(held))
  table.insert(result, tostring(wait))
end
return result
"""


class TokenBuckets:
    """Buckets on the store's backend: shared in Redis, else (no Redis, or Redis unreachable:
    the store's circuit breaker) in this process's memory, so limits keep bounding."""

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
        return (await self.take_all([Bucket(key, rate)]))[0]

    async def take_all(self, buckets: Sequence[Bucket], amount: int = 1) -> list[Take]:
        """Take `amount` tokens from every bucket if each holds them, else from none (one
        atomic script in Redis): per bucket, whether it held them, what it holds now, and
        when it will. An amount over a bucket's burst is never allowed: check it first."""

        async def on_redis(client: Any) -> list[Take]:
            args: list[object] = [amount]
            for bucket in buckets:
                rate = bucket.rate
                args += [rate.burst, rate.per_second / 1000, rate.refill_seconds + 1]
            allowed, *state = await self._script(
                keys=[self.store.backend_key(b.key) for b in buckets], args=args, client=client
            )
            return [
                _take(bool(allowed), int(state[2 * i]), float(state[2 * i + 1]) / 1000)
                for i in range(len(buckets))
            ]

        async def in_memory() -> list[Take]:
            return self._take_in_memory(buckets, amount)

        return await self.store.call(on_redis, in_memory)

    def _take_in_memory(self, buckets: Sequence[Bucket], amount: int) -> list[Take]:
        # No await in here: nothing else runs between the reads and the writes.
        now = self._clock()
        held: list[float] = []
        for bucket in buckets:
            burst = float(bucket.rate.burst)
            tokens, at = self._memory.pop(bucket.key.value, (burst, now))
            held.append(min(burst, tokens + max(0.0, now - at) * bucket.rate.per_second))
        allowed = all(tokens >= amount for tokens in held)
        takes = []
        for bucket, tokens in zip(buckets, held, strict=True):
            wait = max(0.0, amount - tokens) / bucket.rate.per_second
            left = tokens - amount if allowed else tokens
            self._memory[bucket.key.value] = (left, now)
            takes.append(_take(allowed, math.floor(left), wait))
        while len(self._memory) > self._max:
            self._memory.popitem(last=False)
        return takes


def _take(allowed: bool, remaining: int, wait_seconds: float) -> Take:
    # Retry-After is whole seconds: rounded up, so a client retrying then finds its tokens.
    return Take(allowed, remaining, 0 if wait_seconds <= 0 else max(1, math.ceil(wait_seconds)))
