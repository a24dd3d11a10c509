"""The connection pool and the ONE place a tenant is bound to a database transaction.

Every request-path query runs inside `Database.session(...)`: a single transaction per
GraphQL operation (read-only for queries) whose first statement binds `app.tenant_id` with
`set_config(..., is_local => true)`. The setting dies with the transaction, so a pooled
connection never carries a tenant into the next request; with no tenant the setting is ''
and every row-level-security policy matches zero rows (fail closed).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from asyncpg.transaction import Transaction

StatementListener = Callable[[str], None]

# One round trip binds the tenant and the statement budget, both transaction-local.
_BIND_SQL = (
    "SELECT set_config('app.tenant_id', $1, true), set_config('statement_timeout', $2, true)"
)


class Database:
    """An asyncpg pool connected as the server's unprivileged role."""

    def __init__(self, pool: asyncpg.Pool, *, statement_timeout_ms: int) -> None:
        self._pool = pool
        self._statement_timeout = f"{statement_timeout_ms}ms"
        # Observers of every statement a session runs (statement-count tests, tracing).
        self.statement_listeners: list[StatementListener] = []

    @classmethod
    async def connect(
        cls, dsn: str, *, min_size: int, max_size: int, statement_timeout_ms: int
    ) -> Database:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            server_settings={"application_name": "tenantry"},
        )
        return cls(pool, statement_timeout_ms=statement_timeout_ms)

    async def close(self) -> None:
        await self._pool.close()

    def session(self, tenant_id: UUID | None, *, readonly: bool) -> Session:
        """A lazily opened transaction bound to `tenant_id` (None: no tenant, zero rows)."""
        return Session(self, tenant_id, readonly=readonly)

    @asynccontextmanager
    async def transaction(
        self, tenant_id: UUID | None, *, readonly: bool = False
    ) -> AsyncIterator[Session]:
        """A session committed when the block succeeds and rolled back when it raises."""
        session = self.session(tenant_id, readonly=readonly)
        try:
            yield session
        except BaseException:
            await session.close(commit=False)
            raise
        await session.close(commit=True)

    def _notify(self, sql: str) -> None:
        for listener in self.statement_listeners:
            listener(sql)


class Session:
    """One tenant-bound transaction shared by every resolver of one GraphQL operation.

    asyncpg runs one query at a time per connection, and sibling resolvers run
    concurrently, so each statement takes the session's lock.
    """

    def __init__(self, db: Database, tenant_id: UUID | None, *, readonly: bool) -> None:
        self._db = db
        self.tenant_id = tenant_id
        self.readonly = readonly
        self._lock = asyncio.Lock()
        self._conn: PoolConnectionProxy[Any] | None = None
        self._tx: Transaction | None = None
        self._closed = False

    async def _connection(self) -> PoolConnectionProxy[Any]:
        if self._closed:
            raise RuntimeError("session already closed")
        if self._conn is None:
            conn = await self._db._pool.acquire()
            try:
                tx = conn.transaction(readonly=self.readonly)
                await tx.start()
                tenant = "" if self.tenant_id is None else str(self.tenant_id)
                await conn.execute(_BIND_SQL, tenant, self._db._statement_timeout)
            except BaseException:
                await self._db._pool.release(conn)
                raise
            self._conn, self._tx = conn, tx
        return self._conn

    async def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        async with self._lock:
            conn = await self._connection()
            self._db._notify(sql)
            return await conn.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: object) -> asyncpg.Record | None:
        async with self._lock:
            conn = await self._connection()
            self._db._notify(sql)
            return await conn.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: object) -> Any:
        async with self._lock:
            conn = await self._connection()
            self._db._notify(sql)
            return await conn.fetchval(sql, *args)

    async def execute(self, sql: str, *args: object) -> str:
        async with self._lock:
            conn = await self._connection()
            self._db._notify(sql)
            return await conn.execute(sql, *args)

    async def executemany(self, sql: str, args: Sequence[Sequence[object]]) -> None:
        async with self._lock:
            conn = await self._connection()
            self._db._notify(sql)
            await conn.executemany(sql, args)

    @asynccontextmanager
    async def atomic(self) -> AsyncIterator[None]:
        """A savepoint: everything in the block is kept or undone together."""
        async with self._lock:
            conn = await self._connection()
            savepoint = conn.transaction()
            await savepoint.start()
        try:
            yield
        except BaseException:
            async with self._lock:
                await savepoint.rollback()
            raise
        async with self._lock:
            await savepoint.commit()

    async def close(self, *, commit: bool) -> None:
        """Commit or roll back, and return the connection to the pool. Idempotent."""
        if self._closed:
            return
        self._closed = True
        conn, tx = self._conn, self._tx
        self._conn = self._tx = None
        if conn is None or tx is None:
            return
        try:
            if commit:
                await tx.commit()
            else:
                await tx.rollback()
        finally:
            await self._db._pool.release(conn)
