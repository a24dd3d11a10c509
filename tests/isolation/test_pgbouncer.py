"""Tenant isolation behind a real PgBouncer in transaction mode (docs/scale-out.md).

A transaction pooler hands every transaction to whichever server connection is free, so a
server connection carries one client's transaction, then another's. The properties of
tests/isolation/test_rls.py must hold there too: a tenant sees only its rows, no tenant
sees none, and nothing a transaction bound survives into the next one on the same server
connection. And `tenantry serve` must start and serve many tenants at once through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest

from app.core.db import Database
from app.core.dbadmin import APP_ROLE
from app.core.errors import DatabaseUnavailable
from app.core.keys import KeyRing
from app.core.security import TokenService
from app.core.settings import Settings
from tests.app_fixtures import Org, new_org
from tests.conftest import TestDatabase
from tests.deploy.serving import operator_env, serving
from tests.factories import SeededTenant, seed_graph, tenant_tables
from tests.pgbouncer import Bouncer, pgbouncer

PASSWORD = "pooled secret"
SEED = 1717


@pytest.fixture(scope="module")
def bouncer(test_db: TestDatabase) -> Iterator[Bouncer]:
    """Two server connections for every client: transactions of many clients interleave."""
    with pgbouncer(test_db.urls.app, {APP_ROLE: PASSWORD}, pool_size=2) as running:
        yield running


@pytest.fixture(scope="module")
def one_server_connection(test_db: TestDatabase) -> Iterator[Bouncer]:
    """One server connection: every client's transactions run on it, one after another."""
    with pgbouncer(test_db.urls.app, {APP_ROLE: PASSWORD}, pool_size=1) as running:
        yield running


async def pooled_database(
    bouncer: Bouncer, *, max_size: int, acquire_timeout_ms: int = 30_000
) -> Database:
    """The app's pool through PgBouncer, as the server opens it behind a transaction pooler
    (a connection may take long to come on a loaded machine: these tests are not about it)."""
    return await Database.connect(
        bouncer.url(APP_ROLE),
        min_size=1,
        max_size=max_size,
        statement_timeout_ms=5000,
        acquire_timeout_ms=acquire_timeout_ms,
        transaction_pooler=True,
    )


@pytest.fixture
async def pooled(bouncer: Bouncer) -> AsyncIterator[Database]:
    db = await pooled_database(bouncer, max_size=8)
    try:
        yield db
    finally:
        await db.close()


@pytest.fixture(scope="module")
async def seeded(database: Database) -> list[SeededTenant]:
    """Three tenants with a row in every tenant table (written directly, not through PgBouncer)."""
    return [await seed_graph(database) for _ in range(3)]


@pytest.fixture(scope="module")
async def tables(database: Database) -> dict[str, str]:
    async with database.transaction(None, readonly=True) as session:
        return await tenant_tables(session)


def count_by_tenant(table: str, key: str) -> str:
    # `table` and `key` come from the catalog (format('%I.%I'), attname), never from input.
    return f"SELECT {key} AS tenant, count(*) AS n FROM {table} GROUP BY {key}"  # noqa: S608


async def test_a_session_through_the_pooler_keeps_the_hardened_search_path(
    pooled: Database,
) -> None:
    async with pooled.transaction(None, readonly=True) as session:
        assert await session.fetchval("SHOW search_path") == "public, pg_temp"


async def test_each_tenant_sees_only_its_rows_and_no_tenant_sees_none(
    pooled: Database, seeded: list[SeededTenant], tables: dict[str, str]
) -> None:
    async with pooled.transaction(None, readonly=True) as session:
        for table, key in tables.items():
            assert await session.fetch(count_by_tenant(table, key)) == [], table
    for tenant in seeded:
        async with pooled.transaction(tenant.tenant, readonly=True) as session:
            for table, key in tables.items():
                rows = await session.fetch(count_by_tenant(table, key))
                # Every seeded table has a row of each tenant: "only its own" is not vacuous.
                assert [r["tenant"] for r in rows] == [tenant.tenant], table


SETTINGS = (
    "SELECT current_setting('app.tenant_id', true) AS tenant,"
    " current_setting('app.platform', true) AS platform,"
    " current_setting('statement_timeout') AS statement_timeout,"
    " current_setting('search_path') AS search_path"
)


