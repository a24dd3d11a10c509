"""The connection pool and the ONE place a tenant is bound to a database transaction.

Every request-path query runs inside `Database.session(...)`: a single transaction per
GraphQL operation (read-only for queries) whose first statement binds `app.tenant_id` with
`SET LOCAL`. The setting dies with the transaction, so a pooled connection never carries a
tenant into the next request; with no tenant the setting is '' and every row-level-security
policy matches zero rows (fail closed).

Nothing else is left on a server connection either: the hardened search_path is set in the
same statement, so the server works unchanged behind a transaction pooler (PgBouncer's
pool_mode=transaction), which hands each transaction to whichever server connection is free;
there `transaction_pooler=True` also turns asyncpg's prepared-statement cache off.

With a streaming replica (`connect(replica_dsn=...)`), a read-only session may be sent there
before it opens (`Session.read_from`): it runs on the replica once the replica has replayed
the WAL position it must see, else on the primary. Every read-write commit reports its WAL
position to `Database.committed_listeners` (app/core/replicas.py keeps each tenant's newest),
before the session's after-commit callbacks run.

The same statement binds the platform scope (`app.platform`): 'on' only in sessions opened
with `platform=True` for platform administrators and operator commands, '' otherwise, so the
platform tables (sql/migrations/0005) read as empty to every tenant request.

Every wait is bounded: a connection must be had within the acquire timeout (the pool's, and
the tenant's share of it, app/core/connections.py), every statement within the statement
timeout, every row lock within the lock timeout. A database that cannot be used raises
`DatabaseUnavailable` (nothing was written); a connection lost during COMMIT raises
`CommitOutcomeUnknown`. Driver errors of that kind never leave this module, and an outage is
logged as one line when it starts and one when it ends (app/core/outage.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal, Protocol, TypeVar
from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from asyncpg.transaction import Transaction

from app.core import telemetry
from app.core.connections import TenantSlots, connection_lost, describe
from app.core.errors import CommitOutcomeUnknown, DatabaseUnavailable
from app.core.metrics import PoolUsage
from app.core.outage import OutageLog
from app.core.settings import Limits, Settings

logger = logging.getLogger("tenantry.db")

StatementListener = Callable[[str], None]
CommitListener = Callable[[], None]
# Told, after a read-write session committed, the WAL position its commit reached; must not
# raise (the commit stands whatever it does).
CommittedListener = Callable[["Session", int], Awaitable[None]]
T = TypeVar("T")
# PostgreSQL's isolation levels; None: the server's default (read committed).
Isolation = Literal["read_committed", "repeatable_read", "serializable"]

# One round trip (the simple query protocol: several statements, nothing prepared) binds the
# tenant, the platform scope, the statement and lock budgets and the search_path, all
# transaction-local. SET LOCAL rather than set_config(): Citus forwards SET LOCAL to its worker
# nodes (citus.propagate_set_commands = 'local'), where row-level security reads the tenant;
# it takes no parameters, so every value is one this module made: a UUID's canonical text,
# 'on' or '', a number of milliseconds. pg_temp last in the search_path: even a temporary
# table could never shadow a tenant table.
_BIND_SQL = (
    "SET LOCAL app.tenant_id = '{tenant}'; SET LOCAL app.platform = '{scope}';"
    " SET LOCAL statement_timeout = '{statement_timeout}';"
    " SET LOCAL lock_timeout = '{lock_timeout}'; SET LOCAL search_path = public, pg_temp"
)

# Defaults of the bounded waits: the settings' (TENANTRY_LOCK_TIMEOUT_MS,
# TENANTRY_POOL_ACQUIRE_TIMEOUT_MS, TENANTRY_POOL_TENANT_MAX_SIZE).
LOCK_TIMEOUT_MS = Limits.lock_timeout_ms
ACQUIRE_TIMEOUT_MS = Settings.pool_acquire_timeout_ms
# Prepared statements asyncpg keeps per connection (its default).
_STATEMENT_CACHE_SIZE = 100
# The WAL position a standby has replayed; NULL on a server that is not in recovery (a
# primary has everything it has).
_REPLAYED_SQL = "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() END"
# Where a server's WAL is: replayed on a standby, inserted on a primary.
_POSITION_SQL = (
    "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()"
    " ELSE pg_current_wal_insert_lsn() END"
)
# Asked right after COMMIT: the insert position is past the commit record whatever
# synchronous_commit says (the write position may not be, with it off).
_COMMITTED_SQL = "SELECT pg_current_wal_insert_lsn()"
# A commit whose position could not be read (the connection was lost right after it): no
# replica ever reaches it, so its tenant reads from the primary until the position expires.
UNKNOWN_POSITION = 0xFFFF_FFFF_FFFF_FFFF
# How often a session waiting for a replica to replay a position asks it again, and how long
# one answer may take (a replica that does not answer is one that cannot be used).
_REPLAY_POLL_SECONDS = 0.002
_REPLAY_CHECK_SECONDS = 1.0


class ReadRouter(Protocol):
    """Decides where a read-only operation's session runs (app/core/replicas.py)."""

    async def route(self, session: Session) -> None: ...


