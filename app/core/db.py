"""The connection pool and the ONE place a tenant is bound to a database transaction.

Every request-path query runs inside `Database.session(...)`: a single transaction per
GraphQL operation (read-only for queries) whose first statement binds `app.tenant_id` with
`set_config(..., is_local => true)`. The setting dies with the transaction, so a pooled
connection never carries a tenant into the next request; with no tenant the setting is ''
and every row-level-security policy matches zero rows (fail closed).

The same statement binds the platform scope (`app.platform`): 'on' only in sessions opened
with `platform=True` for platform administrators and operator commands, '' otherwise, so the
platform tables (sql/migrations/0005) read as empty to every tenant request.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal, TypeVar
from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from asyncpg.transaction import Transaction

StatementListener = Callable[[str], None]
T = TypeVar("T")
# PostgreSQL's isolation levels; None: the server's default (read committed).
Isolation = Literal["read_committed", "repeatable_read", "serializable"]

# One round trip binds the tenant, the platform scope and the statement budget, all
# transaction-local.
_BIND_SQL = (
    "SELECT set_config('app.tenant_id', $1, true), set_config('app.platform', $2, true),"
    " set_config('statement_timeout', $3, true)"
)


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb as Python values and inet as text, so rows map straight onto plain dataclasses.
    await conn.set_type_codec(
        "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog", format="text"
    )
    await conn.set_type_codec("inet", encoder=str, decoder=str, schema="pg_catalog", format="text")


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
            # pg_temp last: even a temporary table could never shadow a tenant table.
            server_settings={"application_name": "tenantry", "search_path": "public, pg_temp"},
            init=_init_connection,
        )
        return cls(pool, statement_timeout_ms=statement_timeout_ms)

    async def close(self) -> None:
        await self._pool.close()

    async def ping(self) -> None:
        """One round trip on a pooled connection; raises when the database is unreachable."""
        async with self._pool.acquire() as conn:
            await conn.fetchval("SELECT 1")

    def session(
        self,
        tenant_id: UUID | None,
        *,
        readonly: bool,
        platform: bool = False,
        isolation: Isolation | None = None,
        impersonator_id: UUID | None = None,
    ) -> Session:
        """A lazily opened transaction bound to `tenant_id` (None: no tenant, zero rows);
        with `platform`, in the platform scope too (only for platform principals); with
        `impersonator_id`, on behalf of that platform administrator acting as a user. With
        `isolation="repeatable_read"` every statement reads one snapshot (a consistent export)."""
        return Session(
            self,
            tenant_id,
            readonly=readonly,
            platform=platform,
            isolation=isolation,
            impersonator_id=impersonator_id,
        )

    @asynccontextmanager
    async def transaction(
        self,
        tenant_id: UUID | None,
        *,
        readonly: bool = False,
        platform: bool = False,
        isolation: Isolation | None = None,
        impersonator_id: UUID | None = None,
    ) -> AsyncIterator[Session]:
        """A session committed when the block succeeds and rolled back when it raises."""
        session = self.session(
            tenant_id,
            readonly=readonly,
            platform=platform,
            isolation=isolation,
            impersonator_id=impersonator_id,
        )
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

    def __init__(
        self,
        db: Database,
        tenant_id: UUID | None,
        *,
        readonly: bool,
        platform: bool = False,
        isolation: Isolation | None = None,
        impersonator_id: UUID | None = None,
    ) -> None:
        self._db = db
        self.tenant_id = tenant_id
        self.readonly = readonly
        self.platform = platform
        self.isolation = isolation
        # The platform administrator acting as the user (break-glass impersonation): every
        # audit entry of this transaction names them, and credential changes refuse to run.
        self.impersonator_id = impersonator_id
        self._lock = asyncio.Lock()
        self._conn: PoolConnectionProxy[Any] | None = None
        self._tx: Transaction | None = None
        self._closed = False
        self._failed = False
        self._savepoints = 0
        self._after_commit: list[Callable[[], Awaitable[object]]] = []

    async def _connection(self) -> PoolConnectionProxy[Any]:
        if self._closed:
            raise RuntimeError("session already closed")
        if self._conn is None:
            conn = await self._db._pool.acquire()
            try:
                tx = conn.transaction(isolation=self.isolation, readonly=self.readonly)
                await tx.start()
                tenant = "" if self.tenant_id is None else str(self.tenant_id)
                scope = "on" if self.platform else ""
                await conn.execute(_BIND_SQL, tenant, scope, self._db._statement_timeout)
            except BaseException:
                await self._db._pool.release(conn)
                raise
            self._conn, self._tx = conn, tx
        return self._conn

    async def _run(self, call: Callable[[PoolConnectionProxy[Any]], Awaitable[T]], sql: str) -> T:
        async with self._lock:
            conn = await self._connection()
            self._db._notify(sql)
            try:
                return await call(conn)
            except asyncpg.PostgresError:
                # Outside a savepoint a failed statement aborts the whole transaction, and a
                # COMMIT would then silently roll back: close() must not report success.
                if self._savepoints == 0:
                    self._failed = True
                raise

    async def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        return await self._run(lambda c: c.fetch(sql, *args), sql)

    async def fetchrow(self, sql: str, *args: object) -> asyncpg.Record | None:
        return await self._run(lambda c: c.fetchrow(sql, *args), sql)

    async def fetchval(self, sql: str, *args: object) -> Any:
        return await self._run(lambda c: c.fetchval(sql, *args), sql)

    async def execute(self, sql: str, *args: object) -> str:
        return await self._run(lambda c: c.execute(sql, *args), sql)

    async def executemany(self, sql: str, args: Sequence[Sequence[object]]) -> None:
        await self._run(lambda c: c.executemany(sql, args), sql)

    async def stream(
        self, sql: str, *args: object, prefetch: int = 500
    ) -> AsyncIterator[asyncpg.Record]:
        """The rows of `sql` through a cursor, `prefetch` at a time, never all in memory.

        The session's lock is held until the iteration ends: finish (or close) it before
        running another statement in this session.
        """
        async with self._lock:
            conn = await self._connection()
            self._db._notify(sql)
            try:
                async for row in conn.cursor(sql, *args, prefetch=prefetch):
                    yield row
            except asyncpg.PostgresError:
                if self._savepoints == 0:
                    self._failed = True
                raise

    @asynccontextmanager
    async def atomic(self) -> AsyncIterator[None]:
        """A savepoint: everything in the block is kept or undone together.

        An error that escapes the block rolls back to the savepoint, and the transaction
        goes on as if the block had not run.
        """
        async with self._lock:
            conn = await self._connection()
            savepoint = conn.transaction()
            await savepoint.start()
        self._savepoints += 1
        # Effects registered inside the block belong to it: undone with it.
        callbacks = len(self._after_commit)
        try:
            yield
        except BaseException:
            del self._after_commit[callbacks:]
            async with self._lock:
                await savepoint.rollback()
            raise
        finally:
            self._savepoints -= 1
        async with self._lock:
            try:
                await savepoint.commit()
            except asyncpg.PostgresError:
                # An error inside the block was swallowed there; the transaction is aborted.
                self._failed = self._failed or self._savepoints == 0
                raise

    def after_commit(self, callback: Callable[[], Awaitable[object]]) -> None:
        """Run `callback` once this transaction has committed (never after a rollback).

        For effects other sessions must not see before the data, e.g. invalidating a cache
        that a concurrent request could otherwise refill from the old rows. A callback
        registered inside a savepoint (`atomic`) that was rolled back is dropped with it, so
        it may state what the block did (e.g. mark sessions revoked).
        """
        self._after_commit.append(callback)

    async def close(self, *, commit: bool) -> None:
        """Commit or roll back, and return the connection to the pool. Idempotent."""
        if self._closed:
            return
        self._closed = True
        conn, tx = self._conn, self._tx
        self._conn = self._tx = None
        callbacks, self._after_commit = self._after_commit, []
        if conn is not None and tx is not None:
            try:
                if commit and not self._failed:
                    await tx.commit()
                else:
                    await tx.rollback()
            finally:
                await self._db._pool.release(conn)
        if commit and self._failed:
            raise asyncpg.InFailedSQLTransactionError(
                "a statement of this transaction failed; it was rolled back, not committed"
            )
        if commit:
            for callback in callbacks:
                await callback()
