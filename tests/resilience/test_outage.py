"""The database out of reach: every request is answered, as JSON with a stable code.

PostgreSQL (a private cluster) is stopped with `pg_ctl stop -m immediate` under a running
server. Requests failing in the middleware (naming a tenant the server must look up), in
a query's resolvers and in a mutation's service are each answered 503 UNAVAILABLE with
`Retry-After`, the request id in the body and the header, no driver text, on a connection
the server keeps open. The outage is logged as one line when it starts and one when it ends.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Iterator

import pytest

from tests.app_fixtures import GraphQL, Org
from tests.pg_cluster import PrivateCluster
from tests.resilience.keepalive import KeepAliveClient, RawResponse

TENANT = "{ tenant { name } }"
SIGN_IN = """
mutation SignIn($input: SignInInput!) {
  signIn(input: $input) { accessToken errors { code } }
}"""
# What a client must never read in an answer about the database.
DRIVER_TEXT = ("Traceback", "asyncpg", "postgres", "refused", "socket", "Errno", "Connect")


def assert_unavailable(response: RawResponse, request_id: str) -> None:
    assert response.status == 503, response.body
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"] == request_id
    retry_after = int(response.headers["retry-after"])
    assert retry_after >= 1
    body = response.json()
    assert body.get("data") is None
    [error] = body["errors"]
    assert error["extensions"] == {
        "code": "UNAVAILABLE",
        "requestId": request_id,
        "retryAfter": retry_after,
    }
    for text in DRIVER_TEXT:
        assert text.lower() not in response.body.decode().lower(), text


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Everything logged at WARNING or above, uvicorn's own logger included (it does not
    propagate to the root logger)."""
    caplog.set_level(logging.WARNING)
    uvicorn_logger = logging.getLogger("uvicorn")
    uvicorn_logger.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        uvicorn_logger.removeHandler(caplog.handler)


async def test_a_stopped_database_is_answered_unavailable_on_a_connection_kept_open(
    cluster: PrivateCluster,
    cluster_url: str,
    cluster_gql: GraphQL,
    cluster_org: Org,
    logged: pytest.LogCaptureFixture,
) -> None:
    # given a server that has answered, and a client with one keep-alive connection
    assert (await cluster_gql.data(TENANT, token=cluster_org.token))["tenant"]["name"]
    client = await KeepAliveClient.open(cluster_url)
    logged.clear()
    try:
        await asyncio.to_thread(cluster.stop, "immediate")
        try:
            # when requests arrive while PostgreSQL is down: one the middleware must look
            # up (an X-Tenant slug it has not seen), a signed-in query, an anonymous mutation
            answers = [
                (
                    await client.post_json(
                        "/graphql",
                        {"query": TENANT},
                        {"x-tenant": f"org-{secrets.token_hex(5)}", "x-request-id": "down-1"},
                    ),
                    "down-1",
                ),
                (
                    await client.post_json(
                        "/graphql",
                        {"query": TENANT},
                        {
                            "authorization": f"Bearer {cluster_org.token}",
                            "x-request-id": "down-2",
                        },
                    ),
                    "down-2",
                ),
                (
                    await client.post_json(
                        "/graphql",
                        {
                            "query": SIGN_IN,
                            "variables": {
                                "input": {
                                    "tenant": cluster_org.slug,
                                    "email": cluster_org.members[0].email,
                                    "password": "not the password",
                                }
                            },
                        },
                        {"x-request-id": "down-3"},
                    ),
                    "down-3",
                ),
            ]
        finally:
            await asyncio.to_thread(cluster.start)

        # then each is a JSON 503 with its request id, and the connection stayed open
        for response, request_id in answers:
            assert_unavailable(response, request_id)
        back = await client.post_json(
            "/graphql", {"query": TENANT}, {"authorization": f"Bearer {cluster_org.token}"}
        )
    finally:
        await client.close()
    assert back.status == 200, back.body
    assert back.json()["data"]["tenant"]["name"]

    # and the outage is two lines of the log: when it started and when it ended, with counts
    records = [(r.name, r.levelname, r.getMessage()) for r in logged.records]
    assert [r[:2] for r in records] == [
        ("tenantry.db", "ERROR"),
        ("tenantry.db", "WARNING"),
    ], records
    assert records[0][2].startswith("database unavailable: ")
    assert records[1][2].startswith("database available again after ")
    assert records[1][2].endswith("; 3 requests failed meanwhile")
    assert not any(r.exc_info for r in logged.records)


async def test_readiness_reports_a_stopped_database_within_its_budget(
    cluster: PrivateCluster, cluster_url: str, cluster_gql: GraphQL, cluster_org: Org
) -> None:
    # given a server that has answered
    assert (await cluster_gql.data(TENANT, token=cluster_org.token))["tenant"]["name"]
    await asyncio.to_thread(cluster.stop, "immediate")
    try:
        # when
        response = await cluster_gql.http.get("/readyz")
    finally:
        await asyncio.to_thread(cluster.start)

    # then not ready, naming the database as the reason (and only its error's class)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    database = body["checks"]["database"]
    assert database["status"] == "unavailable"
    assert database["error"] in ("ConnectionRefusedError", "timeout")
    assert body["checks"]["store"]["status"] == "ok"
    # and ready again once it is back
    assert (await cluster_gql.http.get("/readyz")).status_code == 200
