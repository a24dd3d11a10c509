"""Every wait is bounded: for a row lock (lock_timeout), for a pooled connection (the
acquire timeout, then 503 UNAVAILABLE with Retry-After), and per tenant: one tenant's
requests stuck behind a held lock hold at most their share of the pool, so another
tenant's requests still answer.

Each test runs a server of its own on the test database with its own small pool; the test
holds locks and connections itself, for as long as it needs, so nothing depends on timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import asyncpg
import httpx
import pytest

from app.core.db import Database
from app.core.errors import DatabaseUnavailable
from app.core.security import TokenService
from app.core.settings import Settings
from tests.app_fixtures import GraphQL, Org, new_org, start_server, stop_server
from tests.conftest import TestDatabase

CREATE_PROJECT = """
mutation ($name: String!) {
  createProject(input: {name: $name}) { project { id name } errors { code message field } }
}"""
UPDATE_PROJECT = """
mutation ($id: ID!, $name: String!) {
  updateProject(input: {id: $id, name: $name}) { project { name } errors { code message field } }
}"""
PROJECT_COUNT = "{ projects { totalCount } }"


@dataclass
class OwnServer:
    database: Database
    gql: GraphQL


ServerFactory = Callable[..., Awaitable[OwnServer]]


@pytest.fixture
async def own_server(test_db: TestDatabase, app_settings: Settings) -> AsyncIterator[ServerFactory]:
    """Starts servers with pools (and bounds) of their own; stops them afterwards."""
    started: list[tuple[Any, Database, httpx.AsyncClient]] = []

    async def make(**pool: Any) -> OwnServer:
        database = await Database.connect(test_db.urls.app, min_size=1, **pool)
        server, url = await start_server(app_settings, database)
        client = httpx.AsyncClient(base_url=url, timeout=120)
        started.append((server, database, client))
        return OwnServer(database, GraphQL(client))

    yield make
    for server, database, client in started:
        await client.aclose()
        await stop_server(server)
        await database.close()


@asynccontextmanager
async def project_locked(test_db: TestDatabase, org: Org, name: str) -> AsyncIterator[None]:
    """Holds the project `name` of `org` locked (FOR UPDATE) by an administrator's connection
    until the block ends."""
    conn = await asyncpg.connect(test_db.admin_db_url)
    try:
        async with conn.transaction():
            locked = await conn.fetchval(
                "SELECT count(*) FROM (SELECT 1 FROM projects WHERE tenant_id = $1 AND name = $2"
                " FOR UPDATE) AS l",
                org.id,
                name,
            )
            assert locked == 1
            yield
    finally:
        await conn.close()


async def until_waiting_for_locks(test_db: TestDatabase, count: int) -> None:
    """Returns once `count` of the server's connections wait for a lock. What they wait in is
    PostgreSQL's state, which nothing here can await: it is polled."""
    conn = await asyncpg.connect(test_db.admin_db_url)
    try:
        while (  # noqa: ASYNC110 (a condition in the database)
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND application_name = 'tenantry' AND wait_event_type = 'Lock'"
            )
            < count
        ):
            await asyncio.sleep(0.01)
    finally:
        await conn.close()


async def create_project(gql: GraphQL, org: Org, name: str) -> str:
    data = await gql.data(CREATE_PROJECT, {"name": name}, token=org.token)
    assert data["createProject"]["errors"] == []
    project_id: str = data["createProject"]["project"]["id"]
    return project_id


async def test_every_transaction_runs_with_the_lock_timeout(test_db: TestDatabase) -> None:
    database = await Database.connect(
        test_db.urls.app, min_size=1, max_size=1, statement_timeout_ms=5000, lock_timeout_ms=123
    )
    try:
        for readonly in (True, False):
            async with database.transaction(None, readonly=readonly) as session:
                assert await session.fetchval("SHOW lock_timeout") == "123ms"
    finally:
        await database.close()


async def test_a_write_waiting_for_a_held_lock_gives_up_after_the_lock_timeout(
    own_server: ServerFactory, test_db: TestDatabase, database: Database, tokens: TokenService
) -> None:
    # given a project whose row an administrator holds locked, and a server whose statements
    # may run long but whose lock waits may not
    server = await own_server(max_size=2, statement_timeout_ms=60_000, lock_timeout_ms=100)
    org = await new_org(database, tokens)
    project_id = await create_project(server.gql, org, "Held")

    async with project_locked(test_db, org, "Held"):
        # when
        data = await server.gql.data(
            UPDATE_PROJECT, {"id": project_id, "name": "Renamed"}, token=org.token
        )

    # then the mutation answers, changing nothing, with a code to retry on
    payload = data["updateProject"]
    assert payload["project"] is None
    [error] = payload["errors"]
    assert error["code"] == "UNAVAILABLE"
    assert error["message"] == "The data is being changed by another request; try again"


