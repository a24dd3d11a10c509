"""Self-service sign-up (signUp): where enabled, a new organisation on the default plan with
its owner signed in, in one transaction; bad input and taken slugs create nothing; attempts
are limited per client IP; a server without it refuses."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.db import Database
from app.core.settings import Settings
from app.core.validation import encodable
from app.tenants.service import lookup_slug
from tests.accounts.support import VERIFY_EMAIL, audit, link_token, outbox
from tests.api.helpers import refused_input
from tests.app_fixtures import PASSWORD, GraphQL, Org, start_server, stop_server
from tests.auth.helpers import fresh_ipv6_prefix, sign_in
from tests.platform.support import AUDIT, new_admin
from tests.platform.support import sign_in as platform_sign_in
from tests.properties import examples

PER_IP = 3
SIGN_UP = """
mutation ($input: SignUpInput!) {
  signUp(input: $input) {
    tenantId slug nextStep accessToken refreshToken
    errors { code message field retryAfterSeconds }
  }
}"""
WHO = "{ viewer { email roles { key } } tenant { slug name plan status } }"
VERIFIED = "{ viewer { emailVerifiedAt } }"


@pytest.fixture(scope="module")
async def open_server(app_settings: Settings, database: Database) -> AsyncIterator[GraphQL]:
    """A server with sign-up enabled (the shared one has the default: disabled)."""
    enabled = replace(app_settings, signup_enabled=True, signup_per_ip_per_hour=PER_IP)
    server, url = await start_server(enabled, database)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield GraphQL(client)
    finally:
        await stop_server(server)


def fresh_ip() -> str:
    # uvicorn believes X-Forwarded-For from 127.0.0.1: each test signs up from new addresses
    # (the counts live in Redis for an hour, across runs).
    return "10." + ".".join(str(secrets.randbelow(250)) for _ in range(3))


def new_slug() -> str:
    return f"acme-{secrets.token_hex(5)}"


def request(slug: str, **overrides: Any) -> dict[str, Any]:
    return {
        "organizationName": "Acme Ltd",
        "slug": slug,
        "email": f"founder@{slug}.example",
        "password": PASSWORD,
        **overrides,
    }


async def sign_up(gql: GraphQL, values: dict[str, Any], ip: str | None = None) -> Any:
    body = await post_sign_up(gql, values, ip)
    assert "errors" not in body, body["errors"]
    return body["data"]["signUp"]


async def post_sign_up(gql: GraphQL, values: dict[str, Any], ip: str | None = None) -> Any:
    response = await gql.http.post(
        "/graphql",
        # As a browser's JSON.stringify sends it: lone surrogates travel as \ud800 escapes.
        content=json.dumps({"query": SIGN_UP, "variables": {"input": values}}),
        headers={"x-forwarded-for": ip or fresh_ip(), "content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    return response.json()


async def exists(database: Database, slug: str) -> bool:
    return await lookup_slug(database, slug) is not None


async def test_sign_up_creates_the_tenant_with_its_owner_signed_in(
    open_server: GraphQL, database: Database, app_settings: Settings
) -> None:
    slug = new_slug()

    payload = await sign_up(open_server, request(slug, displayName="Ada"))

    assert payload["errors"] == []
    assert payload["slug"] == slug
    assert payload["nextStep"] == "DONE"
    who = await open_server.data(WHO, token=payload["accessToken"])
    assert who == {
        "viewer": {"email": f"founder@{slug}.example", "roles": [{"key": "owner"}]},
        "tenant": {"slug": slug, "name": "Acme Ltd", "plan": "free", "status": "ACTIVE"},
    }
    # The password works for signing in again.
    again = await sign_in(open_server, slug, f"founder@{slug}.example", PASSWORD)
    assert again["errors"] == []
    # Recorded in the tenant's log (by its owner) and the platform's (by nobody signed in).
    ref = await lookup_slug(database, slug)
    assert ref is not None
    [entry] = await audit(database, ref.id, "tenant.signed_up")
    assert entry["actor_kind"] == "user"
    assert entry["metadata"]["slug"] == slug
    assert entry["metadata"]["plan"] == "free"
    admin = await new_admin(database, app_settings, permissions=["platform:audit"])
    token = await platform_sign_in(open_server, admin)
    logged = (await open_server.data(AUDIT, {"action": "tenant.signed_up"}, token=token))[
        "platformAuditLog"
    ]["nodes"]
    assert [e["targetId"] for e in logged].count(str(ref.id)) == 1


async def test_the_owner_confirms_their_address_by_the_mailed_link(
    open_server: GraphQL, database: Database
) -> None:
    slug = new_slug()
    payload = await sign_up(open_server, request(slug))
    token = payload["accessToken"]
    ref = await lookup_slug(database, slug)
    assert ref is not None
    assert (await open_server.data(VERIFIED, token=token))["viewer"]["emailVerifiedAt"] is None

    [mail] = await outbox(database, ref.id)
    assert mail["recipient"] == f"founder@{slug}.example"
    assert mail["kind"] == "email_verification"
    verified = await open_server.data(
        VERIFY_EMAIL, {"link": link_token(mail["body"], "verify-email")}
    )

    assert verified["verifyEmail"] == {"ok": True, "errors": []}
    assert (await open_server.data(VERIFIED, token=token))["viewer"]["emailVerifiedAt"]
    [entry] = await audit(database, ref.id, "email.verified")
    assert entry["actor_kind"] == "user"


async def test_a_server_without_sign_up_refuses_it(gql: GraphQL, database: Database) -> None:
    slug = new_slug()

    payload = await sign_up(gql, request(slug))

    assert [e["code"] for e in payload["errors"]] == ["FORBIDDEN"]
    assert payload["accessToken"] is None
    assert not await exists(database, slug)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"slug": "-bad-"}, "slug"),
        ({"slug": "admin"}, "slug"),
        ({"slug": "x" * 64}, "slug"),
        ({"organizationName": "   "}, "organizationName"),
        ({"organizationName": "n" * 201}, "organizationName"),
        ({"email": "not-an-email"}, "email"),
        ({"password": "short"}, "password"),
        ({"password": "password123"}, "password"),
        ({"displayName": ""}, "displayName"),
    ],
)
async def test_bad_input_is_refused_naming_the_field_and_creates_nothing(
    open_server: GraphQL, database: Database, overrides: dict[str, str], field: str
) -> None:
    values = {**request(new_slug()), **overrides}

    payload = await sign_up(open_server, values)

    [error] = payload["errors"]
    assert (error["code"], error["field"]) == ("INVALID", field)
    assert payload["tenantId"] is None
    assert not await exists(database, values["slug"].strip().lower())


async def test_a_taken_slug_is_a_conflict_and_changes_nothing(
    open_server: GraphQL, database: Database, org: Org
) -> None:
    before = await audit(database, org.id)

    payload = await sign_up(open_server, request(org.slug))

    assert [(e["code"], e["field"]) for e in payload["errors"]] == [("CONFLICT", "slug")]
    assert payload["accessToken"] is None
    assert await audit(database, org.id) == before
    # The would-be owner was not created in the existing tenant either.
    failed = await sign_in(open_server, org.slug, f"founder@{org.slug}.example", PASSWORD)
    assert [e["code"] for e in failed["errors"]] == ["INVALID_CREDENTIALS"]


async def test_attempts_are_limited_per_ip(open_server: GraphQL, database: Database) -> None:
    ip = fresh_ip()
    # Failed attempts count too: probing slugs costs the same as creating tenants.
    for _ in range(PER_IP - 1):
        await sign_up(open_server, request("admin"), ip)
    assert (await sign_up(open_server, request(new_slug()), ip))["errors"] == []
    slug = new_slug()

    blocked = await sign_up(open_server, request(slug), ip)

    [error] = blocked["errors"]
    assert error["code"] == "TOO_MANY_ATTEMPTS"
    assert 1 <= error["retryAfterSeconds"] <= 3600
    assert not await exists(database, slug)
    # Another address is not held back.
    assert (await sign_up(open_server, request(slug)))["errors"] == []


async def test_addresses_of_one_ipv6_network_share_its_limit(open_server: GraphQL) -> None:
    # one subscriber's /64 holds 2^64 addresses: each is not a client of its own
    prefix = fresh_ipv6_prefix()
    for i in range(PER_IP):
        await sign_up(open_server, request("admin"), f"{prefix}{i + 1:x}::1")

    blocked = await sign_up(open_server, request(new_slug()), f"{prefix}:ffff")

    assert [e["code"] for e in blocked["errors"]] == ["TOO_MANY_ATTEMPTS"]


async def test_the_new_tenant_has_the_default_plans_quotas(open_server: GraphQL) -> None:
    payload = await sign_up(open_server, request(new_slug()))
    create = 'mutation { createProject(input: {name: "P"}) { errors { code } } }'

    results = [await open_server.data(create, token=payload["accessToken"]) for _ in range(4)]

    codes = [[e["code"] for e in r["createProject"]["errors"]] for r in results]
    assert codes == [[], [], [], ["QUOTA_EXCEEDED"]]


@settings(max_examples=examples(25))
@given(
    name=st.text(max_size=210),
    slug=st.text(alphabet="abcXYZ-09 _.é", max_size=70),
)
async def test_any_input_is_created_or_refused_cleanly(
    open_server: GraphQL, database: Database, name: str, slug: str
) -> None:
    suffix = secrets.token_hex(3)
    values = request(slug + suffix, organizationName=name, email=f"a{suffix}@x.example")

    if not encodable(name):
        body = await post_sign_up(open_server, values)
        assert refused_input(body) == "organizationName"
        assert not await exists(database, values["slug"].strip().lower())
        return
    payload = await sign_up(open_server, values)

    codes = [e["code"] for e in payload["errors"]]
    created = await exists(database, values["slug"].strip().lower())
    assert codes in ([], ["INVALID"]), codes
    assert created == (codes == [])


async def test_requests_naming_the_new_slug_find_it_at_once(open_server: GraphQL) -> None:
    slug = new_slug()

    async def viewer(token: str | None) -> int:
        headers = {"x-tenant": slug, **({"authorization": f"Bearer {token}"} if token else {})}
        response = await open_server.http.post(
            "/graphql", json={"query": "{ viewer { id } }"}, headers=headers
        )
        return response.status_code

    # Before it exists the slug is unknown, and remembered so for a few seconds...
    assert await viewer(None) == 200
    payload = await sign_up(open_server, request(slug))

    # ...but signing up forgets that at once: its owner's token and the header agree.
    assert await viewer(payload["accessToken"]) == 200
