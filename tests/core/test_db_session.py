"""app.core.db: the tenant-bound session every request runs in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from uuid import UUID

import asyncpg
import pytest

from app.core.db import Database
from tests.conftest import TestDatabase
from tests.factories import seed_tenant

MakeDatabase = Callable[..., Awaitable[Database]]


@pytest.fixture
async def make_database(test_db: TestDatabase) -> AsyncIterator[MakeDatabase]:
    """Own pools as the server's role, for tests that need a size or timeout of their own."""
    made: list[Database] = []

    async def make(*, max_size: int = 1, statement_timeout_ms: int = 5000) -> Database:
        db = await Database.connect(
            test_db.urls.app,
            min_size=1,
            max_size=max_size,
            statement_timeout_ms=statement_timeout_ms,
        )
        made.append(db)
        return db

    yield make
    for db in made:
        await db.close()


async def project_names(database: Database, tenant: UUID) -> list[str]:
    async with database.transaction(tenant, readonly=True) as session:
        rows = await session.fetch("SELECT name FROM projects ORDER BY name")
    return [r["name"] for r in rows]


INSERT_PROJECT = "INSERT INTO projects (tenant_id, name) VALUES ($1, $2)"


async def test_session_acquires_no_connection_until_a_statement_runs(
    make_database: MakeDatabase,
) -> None:
    db = await make_database(max_size=1)
    seen: list[str] = []
    db.statement_listeners.append(seen.append)
    idle = db.session(None, readonly=True)
    async with db.transaction(None):
        pass
    # Were either holding the pool's only connection, this would wait for ever.
    async with asyncio.timeout(10), db.transaction(None, readonly=True) as session:
        assert await session.fetchval("SELECT 1") == 1
    assert seen == ["SELECT 1"]
    await idle.close(commit=True)


async def test_read_only_session_rejects_writes(database: Database) -> None:
    tenant = await seed_tenant(database)
    with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
        async with database.transaction(tenant, readonly=True) as session:
            await session.execute(INSERT_PROJECT, tenant, "written")
    assert await project_names(database, tenant) == []


async def test_transaction_commits_on_success_and_rolls_back_on_exception(
    database: Database,
) -> None:
    tenant = await seed_tenant(database)

    class Boom(Exception):
        pass

    async def insert_then_fail() -> None:
        async with database.transaction(tenant) as session:
            await session.execute(INSERT_PROJECT, tenant, "rolled back")
            raise Boom

    with pytest.raises(Boom):
        await insert_then_fail()
    async with database.transaction(tenant) as session:
        await session.execute(INSERT_PROJECT, tenant, "committed")
    assert await project_names(database, tenant) == ["committed"]


async def test_atomic_undoes_only_its_own_block(database: Database) -> None:
    tenant = await seed_tenant(database)
    async with database.transaction(tenant) as session:

        async def insert_then_fail() -> None:
            async with session.atomic():
                await session.execute(INSERT_PROJECT, tenant, "b undone")
                raise ValueError("undo")

        await session.execute(INSERT_PROJECT, tenant, "a before")
        with pytest.raises(ValueError, match="undo"):
            await insert_then_fail()
        async with session.atomic():
            await session.execute(INSERT_PROJECT, tenant, "c kept")
        await session.execute(INSERT_PROJECT, tenant, "d after")
    assert await project_names(database, tenant) == ["a before", "c kept", "d after"]


async def test_after_commit_callbacks_of_a_rolled_back_block_are_dropped_with_it(
    database: Database,
) -> None:
    tenant = await seed_tenant(database)
    ran: list[str] = []

    def note(name: str) -> Callable[[], Awaitable[None]]:
        async def callback() -> None:
            ran.append(name)

        return callback

    async with database.transaction(tenant) as session:
        session.after_commit(note("outer"))
        async with session.atomic():
            session.after_commit(note("kept block"))

        async def failing_block() -> None:
            async with session.atomic():
                session.after_commit(note("undone block"))
                async with session.atomic():
                    session.after_commit(note("nested in the undone block"))
                raise RuntimeError("the block fails")

        with pytest.raises(RuntimeError):
            await failing_block()
        session.after_commit(note("after the block"))

    assert ran == ["outer", "kept block", "after the block"]


async def test_atomic_lets_the_transaction_continue_after_a_database_error(
    database: Database,
) -> None:
    tenant = await seed_tenant(database)
    async with database.transaction(tenant) as session:
        await session.execute(
            "INSERT INTO users (tenant_id, email, display_name) VALUES ($1, 'x@y.z', 'X')", tenant
        )
        with pytest.raises(asyncpg.UniqueViolationError):
            async with session.atomic():
                await session.execute(
                    "INSERT INTO users (tenant_id, email, display_name) VALUES ($1, 'X@y.z', 'X')",
                    tenant,
                )
        await session.execute(INSERT_PROJECT, tenant, "after the conflict")
    assert await project_names(database, tenant) == ["after the conflict"]


async def test_transaction_does_not_report_success_after_a_caught_database_error(
    database: Database,
) -> None:
    tenant = await seed_tenant(database)
    try:
        async with database.transaction(tenant) as session:
            await session.execute(INSERT_PROJECT, tenant, "written before the error")
            # A caught error outside atomic(), e.g. a conflict turned into a typed result.
            with pytest.raises(asyncpg.DivisionByZeroError):
                await session.execute("SELECT 1 / 0")
    except asyncpg.PostgresError:
        return  # the lost commit was reported
    assert await project_names(database, tenant) == ["written before the error"]