async def test_nothing_a_transaction_binds_survives_on_the_server_connection(
    one_server_connection: Bouncer, seeded: list[SeededTenant], tables: dict[str, str]
) -> None:
    # Client 1 binds tenant A through the app's session; client 2, another client connection
    # of the pooler, then runs on the very same server connection without binding anything.
    other = await asyncpg.connect(one_server_connection.url(APP_ROLE), statement_cache_size=0)
    binder = await pooled_database(one_server_connection, max_size=1)
    try:
        before = dict(await other.fetchrow(SETTINGS))
        async with binder.transaction(seeded[0].tenant, platform=True) as session:
            server = await session.fetchval("SELECT pg_backend_pid()")
            assert await session.fetchval("SELECT count(*) FROM projects") > 0
            assert dict(await session.fetchrow(SETTINGS)) != before
        for block in (other.transaction(readonly=True), contextlib.nullcontext()):
            async with block:
                assert await other.fetchval("SELECT pg_backend_pid()") == server
                after = dict(await other.fetchrow(SETTINGS))
                # A custom setting once set reads '' afterwards rather than NULL.
                assert after == {**before, "tenant": "", "platform": ""}
                assert await other.fetchval("SELECT app.current_tenant_id()") is None
                for table in tables:
                    count = f"SELECT count(*) FROM {table}"  # noqa: S608 (from the catalog)
                    assert await other.fetchval(count) == 0, table
    finally:
        await other.close()
        await binder.close()


async def test_interleaved_sessions_of_many_tenants_never_cross(
    pooled: Database, seeded: list[SeededTenant]
) -> None:
    # 8 client connections share 2 server connections: each server connection runs the
    # transactions of several clients and tenants in turn. A fixed seed keeps the
    # interleaving reproducible.
    rng = random.Random(SEED)
    plan = [(rng.choice(seeded), rng.random() < 0.3) for _ in range(240)]
    created: dict[UUID, set[str]] = {t.tenant: set() for t in seeded}

    async def one(step: int, tenant: SeededTenant, write: bool) -> None:
        async with pooled.transaction(tenant.tenant, readonly=not write) as session:
            if write:
                name = f"pooled {step}"
                await session.execute(
                    "INSERT INTO projects (tenant_id, name, created_by) VALUES ($1, $2, $3)",
                    tenant.tenant,
                    name,
                    tenant.user,
                )
                created[tenant.tenant].add(name)
            owners = await session.fetch("SELECT DISTINCT tenant_id FROM projects")
            assert [r["tenant_id"] for r in owners] == [tenant.tenant]
            assert await session.fetchval("SELECT app.current_tenant_id()") == tenant.tenant

    await asyncio.gather(*(one(i, t, w) for i, (t, w) in enumerate(plan)))
    assert all(created.values()), "every tenant wrote"
    for tenant in seeded:
        async with pooled.transaction(tenant.tenant, readonly=True) as session:
            names = {r["name"] for r in await session.fetch("SELECT name FROM projects")}
        assert names >= created[tenant.tenant]
        for other in seeded:
            if other is not tenant:
                assert not names & created[other.tenant]


CREATE = """
mutation($name: String!) { createProject(input: {name: $name}) { project { id } errors { code } } }
"""
LIST = "{ projects(first: 100) { totalCount nodes { id name } } }"
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \S+ \w+ ")


