"""Fair admission on the real server: while a tenant's operations hold its slots, its next
request waits (here: none may, so it is refused at once) and another tenant's request is
admitted at once.

A tenant's operation is held in flight by a row lock an administrator connection takes; the
test waits for the server's admission to show it running, never for time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import httpx
import pytest

from app.core.admission import FairAdmission
from app.core.db import Database
from app.core.settings import Settings
from tests.api.test_fair_sharing import fields
from tests.app_fixtures import GraphQL, Org, start_server, stop_server
from tests.conftest import TestDatabase

CREATE = "mutation($n: String!) { createProject(input: {name: $n}) { project { id } } }"
UPDATE = """
mutation($id: ID!) { updateProject(input: {id: $id, name: "renamed"}) { project { name } } }
"""
PING = "{ viewer { id } }"


@pytest.fixture
async def one_at_a_time(
    app_settings: Settings, database: Database, gql: GraphQL
) -> AsyncIterator[tuple[GraphQL, FairAdmission]]:
    """A server of its own where a tenant runs one operation at a time and none may wait."""
    limits = replace(app_settings.limits, tenant_concurrency=1, tenant_queue=0)
    server, url = await start_server(replace(app_settings, limits=limits), database)
    try:
        admission = server.config.app.state.fair_sharing.admission
        assert isinstance(admission, FairAdmission)
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield GraphQL(client), admission
    finally:
        await stop_server(server)


async def test_a_busy_tenant_is_refused_while_another_is_admitted(
    one_at_a_time: tuple[GraphQL, FairAdmission],
    test_db: TestDatabase,
    org: Org,
    other_org: Org,
) -> None:
    gql, admission = one_at_a_time
    created = await gql.data(CREATE, {"n": "locked"}, token=org.token)
    project_id = created["createProject"]["project"]["id"]
    admin = await asyncpg.connect(test_db.admin_db_url)
    try:
        # given one of the tenant's operations held in flight by a row lock
        lock = admin.transaction()
        await lock.start()
        await admin.execute("SELECT 1 FROM projects WHERE tenant_id = $1 FOR UPDATE", org.id)
        held = asyncio.create_task(gql.post(UPDATE, {"id": project_id}, token=org.token))
        while admission.running(org.id) == 0:
            assert not held.done(), held.result().text
            await asyncio.sleep(0.01)

        # when the same tenant and another tenant each send a request
        busy = await gql.post(PING, token=org.token)
        other = await gql.post(PING, token=other_org.token)

        # then the other tenant is answered at once, the busy one refused with its share
        assert other.status_code == 200
        assert busy.status_code == 429
        assert busy.headers["retry-after"] == "1"
        assert busy.json()["errors"][0]["extensions"] == {
            "code": "RATE_LIMITED",
            "limit": "concurrentOperations",
            "maximum": 1,
            "retryAfterSeconds": 1,
        }
        assert fields(busy.headers["ratelimit"])["concurrency"] == {"r": "0"}
        assert admission.stats.refused.value == 1
        await lock.rollback()
    finally:
        await admin.close()

    # and the held operation completes once the lock is gone
    answered = await held
    assert answered.status_code == 200
    assert answered.json()["data"]["updateProject"]["project"]["name"] == "renamed"
    assert admission.running(org.id) == 0
