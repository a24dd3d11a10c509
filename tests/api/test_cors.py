"""Browsers on other origins (CORS): the server's allowlist everywhere, a tenant's own origins
on its own host, credentials off unless enabled, preflights cached; every other origin gets
no CORS header at all."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from app.api.cors import ALLOW_HEADERS
from app.core.db import Database
from app.core.settings import BrowserSettings, Settings
from app.core.store import Store, tenant_key
from app.tenants.resolution import forget
from app.tenants.service import cors_origins
from tests.app_fixtures import COST_1, GraphQL, Org, start_server, stop_server

ALLOWED = "https://app.example.com"
TENANT_ORIGIN = "https://acme-portal.example"
BASE = "tenantry.test"
VIEWER = {"query": "{ viewer { email } }"}
SET_ORIGINS = """
mutation ($origins: [String!]!) {
  updateTenantSettings(input: {corsOrigins: $origins}) {
    tenant { corsOrigins } errors { code field message }
  }
}"""
# The one statement that reads a tenant's origins (app/tenants/queries.py).
READ_ORIGINS = "SELECT cors_origins FROM tenants"
# What a front end's preflight asks for: a JSON POST with a token and our own headers.
REQUESTED = "authorization, content-type, x-tenant, x-request-id, idempotency-key, traceparent"


async def serve(
    settings: Settings, database: Database, **browsers: Any
) -> AsyncIterator[httpx.AsyncClient]:
    changed = replace(settings, base_domain=BASE, browsers=BrowserSettings(**browsers))
    server, url = await start_server(changed, database)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield client
    finally:
        await stop_server(server)


@pytest.fixture(scope="module")
async def api(app_settings: Settings, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    """A server that allows ALLOWED everywhere and reads tenants from subdomains of BASE."""
    async for client in serve(app_settings, database, cors_origins=(ALLOWED,)):
        yield client


@pytest.fixture(scope="module")
async def with_credentials(
    app_settings: Settings, database: Database
) -> AsyncIterator[httpx.AsyncClient]:
    async for client in serve(
        app_settings, database, cors_origins=(ALLOWED,), cors_credentials=True
    ):
        yield client


@pytest.fixture(scope="module")
async def any_origin(
    app_settings: Settings, database: Database
) -> AsyncIterator[httpx.AsyncClient]:
    async for client in serve(app_settings, database, cors_origins=("*",)):
        yield client


async def preflight(
    client: httpx.AsyncClient,
    origin: str,
    *,
    method: str = "POST",
    requested: str = REQUESTED,
    host: str | None = None,
) -> httpx.Response:
    headers = {
        "origin": origin,
        "access-control-request-method": method,
        "access-control-request-headers": requested,
    }
    if host is not None:
        headers["host"] = host
    return await client.options("/graphql", headers=headers)


async def viewer(
    client: httpx.AsyncClient, origin: str, token: str | None, **headers: str
) -> httpx.Response:
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return await client.post("/graphql", json=VIEWER, headers={"origin": origin, **headers})


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


def varies_on_origin(response: httpx.Response) -> bool:
    return "origin" in {v.strip().lower() for v in response.headers.get("vary", "").split(",")}


def refused(response: httpx.Response) -> bool:
    body = response.json()
    return response.status_code == 403 and [e["extensions"]["code"] for e in body["errors"]] == [
        "CORS_REFUSED"
    ]


# --- The server's allowlist ---------------------------------------------------------------


async def test_a_preflight_from_a_listed_origin_is_answered_for_what_clients_send(
    api: httpx.AsyncClient,
) -> None:
    response = await preflight(api, ALLOWED)

    assert response.status_code == 200
    headers = cors_headers(response)
    assert headers["access-control-allow-origin"] == ALLOWED
    assert {"GET", "POST"} <= set(headers["access-control-allow-methods"].split(", "))
    allowed_headers = {h.lower() for h in headers["access-control-allow-headers"].split(", ")}
    assert {h.strip() for h in REQUESTED.split(",")} <= allowed_headers
    assert set(ALLOW_HEADERS) <= allowed_headers
    # Browsers reuse the answer for ten minutes instead of asking before every request.
    assert headers["access-control-max-age"] == "600"
    assert "access-control-allow-credentials" not in headers
    assert varies_on_origin(response)


async def test_a_listed_origin_reads_answers_and_the_headers_it_needs(
    api: httpx.AsyncClient, org: Org
) -> None:
    response = await viewer(api, ALLOWED, org.token, **{"x-request-id": "cors-1"})

    assert response.status_code == 200
    assert response.json() == {
        "data": {"viewer": {"email": org.members[0].email}},
        "extensions": COST_1,
    }
    headers = cors_headers(response)
    assert headers["access-control-allow-origin"] == ALLOWED
    exposed = set(headers["access-control-expose-headers"].lower().split(", "))
    assert {"x-request-id", "retry-after", "ratelimit", "www-authenticate"} <= exposed
    assert "access-control-allow-credentials" not in headers
    assert varies_on_origin(response)


async def test_answers_refused_before_graphql_carry_cors_headers_too(
    api: httpx.AsyncClient, app_settings: Settings
) -> None:
    # A page must be able to read why it was refused (and its WWW-Authenticate).
    unauthenticated = await viewer(
        api, ALLOWED, "not-a-token", accept="application/graphql-response+json"
    )
    too_large = await api.post(
        "/graphql",
        content=b"x" * (app_settings.limits.max_body_bytes + 1),
        headers={"origin": ALLOWED, "content-type": "application/json"},
    )

    assert unauthenticated.status_code == 401
    assert too_large.status_code == 413
    for response in (unauthenticated, too_large):
        assert cors_headers(response)["access-control-allow-origin"] == ALLOWED


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://app.example.com",  # another scheme
        "https://app.example.com:8443",  # another port
        "https://app.example.com.evil.example",
        "https://sub.app.example.com",
        "null",  # sandboxed frames, file: pages
    ],
)
async def test_an_origin_not_listed_gets_no_cors_header(
    api: httpx.AsyncClient, org: Org, origin: str
) -> None:
    asked = await preflight(api, origin)
    sent = await viewer(api, origin, org.token)

    # The preflight is refused, so a browser never sends the request itself ...
    assert refused(asked)
    assert cors_headers(asked) == {}
    # ... and a request sent anyway (curl, or a simple GET) is answered, unreadable to a page.
    assert sent.status_code == 200
    assert cors_headers(sent) == {}
    assert varies_on_origin(sent)


async def test_without_an_allowlist_no_origin_is_allowed(http: httpx.AsyncClient, org: Org) -> None:
    # The test suite's default server: TENANTRY_CORS_ORIGINS unset.
    asked = await preflight(http, ALLOWED)
    sent = await viewer(http, ALLOWED, org.token)
    plain = await http.post("/graphql", json=VIEWER)

    assert refused(asked)
    assert cors_headers(asked) == cors_headers(sent) == cors_headers(plain) == {}
    # Without an Origin too: a cache must not serve this answer to a cross-origin request.
    assert varies_on_origin(plain)


@pytest.mark.parametrize(
    ("method", "requested"),
    [("PUT", "content-type"), ("DELETE", "content-type"), ("POST", "content-type, x-evil")],
)
async def test_a_preflight_for_another_method_or_header_is_refused(
    api: httpx.AsyncClient, method: str, requested: str
) -> None:
    response = await preflight(api, ALLOWED, method=method, requested=requested)

    assert refused(response)
    assert response.headers["content-type"] == "application/json"


async def test_credentials_are_off_unless_enabled(
    api: httpx.AsyncClient, with_credentials: httpx.AsyncClient, org: Org
) -> None:
    default = [await preflight(api, ALLOWED), await viewer(api, ALLOWED, org.token)]
    enabled = [
        await preflight(with_credentials, ALLOWED),
        await viewer(with_credentials, ALLOWED, org.token),
    ]

    for response in default:
        assert "access-control-allow-credentials" not in response.headers
    for response in enabled:
        assert response.headers["access-control-allow-credentials"] == "true"
        # With credentials, the one origin is named, never `*`.
        assert response.headers["access-control-allow-origin"] == ALLOWED


async def test_any_origin_is_answered_with_its_own_name(
    any_origin: httpx.AsyncClient, org: Org
) -> None:
    asked = await preflight(any_origin, "https://anyone.example")
    sent = await viewer(any_origin, "https://anyone.example", org.token)

    for response in (asked, sent):
        assert response.headers["access-control-allow-origin"] == "https://anyone.example"
        assert "access-control-allow-credentials" not in response.headers
        assert varies_on_origin(response)


# --- A tenant's own origins, on its own host --------------------------------------------------


async def set_origins(api: httpx.AsyncClient, org: Org, origins: list[str]) -> dict[str, Any]:
    gql = GraphQL(api)
    payload: dict[str, Any] = (await gql.data(SET_ORIGINS, {"origins": origins}, token=org.token))[
        "updateTenantSettings"
    ]
    return payload


async def test_a_tenants_origins_are_allowed_on_its_own_host_only(
    api: httpx.AsyncClient, org: Org, other_org: Org
) -> None:
    payload = await set_origins(api, org, [TENANT_ORIGIN])
    assert payload == {"tenant": {"corsOrigins": [TENANT_ORIGIN]}, "errors": []}
    mine, theirs = f"{org.slug}.{BASE}", f"{other_org.slug}.{BASE}"

    on_its_host = await preflight(api, TENANT_ORIGIN, host=mine)
    read = await viewer(api, TENANT_ORIGIN, org.token, host=mine)
    on_another_tenants_host = await preflight(api, TENANT_ORIGIN, host=theirs)
    on_the_bare_host = await preflight(api, TENANT_ORIGIN)
    on_an_unknown_host = await preflight(api, TENANT_ORIGIN, host=f"nobody-here.{BASE}")
    # The server's own list still holds on the tenant's host.
    server_listed = await preflight(api, ALLOWED, host=mine)

    assert on_its_host.status_code == 200
    assert on_its_host.headers["access-control-allow-origin"] == TENANT_ORIGIN
    assert read.json() == {
        "data": {"viewer": {"email": org.members[0].email}},
        "extensions": COST_1,
    }
    assert read.headers["access-control-allow-origin"] == TENANT_ORIGIN
    for response in (on_another_tenants_host, on_the_bare_host, on_an_unknown_host):
        assert refused(response)
        assert cors_headers(response) == {}
    assert server_listed.headers["access-control-allow-origin"] == ALLOWED


async def test_a_removed_tenant_origin_is_refused_at_once(api: httpx.AsyncClient, org: Org) -> None:
    host = f"{org.slug}.{BASE}"
    await set_origins(api, org, [TENANT_ORIGIN, "http://localhost:3000"])
    assert (await preflight(api, TENANT_ORIGIN, host=host)).status_code == 200

    await set_origins(api, org, ["http://localhost:3000"])

    assert refused(await preflight(api, TENANT_ORIGIN, host=host))
    assert (await preflight(api, "http://localhost:3000", host=host)).status_code == 200


async def test_a_tenants_origins_are_read_once_then_from_the_store(
    api: httpx.AsyncClient, org: Org, statements: list[str]
) -> None:
    host = f"{org.slug}.{BASE}"
    await set_origins(api, org, [TENANT_ORIGIN])
    statements.clear()

    first = await preflight(api, TENANT_ORIGIN, host=host)
    read = [s for s in statements if s.startswith(READ_ORIGINS)]
    statements.clear()
    again = [await preflight(api, TENANT_ORIGIN, host=host) for _ in range(3)]
    refused_again = await preflight(api, "https://other.example", host=host)

    assert first.status_code == 200
    assert len(read) == 1
    assert [r.status_code for r in again] == [200, 200, 200]
    assert refused(refused_again)
    # Preflights run no SQL while the tenant's list is cached (the store, one read each).
    assert statements == []


async def test_a_purged_tenants_origins_are_dropped_from_the_store(
    api: httpx.AsyncClient, database: Database, app_settings: Settings, org: Org
) -> None:
    await set_origins(api, org, [TENANT_ORIGIN])
    store = Store.from_settings(app_settings)
    try:
        assert await cors_origins(database, store, org.id) == {TENANT_ORIGIN}

        await forget(store, org.id, org.slug)  # what a purge does once the rows are gone

        assert await store.get(tenant_key(org.id, "cors-origins")) is None
    finally:
        await store.close()


async def test_a_same_origin_request_costs_no_origin_lookup(
    api: httpx.AsyncClient, org: Org, statements: list[str]
) -> None:
    # GraphiQL on the tenant's host posts with its own origin (browsers send it on POST).
    host = f"{org.slug}.{BASE}"

    response = await viewer(api, f"http://{host}", org.token, host=host)

    assert response.json() == {
        "data": {"viewer": {"email": org.members[0].email}},
        "extensions": COST_1,
    }
    assert cors_headers(response) == {}
    assert not [s for s in statements if s.startswith(READ_ORIGINS)], statements
