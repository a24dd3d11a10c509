"""An unexpected failure outside GraphQL (here: the tenant check in the middleware) is a
JSON 500 with a stable code and the request id, logged once in full, on a connection the
server keeps open: not Starlette's text/plain "Internal Server Error", after which uvicorn
closed the connection."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from app.core.db import Database
from app.core.settings import Settings
from tests.app_fixtures import Org, start_server, stop_server
from tests.resilience.keepalive import KeepAliveClient


@pytest.fixture
async def broken_gate_url(
    app_settings: Settings, database: Database, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    """A server whose tenant check (run for every signed-in request) fails unexpectedly."""

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret detail: SELECT * FROM tenants")

    monkeypatch.setattr("app.main.request_access", broken)
    server, url = await start_server(app_settings, database)
    try:
        yield url
    finally:
        await stop_server(server)


async def test_an_unexpected_middleware_failure_is_json_and_keeps_the_connection(
    broken_gate_url: str, org: Org, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="tenantry.errors")
    client = await KeepAliveClient.open(broken_gate_url)
    try:
        # when a signed-in request meets the broken check
        response = await client.post_json(
            "/graphql",
            {"query": "{ tenant { name } }"},
            {"authorization": f"Bearer {org.token}", "x-request-id": "boom-1"},
        )
        # then the same connection still serves the next request
        anonymous = await client.post_json("/graphql", {"query": "{ __typename }"})
    finally:
        await client.close()

    assert response.status == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "errors": [
            {
                "message": "Internal server error",
                "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": "boom-1"},
            }
        ]
    }
    assert anonymous.status == 200
    # and the log has the whole story once, under the request id
    [logged] = [r for r in caplog.records if r.name == "tenantry.errors"]
    assert "boom-1" in logged.getMessage()
    assert logged.exc_info is not None
    assert "secret detail" in str(logged.exc_info[1])