async def test_no_connection_free_in_time_is_503_unavailable_with_retry_after(
    own_server: ServerFactory, database: Database, tokens: TokenService
) -> None:
    # given a server with one pooled connection, which the test holds
    server = await own_server(max_size=1, statement_timeout_ms=5000, acquire_timeout_ms=100)
    org = await new_org(database, tokens)
    async with server.database.transaction(None, readonly=True) as held:
        await held.fetchval("SELECT 1")

        # when a request needs a connection
        response = await server.gql.post(PROJECT_COUNT, token=org.token)

        # and a session in the process needs one too
        with pytest.raises(DatabaseUnavailable):
            async with server.database.transaction(org.id, readonly=True) as session:
                await session.fetchval("SELECT 1")

    # then the request was answered, 503 with Retry-After, as JSON
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "UNAVAILABLE"
    assert error["extensions"]["requestId"] == response.headers["x-request-id"]
    # and with the connection back, the same request succeeds
    assert (await server.gql.data(PROJECT_COUNT, token=org.token))["projects"]["totalCount"] == 0


async def test_one_tenants_requests_stuck_on_a_lock_leave_the_pool_to_the_others(
    own_server: ServerFactory, test_db: TestDatabase, database: Database, tokens: TokenService
) -> None:
    # given a pool of 4 of which a tenant may hold 2, and long lock and statement budgets
    server = await own_server(
        max_size=4,
        tenant_max_size=2,
        statement_timeout_ms=30_000,
        lock_timeout_ms=30_000,
        acquire_timeout_ms=30_000,
    )
    stuck, other = await new_org(database, tokens), await new_org(database, tokens)
    project_id = await create_project(server.gql, stuck, "Held")

    async with project_locked(test_db, stuck, "Held"):
        # when the stuck tenant sends 4 writes of the locked row
        writes = [
            asyncio.create_task(
                server.gql.data(
                    UPDATE_PROJECT, {"id": project_id, "name": f"Renamed {i}"}, token=stuck.token
                )
            )
            for i in range(4)
        ]
        # (two of them hold connections waiting for the lock; the other two wait for a slot)
        await until_waiting_for_locks(test_db, 2)
        assert server.database.tenant_slots.held(stuck.id) == 2
        # and the other tenant asks something
        read = asyncio.create_task(server.gql.data(PROJECT_COUNT, token=other.token))
        done, _ = await asyncio.wait([read, *writes], return_when=asyncio.FIRST_COMPLETED)

        # then it is answered while every write of the stuck tenant is still waiting
        assert done == {read}
        assert read.result()["projects"]["totalCount"] == 0

    # and once the lock is gone, every write of the stuck tenant succeeds, one after another
    results = await asyncio.gather(*writes)
    assert all(r["updateProject"]["errors"] == [] for r in results)
    assert server.database.tenant_slots.held(stuck.id) == 0


def test_settings_read_the_bounded_waits() -> None:
    settings = Settings.from_env(
        {
            "TENANTRY_LOCK_TIMEOUT_MS": "250",
            "TENANTRY_POOL_ACQUIRE_TIMEOUT_MS": "750",
            "TENANTRY_POOL_MAX_SIZE": "8",
            "TENANTRY_POOL_TENANT_MAX_SIZE": "3",
            "TENANTRY_READY_TIMEOUT_MS": "400",
        }
    )
    assert settings.limits.lock_timeout_ms == 250
    assert settings.pool_acquire_timeout_ms == 750
    assert (settings.pool_max_size, settings.pool_tenant_max_size) == (8, 3)
    assert settings.ready_timeout_ms == 400
    defaults = Settings.from_env({})
    assert defaults.pool_tenant_max_size is None  # half the pool (app/core/db.py)
    assert replace(defaults).limits.lock_timeout_ms == 2000


def test_a_tenant_share_larger_than_the_pool_is_refused() -> None:
    from app.core.settings import SettingsError

    with pytest.raises(SettingsError, match="TENANTRY_POOL_TENANT_MAX_SIZE"):
        Settings.from_env({"TENANTRY_POOL_MAX_SIZE": "4", "TENANTRY_POOL_TENANT_MAX_SIZE": "5"})
