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
from app.core.security import TokenService
from app.core.settings import Settings
from tests.accounts.support import audit
from tests.app_fixtures import PASSWORD, GraphQL, Org, new_org, start_server, stop_server
from tests.auth.helpers import SIGN_IN
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


# --- Anonymous operations take the tenant the request names -----------------------------------


@pytest.fixture
async def team(database: Database, tokens: TokenService) -> Org:
    return await new_org(database, tokens, members=1, password=PASSWORD)


async def anonymous_sign_in(
    http: httpx.AsyncClient, tenant: str | None, email: str, **headers: str
) -> dict[str, Any]:
    given = {} if tenant is None else {"tenant": tenant}
    response = await http.post(
        "/graphql",
        json={
            "query": SIGN_IN,
            "variables": {"input": {**given, "email": email, "password": PASSWORD}},
        },
        headers=headers,
    )
    if response.status_code != 200:
        return {"status": response.status_code, "errors": response.json()["errors"]}
    result: dict[str, Any] = response.json()["data"]["signIn"]
    return result


def outcome(result: dict[str, Any]) -> list[str]:
    return [e.get("code") or e["extensions"]["code"] for e in result["errors"]]


async def test_sign_in_takes_the_tenant_from_the_header_or_subdomain(
    http: httpx.AsyncClient, hosted: httpx.AsyncClient, team: Org
) -> None:
    email = team.members[0].email

    by_slug = await anonymous_sign_in(http, None, email, **{"x-tenant": team.slug})
    by_id = await anonymous_sign_in(http, None, email, **{"x-tenant": str(team.id)})
    by_host = await anonymous_sign_in(hosted, None, email, host=f"{team.slug}.{BASE}")
    both = await anonymous_sign_in(http, str(team.id), email, **{"x-tenant": team.slug.upper()})

    for result in (by_slug, by_id, by_host, both):
        assert result["errors"] == []
        assert result["accessToken"]


async def test_an_argument_naming_another_tenant_is_a_mismatch(
    http: httpx.AsyncClient, hosted: httpx.AsyncClient, team: Org, other_org: Org
) -> None:
    email = team.members[0].email

    header = await anonymous_sign_in(http, other_org.slug, email, **{"x-tenant": team.slug})
    host = await anonymous_sign_in(hosted, team.slug, email, host=f"{other_org.slug}.{BASE}")
    unknown = await anonymous_sign_in(http, team.slug, email, **{"x-tenant": "no-such-tenant"})

    for result in (header, host, unknown):
        assert outcome(result) == ["TENANT_MISMATCH"]
        assert result["accessToken"] is None


async def test_sign_in_needs_a_tenant_named_somewhere(http: httpx.AsyncClient, team: Org) -> None:
    email = team.members[0].email

    nowhere = await anonymous_sign_in(http, None, email)
    unknown = await anonymous_sign_in(http, None, email, **{"x-tenant": "no-such-tenant"})

    assert [(e["code"], e["field"]) for e in nowhere["errors"]] == [("INVALID", "tenant")]
    # An unknown name fails as an unknown slug does: nothing tells it apart from a bad password.
    assert outcome(unknown) == ["INVALID_CREDENTIALS"]


async def test_password_reset_takes_the_tenant_from_the_header(
    http: httpx.AsyncClient, team: Org
) -> None:
    document = """
    mutation ($input: RequestPasswordResetInput!) {
      requestPasswordReset(input: $input) { ok errors { code field } }
    }"""
    variables = {"input": {"email": team.members[0].email}}

    named = await http.post(
        "/graphql",
        json={"query": document, "variables": variables},
        headers={"x-tenant": team.slug},
    )
    unnamed = await http.post("/graphql", json={"query": document, "variables": variables})

    assert named.json()["data"]["requestPasswordReset"] == {"ok": True, "errors": []}
    assert unnamed.json()["data"]["requestPasswordReset"]["errors"] == [
        {"code": "INVALID", "field": "tenant"}
    ]