async def test_statement_timeout_cancels_long_statements(make_database: MakeDatabase) -> None:
    db = await make_database(statement_timeout_ms=100)
    async with db.transaction(None, readonly=True) as session:
        assert await session.fetchval("SHOW statement_timeout") == "100ms"
    with pytest.raises(asyncpg.QueryCanceledError):
        async with db.transaction(None, readonly=True) as session:
            await session.fetchval("SELECT pg_sleep(10)")


async def test_close_is_idempotent(database: Database) -> None:
    tenant = await seed_tenant(database)
    session = database.session(tenant, readonly=False)
    await session.execute(INSERT_PROJECT, tenant, "committed once")
    await session.close(commit=True)
    await session.close(commit=True)
    await session.close(commit=False)  # too late to roll back: already committed
    with pytest.raises(RuntimeError, match="closed"):
        await session.fetchval("SELECT 1")
    assert await project_names(database, tenant) == ["committed once"]
    never_used = database.session(tenant, readonly=True)
    await never_used.close(commit=False)
    await never_used.close(commit=True)


async def test_database_close_is_idempotent(make_database: MakeDatabase) -> None:
    db = await make_database()
    await db.close()
    await db.close()
    with pytest.raises(asyncpg.InterfaceError):
        async with db.transaction(None) as session:
            await session.fetchval("SELECT 1")


async def test_statement_listeners_see_every_statement(make_database: MakeDatabase) -> None:
    db = await make_database()
    first: list[str] = []
    second: list[str] = []
    db.statement_listeners += [first.append, second.append]
    async with db.transaction(None) as session:
        await session.fetch("SELECT 1")
        await session.fetchrow("SELECT 2")
        await session.fetchval("SELECT 3")
        await session.execute("SELECT 4")
        await session.executemany("SELECT $1::int", [(5,), (6,)])
    # The tenant binding is the session's own business, not a statement of the caller.
    assert first == second == ["SELECT 1", "SELECT 2", "SELECT 3", "SELECT 4", "SELECT $1::int"]


async def test_session_binds_its_tenant_for_its_transaction_only(
    make_database: MakeDatabase,
) -> None:
    db = await make_database(max_size=1)
    tenant = await seed_tenant(db)
    async with db.transaction(tenant, readonly=True) as session:
        assert await session.fetchval("SELECT app.current_tenant_id()") == tenant
        assert await session.fetchval("SELECT count(*) FROM tenants") == 1
    async with db.transaction(None, readonly=True) as session:
        assert await session.fetchval("SELECT app.current_tenant_id()") is None
        assert await session.fetchval("SELECT count(*) FROM tenants") == 0


# What a session's binding sets, read back inside it and on the same connection afterwards.
BOUND_SETTINGS = (
    "SELECT current_setting('search_path') AS search_path,"
    " current_setting('statement_timeout') AS statement_timeout,"
    " current_setting('lock_timeout') AS lock_timeout,"
    " current_setting('app.platform', true) AS platform"
)


async def test_every_setting_of_a_session_ends_with_its_transaction(
    make_database: MakeDatabase,
) -> None:
    # Nothing may outlive the transaction on a server connection: behind a transaction
    # pooler the next transaction on it is another client's (docs/scale-out.md).
    db = await make_database(max_size=1)
    async with db._pool.acquire() as conn:
        before = dict(await conn.fetchrow(BOUND_SETTINGS))
    async with db.transaction(None, readonly=True, platform=True) as session:
        inside = dict(await session.fetchrow(BOUND_SETTINGS))
    async with db._pool.acquire() as conn:
        after = dict(await conn.fetchrow(BOUND_SETTINGS))
    # The hardened search_path: no "$user" schema, pg_temp last (searched first otherwise).
    assert inside == {
        "search_path": "public, pg_temp",
        "statement_timeout": "5s",
        "lock_timeout": "2s",
        "platform": "on",
    }
    # A custom setting once set reads '' afterwards, not NULL (SECURITY.md, rule 1).
    assert after == {**before, "platform": ""}
    assert before["search_path"] != inside["search_path"]


async def test_a_tenant_that_is_not_a_uuid_is_never_bound(database: Database) -> None:
    # The binding takes no parameters (SET LOCAL cannot): its value is a parsed UUID's text.
    session = database.session("x'; SET LOCAL app.platform = 'on", readonly=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="base 16"):
        await session.fetchval("SELECT 1")
    await session.close(commit=False)


async def test_a_repeatable_read_session_reads_one_snapshot(database: Database) -> None:
    tenant = await seed_tenant(database)
    async with database.transaction(tenant, readonly=True, isolation="repeatable_read") as session:
        level = await session.fetchval("SELECT current_setting('transaction_isolation')")
        assert level == "repeatable read"
        assert await project_names(database, tenant) == []
        async with database.transaction(tenant) as writer:
            await writer.execute(INSERT_PROJECT, tenant, "Committed meanwhile")
        assert await session.fetchval("SELECT count(*) FROM projects") == 0
    assert await project_names(database, tenant) == ["Committed meanwhile"]


async def test_stream_yields_every_row_a_batch_at_a_time(database: Database) -> None:
    tenant = await seed_tenant(database)
    async with database.transaction(tenant) as session:
        for i in range(7):
            await session.execute(INSERT_PROJECT, tenant, f"p{i}")
    async with database.transaction(tenant, readonly=True) as session:
        names = [r["name"] async for r in session.stream("SELECT name FROM projects", prefetch=2)]
        # The session is usable again once the iteration has ended.
        assert await session.fetchval("SELECT count(*) FROM projects") == 7
    assert sorted(names) == [f"p{i}" for i in range(7)]
