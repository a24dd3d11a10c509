"""A front end on another origin, in a real headless Chromium: the browser itself enforces
CORS, so what the page can read is what the server's answers allow.

One small page server is reached under two origins, http://127.0.0.1:<port> (in the server's
TENANTRY_CORS_ORIGINS) and http://localhost:<port> (only in one tenant's corsOrigins), and
calls the API on its bare host and on tenants' own hosts, <slug>.localhost (Chromium
resolves every *.localhost name to the loopback address).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from app.core.db import Database
from app.core.security import TokenService
from app.core.settings import BrowserSettings, Settings
from tests.app_fixtures import (
    GraphQL,
    Org,
    free_port,
    new_org,
    start_server,
    stop_server,
    without_cost,
)

from .chromium import chromium, require_chromium

pytestmark = pytest.mark.browser

VIEWER = "{ viewer { email } }"
CREATE = 'mutation { createProject(input: {name: "cross-origin"}) { project { id } } }'
SET_ORIGINS = """
mutation ($origins: [String!]!) {
  updateTenantSettings(input: {corsOrigins: $origins}) { errors { code } }
}"""

# What a front end does: a JSON POST with its access token, reading the body and a header.
CALL_API = """async ({url, token, query}) => {
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers: {'content-type': 'application/json', 'authorization': 'Bearer ' + token},
      body: JSON.stringify({query}),
    });
    return {
      read: true,
      status: response.status,
      body: await response.json(),
      requestId: response.headers.get('x-request-id'),
    };
  } catch (error) {
    return {read: false, error: String(error)};
  }
}"""


async def front_end(request: Request) -> HTMLResponse:
    return HTMLResponse("<!doctype html><title>A front end</title><p>Calls the API.</p>")


async def serve_page(port: int) -> uvicorn.Server:
    config = uvicorn.Config(
        Starlette(routes=[Route("/", front_end)]),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    server._task = task  # type: ignore[attr-defined]
    return server


def calls_from(page_origin: str, calls: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Open the front end at `page_origin` and make each call from it, as its script would."""
    with chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(30_000)
        page.goto(f"{page_origin}/")
        assert page.title() == "A front end"
        return [page.evaluate(CALL_API, call) for call in calls]


@pytest.fixture
async def servers(app_settings: Settings, database: Database) -> AsyncIterator[tuple[int, int]]:
    """(page port, API port): the API allows the page's 127.0.0.1 origin everywhere and reads
    tenants from *.localhost hosts."""
    page_port = free_port()
    page_server = await serve_page(page_port)
    settings = replace(
        app_settings,
        base_domain="localhost",
        browsers=BrowserSettings(cors_origins=(f"http://127.0.0.1:{page_port}",)),
    )
    api_server, api_url = await start_server(settings, database)
    try:
        yield page_port, int(api_url.rsplit(":", 1)[1])
    finally:
        await stop_server(api_server)
        await stop_server(page_server)


async def projects_of(database: Database, org: Org) -> int:
    async with database.transaction(org.id, readonly=True) as session:
        return int(await session.fetchval("SELECT count(*) FROM projects"))


async def test_only_allowed_origins_can_call_the_api_from_a_browser(
    servers: tuple[int, int], gql: GraphQL, database: Database, tokens: TokenService
) -> None:
    # given Chromium, a page server and two tenants, one allowing the page's localhost origin
    require_chromium()
    page_port, api_port = servers
    listed, unlisted = f"http://127.0.0.1:{page_port}", f"http://localhost:{page_port}"
    acme = await new_org(database, tokens)
    other = await new_org(database, tokens)
    await gql.data(SET_ORIGINS, {"origins": [unlisted]}, token=acme.token)
    bare = f"http://127.0.0.1:{api_port}/graphql"
    acme_host = f"http://{acme.slug}.localhost:{api_port}/graphql"
    other_host = f"http://{other.slug}.localhost:{api_port}/graphql"

    # when the page, served from each origin, calls the API
    # (in a worker thread: the servers run on this test's event loop, see test_graphiql.py)
    from_listed = await asyncio.to_thread(
        calls_from,
        listed,
        [
            {"url": bare, "token": acme.token, "query": VIEWER},
            {"url": other_host, "token": other.token, "query": VIEWER},
        ],
    )
    from_unlisted = await asyncio.to_thread(
        calls_from,
        unlisted,
        [
            {"url": acme_host, "token": acme.token, "query": VIEWER},
            {"url": bare, "token": acme.token, "query": VIEWER},
            {"url": other_host, "token": other.token, "query": VIEWER},
            {"url": bare, "token": acme.token, "query": CREATE},
            {"url": other_host, "token": other.token, "query": CREATE},
        ],
    )

    # then the server's origin reads answers on every host, with the exposed request id
    for result, org in zip(from_listed, (acme, other), strict=True):
        assert result["read"], result
        assert without_cost(result["body"]) == {"data": {"viewer": {"email": org.members[0].email}}}
        assert result["requestId"]
    # and the tenant's own origin reads answers on that tenant's host only
    on_own_host, *elsewhere = from_unlisted
    assert on_own_host["read"], on_own_host
    assert without_cost(on_own_host["body"]) == {
        "data": {"viewer": {"email": acme.members[0].email}}
    }
    # everywhere else the browser refuses: the page learns nothing, not even a status
    for result in elsewhere:
        assert result == {"read": False, "error": "TypeError: Failed to fetch"}
    # and the refused mutations never ran (their preflight failed, so they were never sent)
    assert await projects_of(database, acme) == 0
    assert await projects_of(database, other) == 0
