"""Tenant isolation as the server's role sees it: through the app's pool and raw connections.

Every test runs as tenantry_app, the role the server uses; tables come from the catalog
where a rule must hold for all of them. Data of other tenants always exists (two seeded
tenants per module, plus whatever the rest of the session created).
"""

from __future__ import annotations

import string
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.db import Database, Session
from app.core.dbadmin import OWNER_ROLE
from app.core.errors import NotFound, translate_database_error
from tests.conftest import TestDatabase
from tests.factories import (
    SEEDED_TABLES,
    SeededTenant,
    seed_graph,
    seed_tenant,
    seed_user,
    tenant_tables,
)
from tests.properties import examples


@dataclass(frozen=True)
class Tenants:
    a: SeededTenant
    b: SeededTenant


@pytest.fixture(scope="module")
async def tenants(database: Database) -> Tenants:
    return Tenants(a=await seed_graph(database), b=await seed_graph(database))


@pytest.fixture(scope="module")
async def tables(database: Database) -> dict[str, str]:
    """Every tenant table (qualified name -> tenant key column), from the catalog."""
    async with database.transaction(None, readonly=True) as session:
        found = await tenant_tables(session)
    assert set(found) >= {f"public.{t}" for t in SEEDED_TABLES}
    return found


@pytest.fixture
async def app_conn(test_db: TestDatabase) -> AsyncIterator[asyncpg.Connection]:
    """A raw connection as the server's role, outside the app's pool and sessions."""
    conn = await asyncpg.connect(test_db.urls.app)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def single_connection_db(test_db: TestDatabase) -> AsyncIterator[Database]:
    """The app's pool with one connection, so consecutive transactions share it."""
    db = await Database.connect(test_db.urls.app, min_size=1, max_size=1, statement_timeout_ms=5000)
    try:
        yield db
    finally:
        await db.close()


