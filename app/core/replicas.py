"""Read replicas: query operations on a streaming standby, with read-your-own-writes.

With `TENANTRY_READ_DATABASE_URL`, the database has a replica (app/core/db.py) and
`ReadRouting` decides where each read-only operation runs (docs/scale-out.md):

- Every read-write commit on the primary reports the WAL position its commit reached; the
  newest position of each tenant is kept in the store (Redis, shared by every server
  process) for `POSITION_TTL_SECONDS` after the tenant's last write.
- A query operation of a tenant runs on the replica once the replica has replayed that
  position: at once when it already has, else after waiting up to the replica wait, else on
  the primary. So whoever wrote in a tenant (the client itself, a colleague, an
  administrator changing roles) is read back by every later operation of the tenant, from
  any server process. Keyed by tenant rather than by user or session: caches are per tenant,
  and a permission another user just lost must not come back from a stale replica.
- Operations bound to no tenant read the replica without waiting (they see no tenant's
  rows); platform operations and serializable transactions stay on the primary.
- Redis is reached through the store's budget and circuit breaker (app/core/store.py):
  while it cannot be, queries read from the primary (other processes' commits cannot be
  known), and the positions of commits made meanwhile are lost: a read right after Redis
  is back may miss such a write for as long as the replica lags behind it.

Positions are kept as 16 hexadecimal digits: fixed width, so Redis compares them as text
(its Lua numbers are doubles, too narrow for every 64-bit position).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from app.core.db import UNKNOWN_POSITION, Database, Session
from app.core.store import Store, StoreKey, tenant_key

logger = logging.getLogger("tenantry.replicas")

# How long after a tenant's last write its operations make sure the replica has it. A
# replica further behind than this is broken: take it out (docs/scale-out.md).
POSITION_TTL_SECONDS = 3600

# KEYS[1]: the tenant's position; ARGV: a position (16 hex digits), its time to live.
_NEWEST_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if not current or current < ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 1
"""


def _position_key(tenant_id: UUID) -> StoreKey:
    return tenant_key(tenant_id, "commit-position")


def _text(position: int) -> str:
    return f"{position:016x}"


class ReadRouting:
    """Where the read-only operations of a database with a replica run."""

    def __init__(self, database: Database, store: Store, *, wait_ms: int) -> None:
        self.database = database
        self.store = store
        self.wait_ms = wait_ms
        redis = store.redis
        self._script: Any = None if redis is None else redis.register_script(_NEWEST_SCRIPT)
        # Without Redis (one process): tenant key -> (position, expiry on the monotonic clock).
        self._memory: dict[str, tuple[int, float]] = {}

    async def route(self, session: Session) -> None:
        """Send the read-only `session` (not yet begun) to the replica, to run there once
        the replica has the tenant's newest commit; else it stays on the primary."""
        replica = self.database.replica
        if replica is None or session.platform or session.isolation == "serializable":
            return
        at_least = None
        if session.tenant_id is not None:
            try:
                at_least = await self.newest(session.tenant_id)
            except Exception:
                logger.exception("replica routing: the tenant's newest commit cannot be read")
                at_least = UNKNOWN_POSITION
            if at_least == UNKNOWN_POSITION:
                # Where the tenant's writes are cannot be known: read where they all are.
                return
        session.read_from(replica, at_least=at_least, wait_ms=self.wait_ms)

    async def newest(self, tenant_id: UUID) -> int | None:
        """The WAL position of the tenant's newest commit while it is remembered (None: no
        write in the last hour); UNKNOWN_POSITION while Redis cannot be read."""
        key = _position_key(tenant_id)
        if not self.store.shared:
            entry = self._memory.get(key.value)
            if entry is None or entry[1] <= time.monotonic():
                return None
            return entry[0]

        async def on_redis(client: Any) -> int | None:
            raw = await client.get(self.store.backend_key(key))
            return None if raw is None else int(raw.decode() if isinstance(raw, bytes) else raw, 16)

        async def unknown() -> int:
            # Redis out of reach (the store's breaker logs it, once): other processes'
            # commits cannot be known.
            return UNKNOWN_POSITION

        return await self.store.call(on_redis, unknown)

    async def committed(self, session: Session, position: int) -> None:
        """Remember `position` as the newest commit of the session's tenant (if newer)."""
        if session.tenant_id is None:
            return
        key = _position_key(session.tenant_id)
        if not self.store.shared:
            self._remember_in_memory(key.value, position)
            return

        async def on_redis(client: Any) -> None:
            await self._script(
                keys=[self.store.backend_key(key)],
                args=[_text(position), POSITION_TTL_SECONDS],
                client=client,
            )

        async def lost() -> None:
            # Redis out of reach: reads go to the primary until it answers again (the
            # breaker opened on this failed write); this commit's position is lost.
            return None

        try:
            # Within the store's budget, and through its circuit breaker.
            await self.store.call(on_redis, lost, write=True)
        except Exception:
            # The commit stands: only its read-back from the replica is no longer ensured.
            logger.exception(
                "replica routing: a commit of tenant %s was not recorded", session.tenant_id
            )

    def _remember_in_memory(self, key: str, position: int) -> None:
        # No await in here: nothing else runs between the read and the write.
        now = time.monotonic()
        if len(self._memory) > 10_000:
            self._memory = {k: v for k, v in self._memory.items() if v[1] > now}
        current = self._memory.get(key)
        newest = position if current is None or current[1] <= now else max(current[0], position)
        self._memory[key] = (newest, now + POSITION_TTL_SECONDS)


@contextmanager
def routing_reads(database: Database, store: Store, *, wait_ms: int) -> Iterator[None]:
    """While in the block, `database`'s read-only operations run on its replica (when it has
    one) and its commits are tracked for read-your-own-writes."""
    if database.replica is None:
        yield
        return
    routing = ReadRouting(database, store, wait_ms=wait_ms)
    database.router = routing
    database.committed_listeners.append(routing.committed)
    try:
        yield
    finally:
        database.committed_listeners.remove(routing.committed)
        database.router = None
