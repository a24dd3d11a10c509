"""The cross-tenant attacks of test_rls.py, on every seeded tenant table, generically.

test_rls.py attacks the core tables with realistic statements; here each statement is
written once for any table (no per-table column knowledge), so every table seed_graph
fills, now and later, is attacked the same way. seed_graph must fill every tenant table
of the catalog (test_no_tenant_sees_zero_rows_in_every_tenant_table enforces that).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg
import pytest

from app.core.db import Database
from tests.factories import SEEDED_TABLES, SeededTenant, seed_graph

TABLES = sorted(SEEDED_TABLES - {"tenants"})
# The server's role may not UPDATE or DELETE these at all (tests/isolation/test_catalog.py).
APPEND_ONLY = {"audit_log"}


@dataclass(frozen=True)
class Pair:
    a: SeededTenant
    b: SeededTenant


@pytest.fixture(scope="module")
async def pair(database: Database) -> Pair:
    return Pair(await seed_graph(database), await seed_graph(database))


async def _rows(database: Database, tenant: uuid.UUID, table: str, row: uuid.UUID) -> int:
    async with database.transaction(tenant, readonly=True) as session:
        count: int = await session.fetchval(
            f"SELECT count(*) FROM {table} WHERE id = $1",  # noqa: S608
            row,
        )
    return count


@pytest.mark.parametrize("table", TABLES)
async def test_another_tenants_row_is_invisible_and_untouchable(
    database: Database, pair: Pair, table: str
) -> None:
    theirs = pair.b.id_in(table)
    for target in (theirs, uuid.uuid4()):
        async with database.transaction(pair.a.tenant) as session:
            found = await session.fetch(
                f"SELECT * FROM {table} WHERE id = $1",  # noqa: S608
                target,
            )
            assert found == []
            if table in APPEND_ONLY:
                continue
            updated = await session.execute(
                f"UPDATE {table} SET tenant_id = tenant_id WHERE id = $1",  # noqa: S608
                target,
            )
            deleted = await session.execute(
                f"DELETE FROM {table} WHERE id = $1",  # noqa: S608
                target,
            )
        # Another tenant's row and a random id are indistinguishable.
        assert (updated, deleted) == ("UPDATE 0", "DELETE 0")
    assert await _rows(database, pair.b.tenant, table, theirs) == 1


@pytest.mark.parametrize("table", TABLES)
async def test_a_row_cannot_be_written_for_another_tenant(
    database: Database, pair: Pair, table: str
) -> None:
    # A copy of A's own row (readable to A) that claims to belong to B.
    copy = (
        f"INSERT INTO {table} SELECT (jsonb_populate_record(NULL::{table}, to_jsonb(x)"  # noqa: S608
        " || jsonb_build_object('tenant_id', $2::uuid, 'id', gen_random_uuid()))).*"
        f" FROM {table} AS x WHERE x.id = $1"
    )
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with database.transaction(pair.a.tenant) as session:
            await session.execute(copy, pair.a.id_in(table), pair.b.tenant)


@pytest.mark.parametrize("table", TABLES)
async def test_a_row_cannot_be_moved_to_another_tenant(database: Database, table: str) -> None:
    a, b = await seed_graph(database), await seed_graph(database)

    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with database.transaction(a.tenant) as session:
            await session.execute(
                f"UPDATE {table} SET tenant_id = $1 WHERE id = $2",  # noqa: S608
                b.tenant,
                a.id_in(table),
            )

    assert await _rows(database, a.tenant, table, a.id_in(table)) == 1
    assert await _rows(database, b.tenant, table, a.id_in(table)) == 0