async def count_rows(session: Session, table: str) -> int:
    # `table` comes from the catalog (format('%I.%I')), never from input.
    return int(await session.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608


# --- no tenant, or a malformed one ------------------------------------------------------


async def test_no_tenant_sees_zero_rows_in_every_tenant_table(
    database: Database, tenants: Tenants, tables: dict[str, str]
) -> None:
    for seeded in (tenants.a, tenants.b):
        async with database.transaction(seeded.tenant, readonly=True) as session:
            for table, key in tables.items():
                own = await session.fetchval(
                    f"SELECT count(*) FROM {table} WHERE {key} = $1",  # noqa: S608
                    seeded.tenant,
                )
                # Rows of two tenants must exist, or "zero rows" below proves nothing.
                assert own > 0, f"no rows in {table}: extend tests.factories.seed_graph"
    async with database.transaction(None, readonly=True) as session:
        visible = {table: await count_rows(session, table) for table in tables}
    assert visible == dict.fromkeys(tables, 0)


async def test_connection_that_never_bound_a_tenant_sees_zero_rows(
    app_conn: asyncpg.Connection, tenants: Tenants, tables: dict[str, str]
) -> None:
    assert await app_conn.fetchval("SELECT current_setting('app.tenant_id', true)") is None
    visible = {
        table: await app_conn.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608
        for table in tables
    }
    assert visible == dict.fromkeys(tables, 0)


BAD_SETTINGS: dict[str, Callable[[UUID, UUID], str]] = {
    "empty": lambda a, b: "",
    "garbage": lambda a, b: "garbage",
    "two ids": lambda a, b: f"{a},{b}",
    "two ids, spaced": lambda a, b: f"{a} {b}",
    "injection": lambda a, b: f"{a}' OR true --",
    "nil uuid": lambda a, b: str(UUID(int=0)),
}


@pytest.mark.parametrize("setting", BAD_SETTINGS.values(), ids=BAD_SETTINGS.keys())
async def test_malformed_tenant_setting_errors_or_shows_nothing(
    app_conn: asyncpg.Connection,
    tenants: Tenants,
    tables: dict[str, str],
    setting: Callable[[UUID, UUID], str],
) -> None:
    value = setting(tenants.a.tenant, tenants.b.tenant)
    outcomes = {}
    for table in tables:
        try:
            async with app_conn.transaction():
                await app_conn.execute("SELECT set_config('app.tenant_id', $1, true)", value)
                outcomes[table] = await app_conn.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608
        except asyncpg.DataError:
            outcomes[table] = "error"
    assert set(outcomes.values()) <= {0, "error"}, outcomes
    # The same statements with a well-formed id do see rows: the query path works.
    async with app_conn.transaction():
        await app_conn.execute(
            "SELECT set_config('app.tenant_id', $1, true)", str(tenants.a.tenant)
        )
        assert await app_conn.fetchval("SELECT count(*) FROM public.projects") > 0


# --- pooled connections -----------------------------------------------------------------

CURRENT_TENANT_SETTING = "SELECT current_setting('app.tenant_id', true)"


async def test_next_transaction_on_the_same_connection_sees_no_tenant(
    single_connection_db: Database, tenants: Tenants, tables: dict[str, str]
) -> None:
    async with single_connection_db.transaction(tenants.a.tenant) as session:
        backend = await session.fetchval("SELECT pg_backend_pid()")
        assert await count_rows(session, "public.projects") > 0
    async with single_connection_db.transaction(None) as session:
        assert await session.fetchval("SELECT pg_backend_pid()") == backend
        assert await session.fetchval(CURRENT_TENANT_SETTING) in ("", None)
        visible = {table: await count_rows(session, table) for table in tables}
    assert visible == dict.fromkeys(tables, 0)


async def test_no_tenant_setting_survives_on_a_released_connection(
    single_connection_db: Database, tenants: Tenants
) -> None:
    async with single_connection_db.transaction(tenants.a.tenant) as session:
        backend = await session.fetchval("SELECT pg_backend_pid()")
    async with single_connection_db.transaction(tenants.a.tenant) as session:
        # A session-level SET, as a bug elsewhere might issue: the pool's reset must drop it.
        await session.execute(
            "SELECT set_config('app.tenant_id', $1, false)", str(tenants.a.tenant)
        )
    # The raw pooled connection, outside any Session (which would bind its own tenant first).
    async with single_connection_db._pool.acquire() as conn:
        assert await conn.fetchval("SELECT pg_backend_pid()") == backend
        assert await conn.fetchval(CURRENT_TENANT_SETTING) in ("", None)
        assert await conn.fetchval("SELECT count(*) FROM public.projects") == 0


async def test_temporary_table_cannot_shadow_a_tenant_table(
    single_connection_db: Database,
) -> None:
    a, b = await seed_graph(single_connection_db), await seed_graph(single_connection_db)
    try:
        async with single_connection_db.transaction(a.tenant) as session:
            await session.execute("CREATE TEMPORARY TABLE projects (id uuid, name text)")
            await session.execute("INSERT INTO projects VALUES ($1, 'planted by A')", uuid.uuid4())
    except asyncpg.InsufficientPrivilegeError:
        return  # temporary tables refused: nothing can be planted
    async with single_connection_db.transaction(b.tenant) as session:
        names = [r["name"] for r in await session.fetch("SELECT name FROM projects")]
    assert names == ["Project"]


# --- one tenant against another ---------------------------------------------------------

# A text column of each core table, to attempt an update with.
EDITABLE = {
    "tenants": "name",
    "users": "display_name",
    "projects": "name",
    "tasks": "title",
    "comments": "body",
}


async def attempt_on_row(database: Database, tenant: UUID, table: str, row_id: UUID) -> tuple:
    column = EDITABLE[table]
    async with database.transaction(tenant) as session:
        found = await session.fetch(f"SELECT * FROM {table} WHERE id = $1", row_id)  # noqa: S608
        updated = await session.execute(
            f"UPDATE {table} SET {column} = 'pwned' WHERE id = $1",  # noqa: S608
            row_id,
        )
        deleted = await session.execute(f"DELETE FROM {table} WHERE id = $1", row_id)  # noqa: S608
    return found, updated, deleted


@pytest.mark.parametrize("table", EDITABLE)
async def test_reading_updating_deleting_another_tenants_row_finds_nothing(
    database: Database, tenants: Tenants, table: str
) -> None:
    b_row = tenants.b.id_in(table)
    against_b = await attempt_on_row(database, tenants.a.tenant, table, b_row)
    against_random = await attempt_on_row(database, tenants.a.tenant, table, uuid.uuid4())
    assert against_b == against_random == ([], "UPDATE 0", "DELETE 0")
    async with database.transaction(tenants.b.tenant, readonly=True) as session:
        value = await session.fetchval(
            f"SELECT {EDITABLE[table]} FROM {table} WHERE id = $1",  # noqa: S608
            b_row,
        )
    assert value not in (None, "pwned")


def insert_statement(table: str, tenant_id: UUID, owner: SeededTenant) -> tuple[str, list]:
    """An INSERT into `table` with the given tenant_id whose references are `owner`'s rows."""
    return {
        "tenants": (
            "INSERT INTO tenants (id, slug, name) VALUES ($1, $2, 'x')",
            [tenant_id, f"t-{uuid.uuid4().hex[:12]}"],
        ),
        "users": (
            "INSERT INTO users (tenant_id, email, display_name) VALUES ($1, $2, 'x')",
            [tenant_id, f"{uuid.uuid4().hex[:12]}@example.com"],
        ),
        "projects": ("INSERT INTO projects (tenant_id, name) VALUES ($1, 'x')", [tenant_id]),
        "tasks": (
            "INSERT INTO tasks (tenant_id, project_id, title, position) VALUES ($1, $2, 'x', 1)",
            [tenant_id, owner.project],
        ),
        "comments": (
            "INSERT INTO comments (tenant_id, task_id, body) VALUES ($1, $2, 'x')",
            [tenant_id, owner.task],
        ),
    }[table]


@pytest.mark.parametrize("table", EDITABLE)
async def test_inserting_a_row_for_another_tenant_is_rejected(
    database: Database, tenants: Tenants, table: str
) -> None:
    # For `tenants`, "another tenant" is any id but the bound one: a new id here.
    target = uuid.uuid4() if table == "tenants" else tenants.b.tenant
    # References point at B's rows, so only row-level security stands in the way.
    sql, args = insert_statement(table, target, tenants.b)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with database.transaction(tenants.a.tenant) as session:
            await session.execute(sql, *args)
    if table != "tenants":
        # The same statement bound to B works: the rejection is about the tenant.
        async with database.transaction(tenants.b.tenant) as session:
            await session.execute(sql, *args)


@pytest.mark.parametrize("table", EDITABLE)
async def test_moving_a_row_to_another_tenant_is_rejected(database: Database, table: str) -> None:
    a, b = await seed_graph(database), await seed_graph(database)
    key = "id" if table == "tenants" else "tenant_id"
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with database.transaction(a.tenant) as session:
            await session.execute(
                f"UPDATE {table} SET {key} = $1 WHERE id = $2",  # noqa: S608
                b.tenant,
                a.id_in(table),
            )
    async with database.transaction(a.tenant, readonly=True) as session:
        assert (
            await session.fetchval(
                f"SELECT {key} FROM {table} WHERE id = $1",  # noqa: S608
                a.id_in(table),
            )
            == a.tenant
        )


async def test_inserting_an_id_that_another_tenant_uses_succeeds(database: Database) -> None:
    # Keys are (tenant_id, id): B's id is free in A, so a conflict cannot reveal B's rows.
    a, b = await seed_graph(database), await seed_graph(database)
    async with database.transaction(a.tenant) as session:
        await session.execute(
            "INSERT INTO projects (tenant_id, id, name) VALUES ($1, $2, 'same id')",
            a.tenant,
            b.project,
        )
    for seeded, name in ((a, "same id"), (b, "Project")):
        async with database.transaction(seeded.tenant, readonly=True) as session:
            names = await session.fetch("SELECT name FROM projects WHERE id = $1", b.project)
        assert [r["name"] for r in names] == [name]


# Child rows of A that reference a parent: (statement, A's arguments before the parent id).
REFERENCES: dict[str, tuple[str, Callable[[SeededTenant], list[object]]]] = {
    "task -> project": (
        "INSERT INTO tasks (tenant_id, title, position, project_id) VALUES ($1, 't', 1, $2)",
        lambda a: [a.tenant],
    ),
    "task -> assignee": (
        "INSERT INTO tasks (tenant_id, project_id, title, position, assignee_id)"
        " VALUES ($1, $2, 't', 1, $3)",
        lambda a: [a.tenant, a.project],
    ),
    "comment -> task": (
        "INSERT INTO comments (tenant_id, body, task_id) VALUES ($1, 'c', $2)",
        lambda a: [a.tenant],
    ),
    "comment -> author": (
        "INSERT INTO comments (tenant_id, task_id, body, author_id) VALUES ($1, $2, 'c', $3)",
        lambda a: [a.tenant, a.task],
    ),
    "project -> creator": (
        "INSERT INTO projects (tenant_id, name, created_by) VALUES ($1, 'p', $2)",
        lambda a: [a.tenant],
    ),
    "moving a task to another project": (
        "UPDATE tasks SET project_id = $3 WHERE tenant_id = $1 AND id = $2",
        lambda a: [a.tenant, a.task],
    ),
}
PARENT = {
    "task -> project": "project",
    "task -> assignee": "user",
    "comment -> task": "task",
    "comment -> author": "user",
    "project -> creator": "user",
    "moving a task to another project": "project",
}


async def reference_error(
    database: Database, a: SeededTenant, case: str, parent: UUID
) -> asyncpg.PostgresError:
    sql, leading = REFERENCES[case]
    with pytest.raises(asyncpg.PostgresError) as caught:
        async with database.transaction(a.tenant) as session:
            await session.execute(sql, *leading(a), parent)
    return caught.value


@pytest.mark.parametrize("case", REFERENCES)
async def test_referencing_another_tenants_row_fails_like_a_random_id(
    database: Database, tenants: Tenants, case: str
) -> None:
    b_parent = getattr(tenants.b, PARENT[case])
    random_parent = uuid.uuid4()
    via_b = await reference_error(database, tenants.a, case, b_parent)
    via_random = await reference_error(database, tenants.a, case, random_parent)

    assert type(via_b) is type(via_random) is asyncpg.ForeignKeyViolationError
    assert (via_b.sqlstate, via_b.constraint_name) == (
        via_random.sqlstate,
        via_random.constraint_name,
    )
    # Even the raw texts differ only in the id the caller sent itself.
    assert str(via_b) == str(via_random)
    assert via_b.detail.replace(str(b_parent), "?") == via_random.detail.replace(
        str(random_parent), "?"
    )
    # What a client may see: the same domain error, carrying no id at all.
    shown_b, shown_random = translate_database_error(via_b), translate_database_error(via_random)
    assert isinstance(shown_b, NotFound)
    assert (type(shown_b), shown_b.code, shown_b.message) == (
        type(shown_random),
        shown_random.code,
        shown_random.message,
    )
    assert str(b_parent) not in shown_b.message


async def test_same_email_may_exist_in_two_tenants_but_once_per_tenant(
    database: Database,
) -> None:
    a, b = await seed_tenant(database), await seed_tenant(database)
    await seed_user(database, b, email="Same@Example.com")
    await seed_user(database, a, email="same@example.com")
    with pytest.raises(asyncpg.UniqueViolationError):
        await seed_user(database, a, email="SAME@example.COM")
    for tenant in (a, b):
        async with database.transaction(tenant, readonly=True) as session:
            emails = await session.fetch("SELECT email FROM users")
        assert len(emails) == 1


# --- the server's role cannot step around row-level security ----------------------------


async def test_row_security_off_fails_on_every_tenant_table(
    app_conn: asyncpg.Connection, tables: dict[str, str]
) -> None:
    await app_conn.execute("SET row_security = off")
    failures = {}
    for table in tables:
        try:
            await app_conn.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608
        except asyncpg.InsufficientPrivilegeError:
            failures[table] = "refused"
    assert failures == dict.fromkeys(tables, "refused")


@pytest.mark.parametrize(
    "statement",
    [
        "TRUNCATE {table}",
        "TRUNCATE {table} CASCADE",
        "ALTER TABLE {table} DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY",
        "DROP POLICY tenant_isolation ON {table}",
        "CREATE POLICY open ON {table} USING (true) WITH CHECK (true)",
    ],
)
async def test_server_role_cannot_alter_tenant_tables(
    app_conn: asyncpg.Connection, tables: dict[str, str], statement: str
) -> None:
    refused = []
    for table in tables:
        try:
            await app_conn.execute(statement.format(table=table))
        except asyncpg.InsufficientPrivilegeError:
            refused.append(table)
    assert refused == list(tables)


@pytest.mark.parametrize(
    "statement",
    [
        f"SET ROLE {OWNER_ROLE}",
        f"SET SESSION AUTHORIZATION {OWNER_ROLE}",
        "SET ROLE postgres",
        "CREATE TABLE public.intruder (id int)",
        "CREATE TABLE app.intruder (id int)",
        "CREATE SCHEMA intruder",
        "CREATE FUNCTION public.intruder() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "CREATE VIEW public.intruder AS SELECT 1",
        "SELECT * FROM public._yoyo_migration",
        "DELETE FROM public._yoyo_migration",
    ],
)
async def test_server_role_cannot_escalate(app_conn: asyncpg.Connection, statement: str) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await app_conn.execute(statement)
    assert await app_conn.fetchval("SELECT current_user") == "tenantry_app"


async def test_tenant_by_slug_returns_id_and_status_of_that_slug_only(
    app_conn: asyncpg.Connection, tenants: Tenants
) -> None:
    lookup = "SELECT * FROM app.tenant_by_slug($1)"
    found = await app_conn.fetch(lookup, tenants.a.slug)
    assert [dict(r) for r in found] == [{"id": tenants.a.tenant, "status": "active"}]
    assert [r["id"] for r in await app_conn.fetch(lookup, tenants.b.slug.upper())] == [
        tenants.b.tenant
    ]
    for unknown in ("no-such-tenant", "", "%", "_", f"{tenants.a.slug}%"):
        assert await app_conn.fetch(lookup, unknown) == []
    # It opened nothing else: the table itself still shows no row.
    assert await app_conn.fetchval("SELECT count(*) FROM tenants") == 0


# --- property: random interleavings never cross tenants ---------------------------------

TEXT_COLUMN = {"projects": "name", "tasks": "title", "comments": "body"}
PARENT_TABLE = {"tasks": "projects", "comments": "tasks"}
PARENT_COLUMN = {"tasks": "project_id", "comments": "task_id"}
INSERTS = {
    "projects": "INSERT INTO projects (tenant_id, name) VALUES ($1, $2) RETURNING id",
    "tasks": "INSERT INTO tasks (tenant_id, title, position, project_id)"
    " VALUES ($1, $2, 1, $3) RETURNING id",
    "comments": "INSERT INTO comments (tenant_id, body, task_id) VALUES ($1, $2, $3) RETURNING id",
}
SNAPSHOT = " UNION ALL ".join(
    f"SELECT '{table}' AS tbl, id, tenant_id, {column} AS text FROM {table}"  # noqa: S608
    for table, column in TEXT_COLUMN.items()
)


@dataclass(frozen=True)
class Row:
    tenant: UUID
    text: str
    parent: UUID | None


@dataclass
class Model:
    """What each tenant must see, kept in Python."""

    tenants: list[UUID]
    rows: dict[str, dict[UUID, Row]] = field(
        default_factory=lambda: {table: {} for table in TEXT_COLUMN}
    )

    def pick(self, table: str, index: int) -> UUID:
        """Any tenant's row of `table`, or (one time in n+1) an id that exists nowhere."""
        ids = [*self.rows[table], uuid.UUID(int=index)]
        return ids[index % len(ids)]

    def owner(self, table: str, row_id: UUID) -> UUID | None:
        row = self.rows[table].get(row_id)
        return row.tenant if row else None

    def delete(self, table: str, row_id: UUID) -> None:
        del self.rows[table][row_id]
        for child, parent_table in PARENT_TABLE.items():
            if parent_table == table:
                for child_id in [i for i, r in self.rows[child].items() if r.parent == row_id]:
                    self.delete(child, child_id)

    def visible_to(self, tenant: UUID) -> set[tuple[str, UUID, UUID, str]]:
        return {
            (table, row_id, row.tenant, row.text)
            for table, rows in self.rows.items()
            for row_id, row in rows.items()
            if row.tenant == tenant
        }


async def apply(database: Database, model: Model, op: tuple) -> None:
    kind, table, who, pick, text = op
    tenant = model.tenants[who]
    if kind == "insert":
        parent = model.pick(PARENT_TABLE[table], pick) if table in PARENT_TABLE else None
        args = [tenant, text] if parent is None else [tenant, text, parent]
        if parent is None or model.owner(PARENT_TABLE[table], parent) == tenant:
            async with database.transaction(tenant) as session:
                row_id = await session.fetchval(INSERTS[table], *args)
            model.rows[table][row_id] = Row(tenant, text, parent)
        else:
            with pytest.raises(asyncpg.ForeignKeyViolationError):
                async with database.transaction(tenant) as session:
                    await session.fetchval(INSERTS[table], *args)
        return
    target = model.pick(table, pick)
    mine = model.owner(table, target) == tenant
    async with database.transaction(tenant) as session:
        if kind == "select":
            found = await session.fetch(
                f"SELECT id, tenant_id FROM {table} WHERE id = $1",  # noqa: S608
                target,
            )
            assert [tuple(r) for r in found] == ([(target, tenant)] if mine else [])
        elif kind == "update":
            status = await session.execute(
                f"UPDATE {table} SET {TEXT_COLUMN[table]} = $2 WHERE id = $1",  # noqa: S608
                target,
                text,
            )
            assert status == f"UPDATE {int(mine)}"
        else:
            status = await session.execute(f"DELETE FROM {table} WHERE id = $1", target)  # noqa: S608
            assert status == f"DELETE {int(mine)}"
    if mine and kind == "update":
        old = model.rows[table][target]
        model.rows[table][target] = Row(old.tenant, text, old.parent)
    elif mine and kind == "delete":
        model.delete(table, target)


async def assert_each_tenant_sees_exactly_its_rows(database: Database, model: Model) -> None:
    for tenant in model.tenants:
        async with database.transaction(tenant, readonly=True) as session:
            seen = {tuple(r) for r in await session.fetch(SNAPSHOT)}
        assert seen == model.visible_to(tenant)


OPERATIONS = st.tuples(
    st.sampled_from(["insert", "insert", "select", "update", "delete"]),
    st.sampled_from(list(TEXT_COLUMN)),
    st.integers(min_value=0, max_value=2),  # which of the three tenants acts
    st.integers(min_value=0, max_value=63),  # which row (of any tenant) it targets
    st.text(alphabet=string.ascii_letters, min_size=1, max_size=8),
)


@settings(max_examples=examples(25))
@given(ops=st.lists(OPERATIONS, min_size=1, max_size=12))
async def test_random_interleavings_never_cross_tenants(
    database: Database, examples_run: list[int], ops: list[tuple]
) -> None:
    examples_run.append(1)
    # Fresh tenants per example: each starts empty, so the model is exact.
    model = Model(tenants=[await seed_tenant(database) for _ in range(3)])
    for op in ops:
        await apply(database, model, op)
        await assert_each_tenant_sees_exactly_its_rows(database, model)
