"""Read replicas: query operations on a hot standby, mutations on the primary, and
read-your-own-writes (app/core/replicas.py, docs/scale-out.md).

A private primary and a hot standby streaming from it run on this machine (tests/pg_cluster.py).
Where an operation read is observed in the data: with the standby's replay paused, a row
written on the primary behind the server's back is visible only to operations that read the
primary. The server is the real app (uvicorn in this event loop) on that pair, with the
suite's Redis (REDIS_URL) as its store, as several server processes would share it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.api.relay import encode_global_id
from app.core.db import UNKNOWN_POSITION, Database, Session
from app.core.keys import KeyRing
from app.core.replicas import POSITION_TTL_SECONDS, ReadRouting, routing_reads
from app.core.security import TokenService
from app.core.settings import Settings
from app.core.store import Store, tenant_key
from app.rbac.service import actor_for
from tests.app_fixtures import SHARED_REDIS, GraphQL, Org, new_org, start_server, stop_server
from tests.deploy.serving import serving
from tests.factories import seed_graph, tenant_tables
from tests.pg_cluster import PrivateCluster, private_cluster

# How long a query waits for the standby before it reads from the primary: short, so the
# paused-replay tests do not wait long (no test measures it).
WAIT_MS = 20
_CATCH_UP_SECONDS = 60


@pytest.fixture(scope="module")
def primary() -> Iterator[PrivateCluster]:
    """A migrated primary with one hot standby (`primary.standbys[0]`)."""
    with private_cluster() as cluster:
        cluster.standby()
        yield cluster


@pytest.fixture(scope="module")
def standby(primary: PrivateCluster) -> PrivateCluster:
    return primary.standbys[0]


@pytest.fixture(scope="module")
async def replicated(primary: PrivateCluster, standby: PrivateCluster) -> AsyncIterator[Database]:
    """The app's pool on the primary, with the standby as its read replica."""
    assert primary.urls is not None
    assert standby.urls is not None
    db = await Database.connect(
        primary.urls.app,
        min_size=1,
        max_size=4,
        statement_timeout_ms=5000,
        replica_dsn=standby.urls.app,
    )
    try:
        yield db
    finally:
        await db.close()


@pytest.fixture
async def own_pair(primary: PrivateCluster, standby: PrivateCluster) -> AsyncIterator[Database]:
    """A pool on the pair of the test's own (the served app routes `replicated`)."""
    assert primary.urls is not None
    assert standby.urls is not None
    db = await Database.connect(
        primary.urls.app,
        min_size=1,
        max_size=2,
        statement_timeout_ms=5000,
        replica_dsn=standby.urls.app,
    )
    try:
        yield db
    finally:
        await db.close()


@pytest.fixture(scope="module")
def admin_urls(primary: PrivateCluster, standby: PrivateCluster) -> tuple[str, str]:
    """The superuser on the primary's and the standby's Tenantry database."""
    return primary.url(db="tenantry"), standby.url(db="tenantry")


@pytest.fixture
async def admin(
    admin_urls: tuple[str, str],
) -> AsyncIterator[tuple[asyncpg.Connection, asyncpg.Connection]]:
    """Superuser connections to the primary and the standby (replay control, direct rows)."""
    on_primary = await asyncpg.connect(admin_urls[0])
    on_standby = await asyncpg.connect(admin_urls[1])
    try:
        yield on_primary, on_standby
    finally:
        await on_primary.close()
        await on_standby.close()


@pytest.fixture(scope="module")
def replica_settings(
    app_settings: Settings, primary: PrivateCluster, standby: PrivateCluster
) -> Settings:
    assert primary.urls is not None
    assert standby.urls is not None
    return replace(
        app_settings.with_database(primary.urls.app, primary.urls.owner),
        read_database_url=standby.urls.app,
        read_replica_wait_ms=WAIT_MS,
    )