async def test_the_server_serves_many_tenants_at_once_through_the_pooler(
    bouncer: Bouncer, database: Database, test_db: TestDatabase, tmp_path: Path
) -> None:
    # `tenantry serve` configured as an operator would behind PgBouncer. Before the server
    # sent no search_path startup parameter, PgBouncer refused its every connection.
    keys_file = tmp_path / "signing-keys.json"
    tokens = TokenService.from_settings(KeyRing.from_file(keys_file, create=True), Settings())
    orgs = [await new_org(database, tokens) for _ in range(4)]
    env = {
        "DATABASE_URL": bouncer.url(APP_ROLE),
        "MIGRATION_DATABASE_URL": test_db.urls.owner,
        "TENANTRY_DATABASE_POOLER": "transaction",
        "TENANTRY_SIGNING_KEYS_FILE": str(keys_file),
        "TENANTRY_POOL_MAX_SIZE": "8",
        # Time is not what this test looks at: a busy machine makes slow-request lines and
        # long waits for a connection, which must not turn into 503s here.
        "TENANTRY_SLOW_REQUEST_MS": "0",
        "TENANTRY_POOL_ACQUIRE_TIMEOUT_MS": "30000",
    }
    rng = random.Random(SEED)
    # Creates and reads of four tenants, shuffled and sent 16 at a time.
    plan = [(org, i) for org in orgs for i in range(12)] + [(org, None) for org in orgs * 6]
    rng.shuffle(plan)
    with serving(tmp_path / "data", env) as served:
        async with httpx.AsyncClient(base_url=served.base, timeout=30) as http:
            gate = asyncio.Semaphore(16)

            async def send(org: Org, step: int | None) -> dict[str, Any]:
                body = (
                    {"query": LIST}
                    if step is None
                    else {"query": CREATE, "variables": {"name": f"load {step}"}}
                )
                async with gate:
                    response = await http.post(
                        "/graphql", json=body, headers={"authorization": f"Bearer {org.token}"}
                    )
                assert response.status_code == 200, response.text
                answer: dict[str, Any] = response.json()
                assert "errors" not in answer, answer
                return answer

            answers = await asyncio.gather(*(send(org, step) for org, step in plan))
            created = {
                org.id: {
                    a["data"]["createProject"]["project"]["id"]
                    for (o, step), a in zip(plan, answers, strict=True)
                    if o is org and step is not None
                }
                for org in orgs
            }
            for org in orgs:
                listed = (await send(org, None))["data"]["projects"]
                # Exactly its own twelve: none lost, none of another tenant's.
                assert {n["id"] for n in listed["nodes"]} == created[org.id]
                assert listed["totalCount"] == 12
    # Not one warning or error logged: no failed statement, no retried connection.
    levels = {line.split()[2] for line in served.lines if LOG_LINE.match(line)}
    assert levels == {"INFO"}, served.output


async def test_a_transaction_the_pooler_cannot_place_fails_as_unavailable(
    test_db: TestDatabase, seeded: list[SeededTenant]
) -> None:
    # PgBouncer's queue is bounded as the server's own pool is (docs/scale-out.md: a
    # query_wait_timeout of a few seconds): a transaction refused there is DatabaseUnavailable,
    # which requests answer with 503 UNAVAILABLE, never a hang or an internal error.
    with pgbouncer(
        test_db.urls.app, {APP_ROLE: PASSWORD}, pool_size=1, query_wait_timeout=1
    ) as busy:
        holder = await asyncpg.connect(busy.url(APP_ROLE), statement_cache_size=0)
        db = await pooled_database(busy, max_size=2, acquire_timeout_ms=2000)
        try:
            # The pooler's only server connection, held by an open transaction.
            holding = holder.transaction()
            await holding.start()
            await holder.execute("SELECT 1")
            with pytest.raises(DatabaseUnavailable):
                async with db.transaction(seeded[0].tenant, readonly=True) as session:
                    await session.fetchval("SELECT count(*) FROM projects")
            await holding.rollback()
            # Once the server connection is free again, the same pool works.
            async with db.transaction(seeded[0].tenant, readonly=True) as session:
                assert await session.fetchval("SELECT count(*) FROM projects") > 0
        finally:
            await db.close()
            await holder.close()


def tenantry(tmp_path: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`tenantry ARGV` as an operator runs it, configured only by `env`."""
    return subprocess.run(  # noqa: S603 (our own CLI)
        [sys.executable, "-m", "app.cli", *argv],
        env=operator_env(tmp_path / "data", env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_a_tenant_is_exported_and_imported_through_the_pooler(
    bouncer: Bouncer, database: Database, tokens: TokenService, tmp_path: Path
) -> None:
    # The command line's pool honours TENANTRY_DATABASE_POOLER too: the export streams one
    # repeatable-read snapshot through a cursor, the import writes it in one transaction.
    env = {
        "DATABASE_URL": bouncer.url(APP_ROLE),
        "TENANTRY_DATABASE_POOLER": "transaction",
    }
    org = await new_org(database, tokens, members=2)
    exported = tmp_path / "tenant.jsonl"
    ran = await asyncio.to_thread(
        tenantry, tmp_path, "tenant", "export", org.slug, "-o", str(exported), **env
    )
    assert ran.returncode == 0, ran.stderr
    assert all(m.email in exported.read_text(encoding="utf-8") for m in org.members)
    slug = f"copy-{org.slug}"
    ran = await asyncio.to_thread(
        tenantry, tmp_path, "tenant", "import", str(exported), "--slug", slug, **env
    )
    assert ran.returncode == 0, ran.stderr
    async with database.transaction(None, readonly=True) as session:
        copy = await session.fetchval("SELECT id FROM app.tenant_by_slug($1)", slug)
    async with database.transaction(copy, readonly=True) as session:
        assert await session.fetchval("SELECT count(*) FROM users") == 2
