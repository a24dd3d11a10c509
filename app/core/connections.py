"""Bounded waits for pooled connections, and telling a lost connection from a failed statement.

Used by app/core/db.py only: the pool and the tenant binding stay there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

import asyncpg

# Failures of the connection, not of the statement: the server refused or dropped it, is
# starting up or shutting down, or has no connection slot left. The statement may be retried
# on another connection once the server is back; its own error would be something else.
_SERVER_GONE: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # 08xxx, including "connection was closed in the middle"
    asyncpg.AdminShutdownError,  # 57P01: pg_ctl stop (smart or fast)
    asyncpg.CrashShutdownError,  # 57P02: pg_ctl stop -m immediate, or a crashed backend
    asyncpg.CannotConnectNowError,  # 57P03: starting up, shutting down, in recovery
    asyncpg.TooManyConnectionsError,  # 53300: max_connections reached
    OSError,  # refused, reset, unreachable
    TimeoutError,  # connecting took longer than asyncpg's connect timeout
)


def connection_lost(exc: BaseException, conn: asyncpg.Connection | object | None) -> bool:
    """Whether `exc` means the database (or the connection to it) is gone."""
    if isinstance(exc, _SERVER_GONE):
        return True
    if not isinstance(exc, asyncpg.InterfaceError):
        return False
    # asyncpg reports using a connection it already knows is dead as an InterfaceError: "the
    # underlying connection is closed", or, once the pool has taken the dead connection back,
    # "released back to the pool" (the proxy is detached: even is_closed() raises). Other
    # InterfaceErrors are misuse, not outages.
    is_closed = getattr(conn, "is_closed", None)
    if not callable(is_closed):
        return False
    try:
        return bool(is_closed())
    except asyncpg.InterfaceError:
        return True


def describe(exc: BaseException) -> str:
    """A one-line reason for the server's log (never shown to clients)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class TenantSlots:
    """At most `limit` connections held at once by the sessions of one tenant (None: every
    session bound to no tenant counts as one more "tenant"), so one tenant's stuck requests
    (a held lock, a slow query) cannot take the whole pool from everyone else.

    Tenants without a session hold no entry: the map never grows with the number of tenants.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a tenant must be allowed at least one connection")
        self.limit = limit
        # key -> (semaphore, sessions holding or waiting for a slot)
        self._slots: dict[Hashable, tuple[asyncio.Semaphore, int]] = {}

    async def acquire(self, key: Hashable) -> None:
        """Wait for a slot of `key` (callers bound the wait with their deadline)."""
        semaphore, users = self._slots.get(key) or (asyncio.Semaphore(self.limit), 0)
        self._slots[key] = (semaphore, users + 1)
        try:
            await semaphore.acquire()
        except BaseException:
            self._leave(key)
            raise

    def release(self, key: Hashable) -> None:
        semaphore, _ = self._slots[key]
        semaphore.release()
        self._leave(key)

    def held(self, key: Hashable) -> int:
        """Slots of `key` taken now (for tests and readiness)."""
        entry = self._slots.get(key)
        return 0 if entry is None else self.limit - entry[0]._value

    def _leave(self, key: Hashable) -> None:
        semaphore, users = self._slots[key]
        if users == 1:
            del self._slots[key]
        else:
            self._slots[key] = (semaphore, users - 1)