@pytest.fixture(scope="module")
async def served(replica_settings: Settings, replicated: Database) -> AsyncIterator[GraphQL]:
    """The app on the pair; its lifespan routes the pool's reads (as `tenantry serve` does)."""
    server, url = await start_server(replica_settings, replicated)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            yield GraphQL(http)
    finally:
        await stop_server(server)


async def caught_up(admin: tuple[asyncpg.Connection, asyncpg.Connection]) -> None:
    """Until the standby has replayed everything the primary has written (bounded)."""
    on_primary, on_standby = admin
    target = await on_primary.fetchval("SELECT pg_current_wal_insert_lsn()")
    deadline = time.monotonic() + _CATCH_UP_SECONDS
    while await on_standby.fetchval("SELECT pg_last_wal_replay_lsn()") < target:
        assert time.monotonic() < deadline, "the standby does not catch up"
        await asyncio.sleep(0.01)


class paused_replay:
    """The standby replays nothing in the block (it still answers queries)."""

    def __init__(self, admin: tuple[asyncpg.Connection, asyncpg.Connection]) -> None:
        self.standby = admin[1]

    async def __aenter__(self) -> None:
        await self.standby.execute("SELECT pg_wal_replay_pause()")
        deadline = time.monotonic() + _CATCH_UP_SECONDS
        while await self.standby.fetchval("SELECT pg_get_wal_replay_pause_state()") != "paused":
            assert time.monotonic() < deadline, "replay does not pause"
            await asyncio.sleep(0.01)

    async def __aexit__(self, *exc: object) -> None:
        await self.standby.execute("SELECT pg_wal_replay_resume()")


async def behind_the_servers_back(
    admin: tuple[asyncpg.Connection, asyncpg.Connection], org: Org, name: str
) -> None:
    """A project written on the primary by the superuser: the server records no position."""
    await admin[0].execute(
        "INSERT INTO projects (tenant_id, name, created_by) VALUES ($1, $2, $3)",
        org.id,
        name,
        org.members[0].id,
    )


PROJECTS = "{ projects(first: 100) { nodes { name } } }"
CREATE = "mutation($n: String!) { createProject(input: {name: $n}) { errors { code } } }"


async def project_names(gql: GraphQL, org: Org) -> set[str]:
    data = await gql.data(PROJECTS, token=org.token)
    return {node["name"] for node in data["projects"]["nodes"]}


async def replica_reads(gql: GraphQL) -> dict[str, float]:
    """tenantry_replica_reads by outcome, from the server's /metrics."""
    response = await gql.http.get("/metrics")
    assert response.status_code == 200
    return {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(response.text)
        if family.name == "tenantry_replica_reads"
        for sample in family.samples
        if sample.name == "tenantry_replica_reads_total"
    }