def _dead(conn: PoolConnectionProxy[Any]) -> bool:
    """Whether asyncpg already knows the connection is gone (closed, or taken back by the
    pool, which detaches the proxy: then even is_closed() raises)."""
    try:
        return bool(conn.is_closed())
    except asyncpg.InterfaceError:
        return True


class _QuietPoolFloor(logging.Filter):
    """Drops asyncpg's "Failed to restore the pool connection floor" warnings: while the
    database is down the pool retries in the background and logs a traceback each time,
    which is the flood the outage log (one line at the start, one at the end) replaces."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to restore the pool connection floor")


def _quiet_pool_floor() -> None:
    pool_logger = logging.getLogger("asyncpg.pool")
    if not any(isinstance(f, _QuietPoolFloor) for f in pool_logger.filters):
        pool_logger.addFilter(_QuietPoolFloor())


def default_tenant_share(max_size: int) -> int:
    """Connections one tenant may hold at once by default: half the pool, at least one."""
    return max(1, max_size // 2)


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb as Python values and inet as text, so rows map straight onto plain dataclasses.
    await conn.set_type_codec(
        "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog", format="text"
    )
    await conn.set_type_codec("inet", encoder=str, decoder=str, schema="pg_catalog", format="text")


async def _create_pool(
    dsn: str, min_size: int, max_size: int, transaction_pooler: bool
) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        # Only a startup parameter every pooler passes on (PgBouncer refuses search_path);
        # the search_path is set with the tenant, per transaction.
        server_settings={"application_name": "tenantry"},
        # Behind a transaction pooler a statement prepared in one transaction is unknown to
        # the server connection of the next: asyncpg then prepares each statement unnamed, in
        # the round trips that run it.
        statement_cache_size=0 if transaction_pooler else _STATEMENT_CACHE_SIZE,
        init=_init_connection,
    )


async def _replayed(conn: PoolConnectionProxy[Any], position: int, wait_seconds: float) -> bool:
    """Whether the server of `conn` has replayed WAL up to `position`, asking again until
    `wait_seconds` have passed (replay has no notification to wait on)."""
    deadline = time.monotonic() + wait_seconds
    while True:
        replayed = await conn.fetchval(_REPLAYED_SQL, timeout=_REPLAY_CHECK_SECONDS)
        if replayed is None or int(replayed) >= position:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_REPLAY_POLL_SECONDS)


class Database:
    """An asyncpg pool connected as the server's unprivileged role."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        statement_timeout_ms: int,
        lock_timeout_ms: int = LOCK_TIMEOUT_MS,
        acquire_timeout_ms: int = ACQUIRE_TIMEOUT_MS,
        tenant_max_size: int | None = None,
    ) -> None:
        self._pool = pool
        self._statement_timeout = f"{int(statement_timeout_ms)}ms"
        self._lock_timeout = f"{int(lock_timeout_ms)}ms"
        self.acquire_timeout_ms = acquire_timeout_ms
        self.tenant_slots = TenantSlots(
            tenant_max_size or default_tenant_share(pool.get_max_size())
        )
        # The database out of reach, and the pool out of connections: one line each when it
        # starts and when it ends, however many requests fail meanwhile.
        self.outage = OutageLog("database", logger)
        self.saturation = OutageLog("database connections", logger)
        # Observers of every statement a session runs (statement-count tests, tracing).
        self.statement_listeners: list[StatementListener] = []
        # Sessions waiting for a pooled connection now (asyncpg keeps its queue private).
        self._waiting = 0
        # Called just before a read-write transaction sends COMMIT (fault-injection tests).
        self.commit_listeners: list[CommitListener] = []
        # A streaming replica of this database for read-only operations, and where they go.
        self.replica: Database | None = None
        self.router: ReadRouter | None = None
        # Told every read-write commit's WAL position (only asked for while there are any).
        self.committed_listeners: list[CommittedListener] = []

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        min_size: int,
        max_size: int,
        statement_timeout_ms: int,
        lock_timeout_ms: int = LOCK_TIMEOUT_MS,
        acquire_timeout_ms: int = ACQUIRE_TIMEOUT_MS,
        tenant_max_size: int | None = None,
        transaction_pooler: bool = False,
        replica_dsn: str | None = None,
    ) -> Database:
        """A pool on `dsn`; with `transaction_pooler`, fit for a pooler in transaction mode;
        with `replica_dsn`, and a pool of the same size on that streaming replica
        (`replica`), opened lazily: a replica that is down does not keep the server from
        starting, its reads go to the primary."""
        _quiet_pool_floor()

        def database(pool: asyncpg.Pool) -> Database:
            return cls(
                pool,
                statement_timeout_ms=statement_timeout_ms,
                lock_timeout_ms=lock_timeout_ms,
                acquire_timeout_ms=acquire_timeout_ms,
                tenant_max_size=tenant_max_size,
            )

        db = database(await _create_pool(dsn, min_size, max_size, transaction_pooler))
        if replica_dsn is not None:
            replica = database(await _create_pool(replica_dsn, 0, max_size, transaction_pooler))
            # Queries that met a replica outage ran on the primary.
            meanwhile = "reads went to the primary meanwhile"
            replica.outage = OutageLog("database replica", logger, meanwhile=meanwhile)
            replica.saturation = OutageLog(
                "database replica connections", logger, meanwhile=meanwhile
            )
            # Whoever watches the operation's statements sees them wherever they run.
            replica.statement_listeners = db.statement_listeners
            db.replica = replica
        return db

    async def close(self) -> None:
        if self.replica is not None:
            await self.replica.close()
        await self._pool.close()

    def pool_usage(self) -> PoolUsage:
        """Connections open and in use, the pool's maximum, and sessions waiting for one."""
        size = self._pool.get_size()
        return PoolUsage(
            size=size,
            in_use=size - self._pool.get_idle_size(),
            max_size=self._pool.get_max_size(),
            waiting=self._waiting,
        )

    async def schema_version(self) -> str | None:
        """The newest migration applied to the database (readable by the server's role
        through app.schema_version()), on a pooled connection bound to nothing."""
        try:
            return await self._schema_version()
        except Exception as exc:
            if not connection_lost(exc, None):
                raise
            # A pooled connection the server closed while idle: once more, on a new one.
            return await self._schema_version()

    async def _schema_version(self) -> str | None:
        async with self._pool.acquire() as conn:
            version: str | None = await conn.fetchval("SELECT app.schema_version()")
            return version

    async def ping(self) -> None:
        """One round trip on a pooled connection; raises when the database is unreachable."""
        async with self._pool.acquire() as conn:
            await conn.fetchval("SELECT 1")

    async def wal_position(self) -> int:
        """How far this server's WAL goes: written (a primary) or replayed (a standby)."""
        async with self._pool.acquire() as conn:
            return int(await conn.fetchval(_POSITION_SQL))

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

    def _binding(self, tenant_id: UUID | None, *, platform: bool) -> str:
        """The statement that binds a transaction to `tenant_id` (None: no tenant)."""
        # A UUID's text is hex digits and dashes: nothing in it can end the literal (parsed
        # again, so a string passed by mistake is refused rather than spliced in).
        tenant = "" if tenant_id is None else str(UUID(str(tenant_id)))
        return _BIND_SQL.format(
            tenant=tenant,
            scope="on" if platform else "",
            statement_timeout=self._statement_timeout,
            lock_timeout=self._lock_timeout,
        )

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
        # The connection was lost: nothing more runs, and nothing is committed.
        self._broken = False
        self._failed = False
        self._savepoints = 0
        self._after_commit: list[Callable[[], Awaitable[object]]] = []
        # Where to try first (`read_from`): the replica, the position it must have replayed,
        # and how long to wait for it.
        self._replica: tuple[Database, int | None, float] | None = None
        # This session runs on a replica (it never fills a cache another session trusts).
        self.on_replica = False
        # The WAL position this read-write session's commit reached (replicas configured).
        self.commit_position: int | None = None

    def read_from(self, replica: Database, *, at_least: int | None, wait_ms: int) -> None:
        """Run this read-only session on `replica`, a streaming standby, if it has replayed
        WAL position `at_least` (None: nothing to wait for) or does within `wait_ms`; else,
        and when the replica cannot be reached, on the primary as usual. Decided when the
        first statement runs: a session that has begun stays where it is."""
        if not self.readonly:
            raise RuntimeError("only a read-only session may run on a replica")
        if self._conn is None:
            self._replica = (replica, at_least, wait_ms / 1000)

    async def _connection(self) -> PoolConnectionProxy[Any]:
        if self._broken:
            # The connection died earlier in this operation: nothing more can run in it.
            raise DatabaseUnavailable
        if self._closed:
            raise RuntimeError("session already closed")
        if self._conn is None and self._replica is not None:
            replica, self._replica = self._replica, None
            if await self._begin_on_replica(*replica):
                assert self._conn is not None
                return self._conn
        if self._conn is None:
            conn = await self._acquire()
            try:
                tx = await self._begin(conn)
            except BaseException as exc:
                await self._release(conn)
                if not connection_lost(exc, conn):
                    raise
                # A pooled connection the server closed while it was idle (a restart): the
                # operation has not begun, so it starts again once on a fresh connection.
                conn = await self._acquire()
                try:
                    tx = await self._begin(conn)
                except BaseException as again:
                    await self._release(conn)
                    if connection_lost(again, conn):
                        self._db.outage.failed(describe(again))
                        raise DatabaseUnavailable from None
                    raise
            self._db.outage.recovered()
            self._conn, self._tx = conn, tx
        return self._conn

    async def _begin_on_replica(
        self, replica: Database, at_least: int | None, wait_seconds: float
    ) -> bool:
        """Open this session's transaction on `replica` once it has replayed `at_least`;
        False (and nothing held) when it does not within `wait_seconds` or is out of reach."""
        primary, self._db = self._db, replica
        try:
            conn = await self._acquire()
        except BaseException as exc:
            self._db = primary
            if isinstance(exc, DatabaseUnavailable):
                # Logged by the replica's outage log (once per outage); the primary serves.
                telemetry.replica_read("unavailable")
                return False
            raise
        outcome: telemetry.ReplicaOutcome = "behind"
        try:
            if at_least is None or await _replayed(conn, at_least, wait_seconds):
                self._tx = await self._begin(conn)
                self._conn = conn
                self.on_replica = True
                replica.outage.recovered()
                telemetry.replica_read("replica")
                return True
        except Exception as exc:
            if not (isinstance(exc, TimeoutError) or connection_lost(exc, conn)):
                await self._release(conn)
                self._db = primary
                raise
            replica.outage.failed(describe(exc))
            outcome = "unavailable"
        await self._release(conn)
        self._db = primary
        telemetry.replica_read(outcome)
        return False

    async def _acquire(self) -> PoolConnectionProxy[Any]:
        """A pooled connection within the acquire timeout, counted against the tenant's share;
        DatabaseUnavailable when there is none in time or the server cannot be reached."""
        db = self._db
        slots = db.tenant_slots
        deadline = asyncio.timeout(db.acquire_timeout_ms / 1000)
        try:
            async with deadline:
                # Sessions waiting for a connection (metrics; asyncpg keeps its queue private).
                db._waiting += 1
                try:
                    await slots.acquire(self.tenant_id)
                    try:
                        conn: PoolConnectionProxy[Any] = await db._pool.acquire()
                    except BaseException:
                        slots.release(self.tenant_id)
                        raise
                finally:
                    db._waiting -= 1
        except Exception as exc:
            if isinstance(exc, TimeoutError) and deadline.expired():
                db.saturation.failed(
                    f"no connection free within {db.acquire_timeout_ms} ms"
                    f" (pool of {db._pool.get_max_size()}, at most {slots.limit} per tenant)"
                )
                raise DatabaseUnavailable from None
            if not connection_lost(exc, None) and not isinstance(exc, asyncpg.PostgresError):
                raise
            # The pool opens connections on demand: the server refused or is restarting.
            db.outage.failed(describe(exc))
            raise DatabaseUnavailable from None
        db.saturation.recovered()
        return conn

    async def _begin(self, conn: PoolConnectionProxy[Any]) -> Transaction:
        tx = conn.transaction(isolation=self.isolation, readonly=self.readonly)
        await tx.start()
        await conn.execute(self._db._binding(self.tenant_id, platform=self.platform))
        return tx

    async def _release(self, conn: PoolConnectionProxy[Any]) -> None:
        try:
            await self._db._pool.release(conn)
        except Exception:  # noqa: S110
            # Resetting a connection that died fails; the pool has terminated it already and
            # opens a new one when needed. The operation's own outcome is decided elsewhere.
            pass
        finally:
            self._db.tenant_slots.release(self.tenant_id)

    def _check(self, exc: BaseException, conn: PoolConnectionProxy[Any]) -> None:
        """Classify a statement's failure: a lost connection breaks the session and becomes
        DatabaseUnavailable; a database error outside a savepoint dooms the transaction (a
        COMMIT would silently roll back, and close() must not report success)."""
        if connection_lost(exc, conn):
            self._broken = self._failed = True
            self._db.outage.failed(describe(exc))
            raise DatabaseUnavailable from None
        if isinstance(exc, asyncpg.PostgresError) and self._savepoints == 0:
            self._failed = True

    async def _run(self, call: Callable[[PoolConnectionProxy[Any]], Awaitable[T]], sql: str) -> T:
        async with self._lock:
            conn = await self._connection()
            self._db._notify(sql)
            started = time.perf_counter()
            try:
                return await call(conn)
            except Exception as exc:
                self._check(exc, conn)
                raise
            finally:
                # The request's statement count and database time (its log line, metrics).
                telemetry.statement(sql, time.perf_counter() - started)

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
            except Exception as exc:
                self._check(exc, conn)
                raise

    @asynccontextmanager
    async def atomic(self) -> AsyncIterator[None]:
        """A savepoint: everything in the block is kept or undone together.

        An error that escapes the block rolls back to the savepoint, and the transaction
        goes on as if the block had not run.
        """
        async with self._lock:
            conn = await self._connection()
            try:
                savepoint = conn.transaction()
                await savepoint.start()
            except Exception as exc:
                self._check(exc, conn)
                raise
        self._savepoints += 1
        # Effects registered inside the block belong to it: undone with it.
        callbacks = len(self._after_commit)
        try:
            yield
        except BaseException:
            del self._after_commit[callbacks:]
            # With the connection gone there is nothing to roll back to: the error that
            # broke the session (DatabaseUnavailable) fails the whole operation.
            if not self._broken:
                async with self._lock:
                    try:
                        await savepoint.rollback()
                    except Exception as exc:
                        self._check(exc, conn)
                        raise
            raise
        finally:
            self._savepoints -= 1
        async with self._lock:
            try:
                await savepoint.commit()
            except Exception as exc:
                self._check(exc, conn)
                if isinstance(exc, asyncpg.PostgresError):
                    # An error inside the block was swallowed there; the transaction is
                    # aborted.
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
        """Commit or roll back, and return the connection to the pool. Idempotent.

        Raises DatabaseUnavailable when a commit was asked of a session whose connection was
        lost (nothing was committed), and CommitOutcomeUnknown when the connection was lost
        during the COMMIT of a read-write transaction (it may or may not have committed).
        """
        if self._closed:
            return
        self._closed = True
        conn, tx = self._conn, self._tx
        self._conn = self._tx = None
        callbacks, self._after_commit = self._after_commit, []
        if conn is not None and tx is not None:
            try:
                await self._finish(conn, tx, commit=commit and not self._failed)
            finally:
                await self._release(conn)
        if commit and self._broken:
            raise DatabaseUnavailable
        if commit and self._failed:
            raise asyncpg.InFailedSQLTransactionError(
                "a statement of this transaction failed; it was rolled back, not committed"
            )
        if commit:
            if self.commit_position is not None:
                # Before the callbacks: a cache they invalidate may be refilled only from a
                # replica that has this commit.
                for listener in self._db.committed_listeners:
                    await listener(self, self.commit_position)
            for callback in callbacks:
                await callback()

    async def _finish(
        self, conn: PoolConnectionProxy[Any], tx: Transaction, *, commit: bool
    ) -> None:
        if self._broken:
            return  # a lost connection's transaction is rolled back by the server
        if not commit:
            try:
                await tx.rollback()
            except Exception as exc:
                if not connection_lost(exc, conn):
                    raise
                # Lost while rolling back: nothing was committed either way.
                self._broken = True
                self._db.outage.failed(describe(exc))
            return
        if _dead(conn):
            # Lost before COMMIT was sent (the pool noticed): certainly not committed.
            self._broken = True
            self._db.outage.failed("connection lost before COMMIT")
            raise DatabaseUnavailable
        if not self.readonly:
            for listener in self._db.commit_listeners:
                listener()
        try:
            await tx.commit()
        except Exception as exc:
            if not connection_lost(exc, conn):
                raise  # e.g. a serialization failure: the server rolled it back
            self._broken = True
            self._db.outage.failed(describe(exc))
            if self.readonly:
                raise DatabaseUnavailable from None
            # COMMIT was sent and no answer came back: only the server knows.
            raise CommitOutcomeUnknown from None
        if not self.readonly and self._db.committed_listeners:
            try:
                self.commit_position = int(await conn.fetchval(_COMMITTED_SQL))
            except Exception:
                # Committed all the same; where its commit record ends is unknown.
                self.commit_position = UNKNOWN_POSITION
