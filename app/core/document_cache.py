"""GraphQL documents by their SHA-256, for automatic persisted queries (app/api/documents.py).

Bounded in size and time: per owner (a tenant, the anonymous callers, the platform) at most
`max_entries` documents of at most `max_bytes` each, every one kept `ttl_seconds` from its
registration (a registration again renews it; past the bound the least recently registered
go first). With Redis (the store's backend when `REDIS_URL` is set) every server process of
the deployment shares them: an owner's documents are one hash and one sorted set of their
registration times, read and written by Lua scripts on Redis's own clock. Without Redis they
live in this process's memory, where at most `max_owners` owners are kept.

Nothing here trusts a digest: a document is stored only under its own SHA-256, and one read
back that does not hash to the digest asked for (a corrupted or tampered store) is a miss.
Nor does anything depend on Redis being up: every call goes through the store's budget and
circuit breaker (app/core/store.py), and while Redis is away documents are registered and
found in this process's memory (a miss elsewhere only makes a client send the document).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from app.core.store import Store, StoreKey


def sha256_hex(document: str) -> str:
    """The lower-case hex SHA-256 of a document's UTF-8 text (Apollo's `sha256Hash`)."""
    return hashlib.sha256(document.encode()).hexdigest()


# KEYS[1]: the owner's documents (a hash by digest); KEYS[2]: their registration times in
# milliseconds (a sorted set). ARGV: digest, lifetime in milliseconds.
_GET_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local at = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not at then
  return false
end
if tonumber(at) + tonumber(ARGV[2]) <= now then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[1], ARGV[1])
  return false
end
return redis.call('HGET', KEYS[1], ARGV[1])
"""
# ARGV: digest, document, lifetime in milliseconds, the most documents kept.
_PUT_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local lifetime = tonumber(ARGV[3])
-- Registrations within one millisecond keep their order (the oldest goes first).
local newest = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if newest[2] and tonumber(newest[2]) >= now then
  now = tonumber(newest[2]) + 1
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[1])
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - lifetime)
for _, digest in ipairs(expired) do
  redis.call('HDEL', KEYS[1], digest)
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - lifetime)
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if over > 0 then
  for _, digest in ipairs(redis.call('ZRANGE', KEYS[2], 0, over - 1)) do
    redis.call('HDEL', KEYS[1], digest)
  end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, over - 1)
end
local seconds = math.ceil(lifetime / 1000)
redis.call('EXPIRE', KEYS[1], seconds)
redis.call('EXPIRE', KEYS[2], seconds)
return 1
"""


class DocumentCache:
    """Documents by SHA-256 on the store's backend (see the module)."""

    def __init__(
        self,
        store: Store,
        *,
        ttl_seconds: int,
        max_entries: int,
        max_bytes: int,
        max_owners: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._max_owners = max_owners
        self._clock = clock
        self._memory: OrderedDict[str, OrderedDict[str, tuple[str, float]]] = OrderedDict()
        redis = store.redis
        self._get: Any = None if redis is None else redis.register_script(_GET_SCRIPT)
        self._put: Any = None if redis is None else redis.register_script(_PUT_SCRIPT)

    async def get(self, owner: StoreKey, digest: str) -> str | None:
        """The document `owner` registered under `digest`, if it is still kept."""

        async def on_redis(client: Any) -> object:
            found = await self._get(
                keys=self._keys(owner), args=[digest, self.ttl_seconds * 1000], client=client
            )
            return found.decode() if isinstance(found, bytes) else found

        async def in_memory() -> object:
            return self._get_in_memory(owner.value, digest)

        document = await self.store.call(on_redis, in_memory)
        if not isinstance(document, str) or sha256_hex(document) != digest:
            return None
        return document

    async def put(self, owner: StoreKey, document: str) -> bool:
        """Keep `document` under its SHA-256 for `owner`; False (nothing kept) when it is
        longer than `max_bytes`."""
        if len(document.encode()) > self.max_bytes:
            return False
        digest = sha256_hex(document)

        async def on_redis(client: Any) -> None:
            await self._put(
                keys=self._keys(owner),
                args=[digest, document, self.ttl_seconds * 1000, self.max_entries],
                client=client,
            )

        async def in_memory() -> None:
            self._put_in_memory(owner.value, digest, document)

        await self.store.call(on_redis, in_memory)
        return True

    def _keys(self, owner: StoreKey) -> list[str]:
        documents = self.store.backend_key(owner)
        return [documents, f"{documents}:registered"]

    # No await in the memory paths: nothing else runs between a read and a write.
    def _get_in_memory(self, owner: str, digest: str) -> str | None:
        documents = self._memory.get(owner)
        entry = None if documents is None else documents.get(digest)
        if entry is None:
            return None
        document, registered = entry
        if registered + self.ttl_seconds <= self._clock():
            del documents[digest]  # type: ignore[union-attr]
            return None
        return document

    def _put_in_memory(self, owner: str, digest: str, document: str) -> None:
        documents = self._memory.pop(owner, None) or OrderedDict()
        self._memory[owner] = documents  # the most recently used owner last
        documents.pop(digest, None)
        documents[digest] = (document, self._clock())
        while len(documents) > self.max_entries:
            documents.popitem(last=False)
        while len(self._memory) > self._max_owners:
            self._memory.popitem(last=False)