def more(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


@pytest.fixture
async def org(replicated: Database, tokens: TokenService, served: GraphQL) -> Org:
    return await new_org(replicated, tokens)


@pytest.fixture
async def other_org(replicated: Database, tokens: TokenService, served: GraphQL) -> Org:
    return await new_org(replicated, tokens)


async def test_queries_read_the_standby_and_a_writer_reads_its_own_writes(
    served: GraphQL,
    admin: tuple[asyncpg.Connection, asyncpg.Connection],
    org: Org,
    other_org: Org,
) -> None:
    await caught_up(admin)
    before = await replica_reads(served)
    async with paused_replay(admin):
        await behind_the_servers_back(admin, org, "Unseen on the standby")
        await behind_the_servers_back(admin, other_org, "Unseen either")
        # Queries read the standby: rows it has not replayed are not there.
        assert await project_names(served, org) == set()
        # A mutation runs on the primary (the standby would refuse to write, paused or not).
        created = await served.data(CREATE, {"n": "Mine"}, token=org.token)
        assert created["createProject"]["errors"] == []
        # The writer's next query must see its commit, which the paused standby lacks: it
        # reads the primary, where the row written behind the server's back is too.
        assert await project_names(served, org) == {"Unseen on the standby", "Mine"}
        # Another tenant, with no write since the standby caught up, still reads the standby.
        assert await project_names(served, other_org) == set()
        assert more(await replica_reads(served), before) == {"replica": 2, "behind": 1}
        # Readiness says how far behind it is (and the server is ready all the same).
        ready = await served.http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"]["replica"]["behindBytes"] > 0
    await caught_up(admin)
    # Replay resumed and caught up: the writer reads the standby again, which has it all.
    before = await replica_reads(served)
    assert await project_names(served, org) == {"Unseen on the standby", "Mine"}
    assert await project_names(served, other_org) == {"Unseen either"}
    assert more(await replica_reads(served), before) == {"replica": 2}


AUDIT = "{ auditLog(first: 1) { totalCount } }"
ROLES = "{ roles { id key } }"
CHANGE_ROLE = """
mutation($u: ID!, $give: ID!, $take: ID!) {
  a: assignRole(input: {userId: $u, roleId: $give}) { errors { code } }
  b: unassignRole(input: {userId: $u, roleId: $take}) { errors { code } }
}
"""


async def test_a_permission_taken_away_is_gone_from_the_next_query_of_that_user(
    served: GraphQL,
    admin: tuple[asyncpg.Connection, asyncpg.Connection],
    replicated: Database,
    tokens: TokenService,
) -> None:
    # Read-your-writes is per tenant, not per writer: an administrator takes a permission
    # away from a colleague, whose next query must not find it again on a stale standby.
    team = await new_org(replicated, tokens, members=2)
    boss, colleague = team.members
    roles = {r["key"]: r["id"] for r in (await served.data(ROLES, token=boss.token))["roles"]}
    await caught_up(admin)
    assert "errors" not in await served(AUDIT, token=colleague.token)
    async with paused_replay(admin):
        variables = {
            "u": encode_global_id("User", colleague.id),
            "give": roles["viewer"],
            "take": roles["admin"],
        }
        changed = await served.data(CHANGE_ROLE, variables, token=boss.token)
        assert changed == {"a": {"errors": []}, "b": {"errors": []}}
        # A viewer may not read the audit log; the paused standby still says admin.
        refused = await served(AUDIT, token=colleague.token)
        codes = [e["extensions"]["code"] for e in refused.get("errors", [])]
        assert codes == ["FORBIDDEN"], refused


async def test_a_standby_out_of_reach_sends_reads_to_the_primary(
    served: GraphQL,
    standby: PrivateCluster,
    org: Org,
    admin_urls: tuple[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    await served.data(CREATE, {"n": "Before"}, token=org.token)
    before = await replica_reads(served)
    await asyncio.to_thread(standby.stop, "immediate")
    try:
        with caplog.at_level(logging.WARNING, logger="tenantry.db"):
            assert await project_names(served, org) == {"Before"}
            assert await project_names(served, org) == {"Before"}
        # Ready (queries have the primary), but degraded, and saying why.
        ready = await served.http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded"
        assert ready.json()["checks"]["replica"]["status"] == "degraded"
    finally:
        await asyncio.to_thread(standby.start)
    assert more(await replica_reads(served), before) == {"unavailable": 2}
    # Back: the next query that reaches it ends the outage (one line each way).
    on_primary = await asyncpg.connect(admin_urls[0])
    on_standby = await asyncpg.connect(admin_urls[1])
    try:
        await caught_up((on_primary, on_standby))
    finally:
        await on_primary.close()
        await on_standby.close()
    with caplog.at_level(logging.WARNING, logger="tenantry.db"):
        assert await project_names(served, org) == {"Before"}
    lines = [r.getMessage() for r in caplog.records if r.name == "tenantry.db"]
    assert len(lines) == 2, lines
    assert lines[0].startswith("database replica unavailable: ")
    assert lines[1].endswith("; 2 reads went to the primary meanwhile")


async def test_tenantry_serve_reads_from_the_replica_it_is_configured_with(
    primary: PrivateCluster,
    standby: PrivateCluster,
    replicated: Database,
    admin: tuple[asyncpg.Connection, asyncpg.Connection],
    tmp_path: Path,
) -> None:
    # As an operator configures it: the two URLs in the environment, nothing else.
    assert primary.urls is not None
    assert standby.urls is not None
    keys_file = tmp_path / "signing-keys.json"
    tokens = TokenService.from_settings(KeyRing.from_file(keys_file, create=True), Settings())
    team = await new_org(replicated, tokens)
    await caught_up(admin)
    env = {
        "DATABASE_URL": primary.urls.app,
        "MIGRATION_DATABASE_URL": primary.urls.owner,
        "TENANTRY_READ_DATABASE_URL": standby.urls.app,
        "TENANTRY_SIGNING_KEYS_FILE": str(keys_file),
    }
    with serving(tmp_path / "data", env) as server:
        async with httpx.AsyncClient(base_url=server.base, timeout=30) as http:
            gql = GraphQL(http)
            async with paused_replay(admin):
                await behind_the_servers_back(admin, team, "Unseen on the standby")
                assert await project_names(gql, team) == set()
                assert await replica_reads(gql) == {"replica": 1}


# --- the session and the routing, without HTTP -----------------------------------------


async def test_a_session_sent_to_the_replica_runs_there_only_once_it_has_the_position(
    replicated: Database, admin: tuple[asyncpg.Connection, asyncpg.Connection]
) -> None:
    assert replicated.replica is not None
    await caught_up(admin)
    in_recovery = "SELECT pg_is_in_recovery()"
    session = replicated.session(None, readonly=True)
    session.read_from(replicated.replica, at_least=None, wait_ms=0)
    assert await session.fetchval(in_recovery) is True
    assert session.on_replica
    await session.close(commit=True)
    async with paused_replay(admin):
        replayed = await admin[1].fetchval("SELECT pg_last_wal_replay_lsn()")
        for position, on_replica in ((replayed, True), (replayed + 1, False)):
            session = replicated.session(None, readonly=True)
            session.read_from(replicated.replica, at_least=position, wait_ms=WAIT_MS)
            assert await session.fetchval(in_recovery) is on_replica
            assert session.on_replica is on_replica
            await session.close(commit=True)


async def test_each_tenant_sees_only_its_rows_on_the_replica_and_no_tenant_none(
    replicated: Database, admin: tuple[asyncpg.Connection, asyncpg.Connection]
) -> None:
    assert replicated.replica is not None
    seeded = [await seed_graph(replicated) for _ in range(2)]
    async with replicated.transaction(None, readonly=True) as session:
        tables = await tenant_tables(session)
    await caught_up(admin)
    for tenant in (None, *(s.tenant for s in seeded)):
        session = replicated.session(tenant, readonly=True)
        session.read_from(replicated.replica, at_least=None, wait_ms=0)
        try:
            for table, key in tables.items():
                by_tenant = f"SELECT DISTINCT {key} FROM {table}"  # noqa: S608 (catalog)
                owners = [r[key] for r in await session.fetch(by_tenant)]
                # Every seeded table has a row of each: "only its own" is not vacuous.
                assert owners == ([] if tenant is None else [tenant]), table
            assert session.on_replica
        finally:
            await session.close(commit=True)


async def test_a_commit_reports_its_position_before_the_after_commit_callbacks(
    replicated: Database, admin: tuple[asyncpg.Connection, asyncpg.Connection]
) -> None:
    seen: list[Any] = []

    async def listener(session: Session, position: int) -> None:
        seen.append(("position", position))

    async def callback() -> None:
        seen.append("callback")

    replicated.committed_listeners.append(listener)
    try:
        start = await admin[0].fetchval("SELECT pg_current_wal_insert_lsn()")
        tenant = uuid4()
        async with replicated.transaction(tenant) as session:
            await session.execute(
                "INSERT INTO tenants (id, slug, name) VALUES ($1, $2, 'Positions')",
                tenant,
                f"p-{tenant.hex[:12]}",
            )
            session.after_commit(callback)
        async with replicated.transaction(tenant, readonly=True) as reading:
            await reading.fetchval("SELECT 1")
    finally:
        replicated.committed_listeners.remove(listener)
    # One read-write commit, past where the WAL was; nothing for the read-only one; the
    # position is known before the after-commit callbacks run.
    assert [entry if entry == "callback" else entry[0] for entry in seen] == [
        "position",
        "callback",
    ]
    position = seen[0][1]
    assert start < position < UNKNOWN_POSITION


@pytest.mark.parametrize("backend", ["redis", "memory"])
async def test_a_tenants_newest_position_only_moves_forward(
    replicated: Database, backend: str, redis_url: str
) -> None:
    # The shared Redis with a budget a loaded machine keeps (the breaker must not open).
    store = Store.from_url(redis_url if backend == "redis" else None, SHARED_REDIS)
    routing = ReadRouting(replicated, store, wait_ms=0)
    tenant = uuid4()
    session = replicated.session(tenant, readonly=False)
    try:
        assert await routing.newest(tenant) is None
        for position, newest in ((200, 200), (100, 200), (2**63 + 5, 2**63 + 5), (7, 2**63 + 5)):
            await routing.committed(session, position)
            assert await routing.newest(tenant) == newest
        if backend == "redis":
            key = store.backend_key(tenant_key(tenant, "commit-position"))
            ttl = await store.redis.ttl(key)
            assert 0 < ttl <= POSITION_TTL_SECONDS
    finally:
        await store.close()


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("REDIS_URL")
    if url is None:
        if os.environ.get("CI"):
            pytest.fail("REDIS_URL is needed", pytrace=False)
        pytest.skip("REDIS_URL is needed")
    return url


async def test_platform_and_serializable_sessions_stay_on_the_primary(
    own_pair: Database,
) -> None:
    replicated = own_pair
    store = Store.from_url(None)
    with routing_reads(replicated, store, wait_ms=0):
        assert replicated.router is not None
        for session in (
            replicated.session(None, readonly=True, platform=True),
            replicated.session(uuid4(), readonly=True, isolation="serializable"),
            replicated.session(uuid4(), readonly=True),
        ):
            await replicated.router.route(session)
            assert await session.fetchval("SELECT pg_is_in_recovery()") is (
                not session.platform and session.isolation is None
            )
            await session.close(commit=True)
    assert replicated.router is None
    assert replicated.committed_listeners == []


async def test_permissions_read_on_the_replica_are_not_cached(
    replicated: Database, tokens: TokenService, served: GraphQL
) -> None:
    team = await new_org(replicated, tokens)
    user = team.members[0].id
    store = Store.from_url(None)
    assert replicated.replica is not None
    session = replicated.session(team.id, readonly=True)
    session.read_from(replicated.replica, at_least=None, wait_ms=0)
    actor = await actor_for(session, store, user)
    await session.close(commit=True)
    assert session.on_replica
    assert actor.permissions
    # A second resolution on the primary fills the cache; the replica's did not.
    key = tenant_key(team.id, "authz", "user", str(user))
    assert await store.get(key) is None
    async with replicated.transaction(team.id, readonly=True) as on_primary:
        assert (await actor_for(on_primary, store, user)).permissions == actor.permissions
    assert await store.get(key) is not None


async def test_a_store_out_of_reach_keeps_reads_on_the_primary_and_commits_standing(
    own_pair: Database,
) -> None:
    # Nothing listens on port 1 of loopback: every call to Redis fails at once, and the
    # store's circuit breaker opens on the failed write.
    store = Store.from_url("redis://127.0.0.1:1/0")
    try:
        routing = ReadRouting(own_pair, store, wait_ms=0)
        tenant = uuid4()
        await routing.committed(own_pair.session(tenant, readonly=False), 42)
        assert await routing.newest(tenant) == UNKNOWN_POSITION
        session = own_pair.session(tenant, readonly=True)
        await routing.route(session)
        assert await session.fetchval("SELECT pg_is_in_recovery()") is False
        await session.close(commit=True)
    finally:
        await store.close()
