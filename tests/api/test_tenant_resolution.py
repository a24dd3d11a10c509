"""A request may name its tenant by token, `X-Tenant` header (slug or id) or subdomain; when
the names disagree it is refused with 403 TENANT_MISMATCH before anything runs, and the
signed-in user's tenant records it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from app.api.middleware import host_slug
from app.core.db import Database
from app.core.settings import Settings
from tests.accounts.support import audit
from tests.app_fixtures import GraphQL, Org, start_server, stop_server
from tests.platform.support import new_admin
from tests.platform.support import sign_in as platform_sign_in

VIEWER = {"query": "{ viewer { email } }"}
BASE = "tenantry.test"


async def post(http: httpx.AsyncClient, token: str | None, **headers: str) -> httpx.Response:
    if token:
        headers["authorization"] = f"Bearer {token}"
    return await http.post("/graphql", json=VIEWER, headers=headers)


def mismatch(response: httpx.Response) -> bool:
    body: dict[str, Any] = response.json()
    return response.status_code == 403 and [e["extensions"]["code"] for e in body["errors"]] == [
        "TENANT_MISMATCH"
    ]


@pytest.fixture(scope="module")
async def hosted(app_settings: Settings, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    """A server that reads tenants from subdomains of tenantry.test."""
    server, url = await start_server(replace(app_settings, base_domain=BASE), database)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield client
    finally:
        await stop_server(server)


def test_host_slug() -> None:
    assert host_slug(f"acme.{BASE}", BASE) == "acme"
    assert host_slug(f"ACME.{BASE}.:8443", BASE) == "acme"
    assert host_slug(BASE, BASE) is None
    assert host_slug(f"a.b.{BASE}", BASE) is None
    assert host_slug(f"acme.evil-{BASE}", BASE) is None
    assert host_slug("acme.example", None) is None


async def test_the_header_must_name_the_tokens_tenant(
    http: httpx.AsyncClient, database: Database, org: Org, other_org: Org
) -> None:
    assert (await post(http, org.token, **{"x-tenant": org.slug})).status_code == 200
    assert (await post(http, org.token, **{"x-tenant": str(org.id)})).status_code == 200
    assert (await post(http, org.token, **{"x-tenant": org.slug.upper()})).status_code == 200

    assert mismatch(await post(http, org.token, **{"x-tenant": other_org.slug}))
    assert mismatch(await post(http, org.token, **{"x-tenant": str(other_org.id)}))
    assert mismatch(await post(http, org.token, **{"x-tenant": "no-such-tenant"}))

    entries = await audit(database, org.id, "tenant.mismatch")
    assert [e["outcome"] for e in entries] == ["denied"] * 3
    assert entries[0]["actor_id"] == org.members[0].id
    assert entries[0]["metadata"] == {"named": {"header": other_org.slug}}
    assert await audit(database, other_org.id, "tenant.mismatch") == []


async def test_the_subdomain_must_agree_with_the_token_and_the_header(
    hosted: httpx.AsyncClient, org: Org, other_org: Org
) -> None:
    mine, theirs = f"{org.slug}.{BASE}", f"{other_org.slug}.{BASE}"

    assert (await post(hosted, org.token, host=mine)).status_code == 200
    assert (await post(hosted, None, host=mine)).status_code == 200
    assert mismatch(await post(hosted, org.token, host=theirs))
    # Anonymous: the header and the host disagree with each other.
    assert mismatch(await post(hosted, None, host=mine, **{"x-tenant": other_org.slug}))
    assert (await post(hosted, None, host=mine, **{"x-tenant": org.slug})).status_code == 200


async def test_a_refused_request_runs_nothing(
    gql: GraphQL, http: httpx.AsyncClient, org: Org, other_org: Org, statements: list[str]
) -> None:
    await gql("{ __typename }", token=org.token)  # the tenant's status is known
    statements.clear()

    response = await http.post(
        "/graphql",
        json={"query": 'mutation { createProject(input: {name: "X"}) { errors { code } } }'},
        headers={"authorization": f"Bearer {org.token}", "x-tenant": other_org.slug},
    )

    assert mismatch(response)
    # Only the audit entry (and the cached slug lookup) ran: no project was created.
    assert not any("projects" in sql for sql in statements), statements


async def test_platform_tokens_are_not_tied_to_a_tenant(
    http: httpx.AsyncClient,
    gql: GraphQL,
    database: Database,
    app_settings: Settings,
    org: Org,
) -> None:
    admin = await new_admin(database, app_settings, permissions=["tenant:read"])
    token = await platform_sign_in(gql, admin)

    response = await http.post(
        "/graphql",
        json={"query": "{ platformViewer { email } }"},
        headers={"authorization": f"Bearer {token}", "x-tenant": org.slug},
    )

    assert response.status_code == 200
    assert "errors" not in response.json()
