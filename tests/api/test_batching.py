"""Optional, bounded batching (off by default): a JSON array of operations in one POST, each
its own operation (transaction, idempotency, limits) but for the cost limit, which bounds the
batch's sum; an array answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from app.core.db import Database
from app.core.document_cache import sha256_hex
from app.core.settings import Limits, Settings, TransportSettings
from tests.api.test_tasks import CREATE_THEN_FAIL_IN_PAYLOAD, create_project
from tests.app_fixtures import (
    GRAPHQL_RESPONSE,
    GraphQL,
    Org,
    start_server,
    stop_server,
    without_cost,
)

VIEWER = "query Me { viewer { email } }"
CREATE = "mutation New($name: String!) { createProject(input: {name: $name}) { errors { code } } }"
# 100 projects with 100 tasks each: 10 100 objects, within the cost limit alone.
HEAVY = "{ projects(first: 100) { nodes { tasks(first: 100) { totalCount } } } }"
MAX_BATCH = 3


@pytest.fixture
async def batching(
    app_settings: Settings, database: Database, http: httpx.AsyncClient
) -> AsyncIterator[GraphQL]:
    """A server taking batches of up to MAX_BATCH operations (after `http`'s server)."""
    settings = replace(
        app_settings,
        transport=TransportSettings(max_batch_operations=MAX_BATCH),
        limits=replace(app_settings.limits, max_nodes=Limits().max_nodes),
    )
    server, url = await start_server(settings, database)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield GraphQL(client)
    finally:
        await stop_server(server)


async def batch(
    client: GraphQL, org: Org, operations: list[dict[str, Any]], **headers: str
) -> httpx.Response:
    headers["authorization"] = f"Bearer {org.token}"
    return await client.http.post("/graphql", json=operations, headers=headers)


async def count_projects(database: Database, org: Org) -> int:
    async with database.transaction(org.id, readonly=True) as session:
        return int(await session.fetchval("SELECT count(*) FROM projects"))


@pytest.mark.parametrize("media", ["application/json", "application/graphql-response+json"])
async def test_a_batch_is_answered_with_an_array_in_order(
    batching: GraphQL, org: Org, media: str
) -> None:
    response = await batch(
        batching,
        org,
        [
            {"query": VIEWER},
            {"query": "{ viewer { nope } }"},
            {"query": CREATE, "variables": {"name": "batched"}},
        ],
        accept=media,
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media)
    viewer, invalid, created = response.json()
    assert without_cost(viewer) == {"data": {"viewer": {"email": org.members[0].email}}}
    assert invalid["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "data" not in invalid
    assert without_cost(created) == {"data": {"createProject": {"errors": []}}}


async def test_each_operation_is_its_own_transaction(
    batching: GraphQL, org: Org, gql: GraphQL, database: Database
) -> None:
    # given: a batch whose second operation fails as a whole (a top-level error)
    project = await create_project(gql, org)
    failing = {
        "query": CREATE_THEN_FAIL_IN_PAYLOAD,
        "variables": {
            "ok": {"projectId": project, "title": "a"},
            "also": {"projectId": project, "title": "b"},
        },
    }

    # when
    response = await batch(
        batching, org, [{"query": CREATE, "variables": {"name": "kept"}}, failing]
    )

    # then: the first is kept, the second rolled back entirely
    first, second = response.json()
    assert without_cost(first) == {"data": {"createProject": {"errors": []}}}
    assert second["errors"][0]["extensions"]["code"] == "INVALID"
    assert await count_projects(database, org) == 2  # `project` and `kept`
    async with database.transaction(org.id, readonly=True) as session:
        assert await session.fetchval("SELECT count(*) FROM tasks") == 0


async def test_more_operations_than_the_limit_are_refused_whole(
    batching: GraphQL, org: Org, database: Database
) -> None:
    operations = [{"query": CREATE, "variables": {"name": f"p{i}"}} for i in range(MAX_BATCH + 1)]

    response = await batch(batching, org, operations, **GRAPHQL_RESPONSE)

    assert response.status_code == 422
    assert response.json()["errors"][0]["extensions"] == {"code": "TOO_MANY_OPERATIONS"}
    assert await count_projects(database, org) == 0


async def test_an_empty_batch_is_refused(batching: GraphQL, org: Org) -> None:
    response = await batch(batching, org, [])

    assert response.status_code == 422
    assert response.json()["errors"][0]["extensions"] == {"code": "TOO_MANY_OPERATIONS"}


async def test_the_cost_limit_bounds_the_sum_of_the_batch(
    batching: GraphQL, org: Org, statements: list[str]
) -> None:
    # given: two operations each within the cost limit, together over it
    statements.clear()

    # when
    response = await batch(batching, org, [{"query": HEAVY}, {"query": HEAVY}])

    # then: the first ran, the second was refused before any SQL of its own
    first, second = response.json()
    assert without_cost(first) == {"data": {"projects": {"nodes": []}}}
    [error] = second["errors"]
    assert error["extensions"] == {
        "code": "QUERY_TOO_COMPLEX",
        "limit": "nodes",
        "maximum": Limits().max_nodes,
    }
    assert "20200" in error["message"]
    assert "data" not in second
    assert len([s for s in statements if "FROM projects" in s]) == 1


async def test_an_idempotency_key_header_is_refused_for_a_batch(
    batching: GraphQL, org: Org, database: Database
) -> None:
    operations = [{"query": CREATE, "variables": {"name": f"p{i}"}} for i in range(2)]

    response = await batch(batching, org, operations, **{"idempotency-key": "k-1"})

    assert response.status_code == 422
    assert response.json()["errors"][0]["extensions"] == {"code": "BAD_REQUEST"}
    assert await count_projects(database, org) == 0


async def test_each_mutation_of_a_batch_takes_its_own_key(
    batching: GraphQL, org: Org, database: Database
) -> None:
    keyed = [
        {
            "query": f'mutation N($name: String!) @idempotent(key: "batch-{i}") {{'
            " createProject(input: {name: $name}) { errors { code } } }",
            "variables": {"name": f"p{i}"},
        }
        for i in range(2)
    ]

    first = await batch(batching, org, keyed)
    retried = await batch(batching, org, keyed)

    assert [without_cost(b) for b in first.json()] == [without_cost(b) for b in retried.json()]
    assert await count_projects(database, org) == 2


async def test_persisted_queries_work_inside_a_batch(batching: GraphQL, org: Org) -> None:
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": sha256_hex(VIEWER)}}

    response = await batch(
        batching, org, [{"extensions": extensions}, {"query": VIEWER, "extensions": extensions}]
    )
    again = await batch(batching, org, [{"extensions": extensions}])

    missing, registered = response.json()
    assert missing["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    assert without_cost(registered) == {"data": {"viewer": {"email": org.members[0].email}}}
    assert [without_cost(b) for b in again.json()] == [without_cost(registered)]
