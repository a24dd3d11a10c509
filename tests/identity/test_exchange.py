"""exchangeToken against a real identity provider: a JWKS served over HTTP on loopback and
ID tokens signed with real keys. Every rejection is the same answer and one audit entry."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from uuid import UUID

import httpx
import pytest
from joserfc import jws

from app.api.relay import decode_global_id
from app.core.db import Database
from app.core.settings import Settings
from app.identity.jwks import JwksCache
from app.tenants.plans import PLANS
from tests.app_fixtures import GraphQL, Org, start_server, stop_server
from tests.auth.helpers import STORES, fresh_ip, from_ip, throttled_server
from tests.factories import SYSTEM_ROLE_COLUMN, TEST_SESSION_AGENT, seed_user
from tests.identity.support import (
    VIEWER,
    FakeIdp,
    SigningKey,
    add_provider,
    audit,
    exchange,
    new_key,
    set_role,
    set_status,
)

ACTION = "auth.token_exchange"
REJECTED = {
    "nextStep": None,
    "accessToken": None,
    "refreshToken": None,
    "errors": [
        {"code": "INVALID_CREDENTIALS", "message": "Invalid organisation or token", "field": None}
    ],
}
MIN_REFETCH = 30.0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
async def idp_gql(
    app_settings: Settings, database: Database, clock: Clock
) -> AsyncIterator[GraphQL]:
    """A live server whose provider-key cache runs on a clock the tests move."""
    server, url = await start_server(app_settings, database)
    server.config.app.state.identity_jwks = JwksCache(
        allow_insecure=True, min_refetch_seconds=MIN_REFETCH, clock=clock
    )
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            yield GraphQL(http)
    finally:
        await stop_server(server)


@pytest.fixture
def idp() -> Iterator[FakeIdp]:
    provider = FakeIdp()
    try:
        yield provider
    finally:
        provider.close()


@pytest.fixture
def key(idp: FakeIdp) -> SigningKey:
    signing = new_key("RS256")
    idp.published = [signing]
    return signing


@pytest.fixture
async def admin(org: Org, database: Database) -> str:
    """org.members[0] as the tenant's owner; returns their access token."""
    await set_role(database, org.id, org.members[0].id, "owner")
    return org.token


Trust = Callable[..., Any]


@pytest.fixture
def trust(idp_gql: GraphQL, org: Org, admin: str, idp: FakeIdp) -> Trust:
    async def add(**changes: Any) -> dict[str, Any]:
        return await add_provider(idp_gql, admin, idp, **changes)

    return add


def _kid(token: str) -> str:
    return str(jws.extract_compact(token.encode()).headers()["kid"])


async def _identities(database: Database, tenant_id: UUID) -> list[tuple[UUID, str]]:
    async with database.transaction(tenant_id, readonly=True) as session:
        rows = await session.fetch("SELECT user_id, subject FROM user_identities ORDER BY 2")
    return [(r["user_id"], r["subject"]) for r in rows]


async def _user(database: Database, tenant_id: UUID, email: str) -> dict[str, Any] | None:
    async with database.transaction(tenant_id, readonly=True) as session:
        row = await session.fetchrow(
            "SELECT id, email, display_name, status, password_hash, email_verified_at,"  # noqa: S608 (a constant)
            f" {SYSTEM_ROLE_COLUMN}"
            " FROM users WHERE lower(email) = lower($1)",
            email,
        )
    return None if row is None else dict(row)


async def _sessions(database: Database, tenant_id: UUID) -> list[tuple[UUID, int, list[str]]]:
    """The sessions signed in (not those new_org opened for the members' tokens)."""
    async with database.transaction(tenant_id, readonly=True) as session:
        rows = await session.fetch(
            "SELECT user_id, aal, amr FROM auth_sessions WHERE user_agent <> $1 ORDER BY 1",
            TEST_SESSION_AGENT,
        )
    return [(r["user_id"], r["aal"], list(r["amr"])) for r in rows]


async def _reasons(database: Database, tenant_id: UUID) -> list[str]:
    return [e["metadata"].get("reason", "-") for e in await audit(database, tenant_id, ACTION)]


# --- Success ---------------------------------------------------------------------------


async def test_verified_email_links_an_existing_user_and_signs_in(
    idp_gql: GraphQL, org: Org, database: Database, idp: FakeIdp, key: SigningKey, trust: Trust
) -> None:
    # given a provider (no user creation) and a member with the token's email
    provider = await trust()
    member = org.members[1]
    claims = idp.claims(email=member.email.upper())

    # when
    result = await exchange(idp_gql, org.slug, idp.token(key, claims))

    # then tokens for that member, of an AAL 1 "ext" session, and a link to the subject
    assert result["errors"] == []
    assert result["nextStep"] == "DONE"
    assert result["refreshToken"]
    viewer = await idp_gql.data(VIEWER, token=result["accessToken"])
    assert viewer["viewer"]["email"] == member.email
    assert await _identities(database, org.id) == [(member.id, claims["sub"])]
    assert await _sessions(database, org.id) == [(member.id, 1, ["ext"])]
    [entry] = await audit(database, org.id, ACTION)
    assert entry["outcome"] == "success"
    assert entry["actor_id"] == member.id
    assert entry["metadata"] == {
        "provider": str(_pk(provider["id"])),
        "issuer": idp.issuer,
        "user": "email",
    }

    # and the next exchange finds the user by subject, even with another email
    again = await exchange(idp_gql, org.slug, idp.token(key, {**claims, "email": "x@y.example"}))
    assert again["errors"] == []
    assert [e["metadata"]["user"] for e in await audit(database, org.id, ACTION)] == [
        "email",
        "linked",
    ]


def _pk(global_id: str) -> UUID:
    decoded = decode_global_id(global_id)
    assert decoded is not None
    return decoded[1]


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
async def test_each_asymmetric_algorithm_creates_a_user_when_allowed(
    idp_gql: GraphQL, org: Org, database: Database, idp: FakeIdp, trust: Trust, alg: str
) -> None:
    # given
    signing = new_key(alg)
    idp.published = [signing]
    await trust(createUsers=True, defaultRole="VIEWER")
    claims = idp.claims(email="New.Person@people.example", name="New Person")

    # when
    result = await exchange(idp_gql, org.slug, idp.token(signing, claims))

    # then a password-less, verified user with the provider's role
    assert result["errors"] == []
    user = await _user(database, org.id, "new.person@people.example")
    assert user is not None
    assert (user["email"], user["display_name"], user["role"], user["status"]) == (
        "New.Person@people.example",
        "New Person",
        "viewer",
        "active",
    )
    assert user["password_hash"] is None
    assert user["email_verified_at"] is not None
    assert await _identities(database, org.id) == [(user["id"], claims["sub"])]
    viewer = await idp_gql.data(VIEWER, token=result["accessToken"])
    assert viewer["viewer"]["email"] == "New.Person@people.example"
    assert [e["metadata"]["user"] for e in await audit(database, org.id, ACTION)] == ["created"]


# --- Rejections: one answer, nothing signed in, one audit entry each -----------------------


def _bad_tokens() -> dict[str, Callable[[FakeIdp, SigningKey], str]]:
    now = int(time.time())
    return {
        "wrong-signature-key": lambda idp, key: idp.token(new_key("RS256", kid=key.kid)),
        "alg-none": lambda idp, key: idp.unsigned(key, idp.claims()),
        "hs256-public-key-as-secret": lambda idp, key: idp.hs256_with_public_key(key, idp.claims()),
        "expired": lambda idp, key: idp.token(key, idp.claims(iat=now - 900, exp=now - 120)),
        "not-yet-valid": lambda idp, key: idp.token(key, idp.claims(nbf=now + 600)),
        "issued-in-the-future": lambda idp, key: idp.token(key, idp.claims(iat=now + 600)),
        "no-exp": lambda idp, key: idp.token(key, idp.claims(exp=None)),
        "wrong-aud": lambda idp, key: idp.token(key, idp.claims(aud="another-client")),
        "wrong-iss": lambda idp, key: idp.token(key, idp.claims(iss="https://evil.example")),
        "ec-token-for-an-rsa-kid": lambda idp, key: idp.token(new_key("ES256", kid=key.kid)),
        "garbage": lambda idp, key: "not.a.token",
        "nested-payload": _nested_payload,
    }


def _nested_payload(idp: FakeIdp, key: SigningKey) -> str:
    """A token whose payload nests deeper than the JSON parser can recurse (it was read,
    before any verification, to find the issuer: an internal error)."""
    header = {"alg": "ES256", "kid": key.kid, "typ": "JWT"}

    def part(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    return f"{part(json.dumps(header).encode())}.{part(b'[' * 5000)}.{part(b'signature')}"


BAD_REASONS = {
    "wrong-signature-key": "signature",
    "alg-none": "algorithm",
    "hs256-public-key-as-secret": "algorithm",
    "expired": "claim_exp",
    "not-yet-valid": "claim_nbf",
    "issued-in-the-future": "claim_iat",
    "no-exp": "claim_exp",
    "wrong-aud": "claim_aud",
    "wrong-iss": "unknown_issuer",
    "ec-token-for-an-rsa-kid": "signature",
    "garbage": "malformed",
    "nested-payload": "malformed",
}


@pytest.mark.parametrize("kind", list(BAD_REASONS))
async def test_bad_token_is_rejected_the_same_way_and_audited(
    idp_gql: GraphQL,
    org: Org,
    database: Database,
    idp: FakeIdp,
    key: SigningKey,
    trust: Trust,
    kind: str,
) -> None:
    # given a provider that would create any user
    await trust(createUsers=True)
    token = _bad_tokens()[kind](idp, key)

    # when
    result = await exchange(idp_gql, org.slug, token)

    # then
    assert result == REJECTED
    assert await _sessions(database, org.id) == []
    assert await _identities(database, org.id) == []
    [entry] = await audit(database, org.id, ACTION)
    assert entry["outcome"] == "failure"
    assert entry["actor_id"] is None
    assert entry["metadata"]["reason"] == BAD_REASONS[kind]


async def test_unknown_kid_refetches_after_the_idp_rotates_but_rate_limited(
    idp_gql: GraphQL,
    org: Org,
    database: Database,
    idp: FakeIdp,
    key: SigningKey,
    trust: Trust,
    clock: Clock,
) -> None:
    # given a provider whose keys were fetched once, for a first sign-in
    await trust(createUsers=True)
    assert (await exchange(idp_gql, org.slug, idp.token(key)))["errors"] == []
    assert idp.requests == 1

    # when the IdP signs with a key it has not published yet
    rotated = new_key("ES256")
    early = await exchange(idp_gql, org.slug, idp.token(rotated))

    # then the unknown kid is rejected; it may refetch once (nothing new there)
    assert early == REJECTED
    fetched = idp.requests

    # when the IdP now publishes the new key, but too soon after the last fetch
    idp.published = [key, rotated]
    too_soon = await exchange(idp_gql, org.slug, idp.token(rotated))

    # then no request reaches the IdP (made-up kids cannot make us hammer it)
    assert too_soon == REJECTED
    assert idp.requests == fetched

    # when the rate limit has passed
    clock.now += MIN_REFETCH
    result = await exchange(idp_gql, org.slug, idp.token(rotated))

    # then one refetch finds the new key
    assert result["errors"] == []
    assert idp.requests == fetched + 1
    assert _kid(idp.token(rotated)) == rotated.kid
    assert await _reasons(database, org.id) == ["-", "unknown_key", "unknown_key", "-"]


async def test_without_user_creation_an_unknown_person_is_rejected(
    idp_gql: GraphQL, org: Org, database: Database, idp: FakeIdp, key: SigningKey, trust: Trust
) -> None:
    # given
    await trust(createUsers=False)
    claims = idp.claims(email="stranger@people.example")

    # when
    result = await exchange(idp_gql, org.slug, idp.token(key, claims))

    # then
    assert result == REJECTED
    assert await _user(database, org.id, "stranger@people.example") is None
    assert await _reasons(database, org.id) == ["no_such_user"]


async def test_a_tenant_without_seats_creates_no_user(
    idp_gql: GraphQL, org: Org, database: Database, idp: FakeIdp, key: SigningKey, trust: Trust
) -> None:
    # given a free-plan tenant whose seats are all taken (two members and three more)
    await trust(createUsers=True)
    async with database.transaction(org.id) as session:
        await session.execute("UPDATE tenants SET plan = 'free'")
    for _ in range(PLANS["free"].max_users - len(org.members)):  # type: ignore[operator]
        await seed_user(database, org.id)
    claims = idp.claims(email="late@people.example")

    # when
    result = await exchange(idp_gql, org.slug, idp.token(key, claims))

    # then
    assert result == REJECTED
    assert await _user(database, org.id, "late@people.example") is None
    assert await _reasons(database, org.id) == ["quota_exceeded"]


@pytest.mark.parametrize("verified", [False, "true", None])
async def test_unverified_email_neither_links_nor_creates(
    idp_gql: GraphQL,
    org: Org,
    database: Database,
    idp: FakeIdp,
    key: SigningKey,
    trust: Trust,
    verified: object,
) -> None:
    # given a member whose email the token claims without verifying it
    await trust(createUsers=True)
    claims = idp.claims(email=org.members[1].email, email_verified=verified)

    # when
    result = await exchange(idp_gql, org.slug, idp.token(key, claims))

    # then
    assert result == REJECTED
    assert await _identities(database, org.id) == []
    assert await _reasons(database, org.id) == ["no_verified_email"]


@pytest.mark.parametrize("status", ["disabled", "invited"])
async def test_inactive_user_is_rejected_linked_or_not(
    idp_gql: GraphQL,
    org: Org,
    database: Database,
    idp: FakeIdp,
    key: SigningKey,
    trust: Trust,
    status: str,
) -> None:
    # given a member already linked to a subject
    await trust()
    member = org.members[1]
    claims = idp.claims(email=member.email)
    assert (await exchange(idp_gql, org.slug, idp.token(key, claims)))["errors"] == []

    # when the member is no longer active
    await set_status(database, org.id, member.id, status)
    linked = await exchange(idp_gql, org.slug, idp.token(key, claims))
    by_email = await exchange(idp_gql, org.slug, idp.token(key, idp.claims(email=member.email)))

    # then neither the link nor the email signs in
    assert linked == by_email == REJECTED
    assert await _reasons(database, org.id) == ["-", "user_inactive", "user_inactive"]


async def test_email_of_a_user_linked_to_another_subject_is_not_taken_over(
    idp_gql: GraphQL, org: Org, database: Database, idp: FakeIdp, key: SigningKey, trust: Trust
) -> None:
    # given a member linked to one subject
    await trust()
    member = org.members[1]
    first = idp.claims(email=member.email)
    assert (await exchange(idp_gql, org.slug, idp.token(key, first)))["errors"] == []

    # when another subject of the same provider claims the same verified email
    result = await exchange(idp_gql, org.slug, idp.token(key, idp.claims(email=member.email)))

    # then
    assert result == REJECTED
    assert await _identities(database, org.id) == [(member.id, first["sub"])]


async def test_a_token_trusted_by_tenant_a_does_not_sign_in_to_tenant_b(
    idp_gql: GraphQL,
    org: Org,
    other_org: Org,
    database: Database,
    idp: FakeIdp,
    key: SigningKey,
    trust: Trust,
) -> None:
    # given A trusts the provider (and would create users); B has a user with the email
    await trust(createUsers=True)
    claims = idp.claims(email=other_org.members[0].email)
    token = idp.token(key, claims)

    # when the token is presented to B
    result = await exchange(idp_gql, other_org.slug, token)

    # then B does not know the issuer; nothing happens in either tenant
    assert result == REJECTED
    assert await _sessions(database, other_org.id) == []
    assert await _identities(database, other_org.id) == []
    assert await _reasons(database, other_org.id) == ["unknown_issuer"]
    assert await audit(database, org.id, ACTION) == []

    # and the same token still works where it is trusted
    assert (await exchange(idp_gql, org.slug, token))["errors"] == []


async def test_disabled_provider_and_unknown_tenant_are_rejected_alike(
    idp_gql: GraphQL,
    org: Org,
    admin: str,
    database: Database,
    idp: FakeIdp,
    key: SigningKey,
    trust: Trust,
) -> None:
    # given
    provider = await trust(createUsers=True)
    token = idp.token(key)
    await idp_gql.data(
        "mutation ($input: UpdateIdentityProviderInput!) {"
        " updateIdentityProvider(input: $input) { errors { code } } }",
        {"input": {"id": provider["id"], "enabled": False}},
        token=admin,
    )

    # when
    disabled = await exchange(idp_gql, org.slug, token)
    unknown_tenant = await exchange(idp_gql, "no-such-tenant-here", token)

    # then
    assert disabled == unknown_tenant == REJECTED
    assert await _reasons(database, org.id) == ["unknown_issuer"]


THROTTLED = {"throttle_per_ip": 3, "throttle_per_account": 3, "throttle_per_tenant": 3}


async def test_repeated_failures_are_throttled_before_any_work(
    app_settings: Settings,
    database: Database,
    org: Org,
    admin: str,
    idp: FakeIdp,
    key: SigningKey,
) -> None:
    # given a server allowing a client 3 failures, and a provider the tenant trusts
    ip = from_ip(fresh_ip())
    async with throttled_server(app_settings, database, **THROTTLED) as gql:
        await add_provider(gql, admin, idp)
        forged = idp.token(new_key("RS256", kid=key.kid))
        for _ in range(3):
            assert await exchange(gql, org.slug, forged, ip) == REJECTED

        # when even a valid token comes next from that client
        result = await exchange(gql, org.slug, idp.token(key, idp.claims()), ip)

    # then it is refused without being looked at (no further audit entry)
    [error] = result["errors"]
    assert error["code"] == "TOO_MANY_ATTEMPTS"
    assert await _reasons(database, org.id) == ["signature"] * 3


async def test_garbage_tokens_spend_their_senders_budget_and_nobody_elses(
    app_settings: Settings,
    database: Database,
    org: Org,
    admin: str,
    idp: FakeIdp,
    key: SigningKey,
) -> None:
    # given anonymous clients sending undecodable and forged tokens until each is refused
    garbage = ["not a token", "a.b.c", idp.token(new_key("RS256", kid=key.kid))]
    async with throttled_server(app_settings, database, **THROTTLED) as gql:
        await add_provider(gql, admin, idp)
        sent = []
        for _ in range(4):
            ip = from_ip(fresh_ip())
            sent += [await exchange(gql, org.slug, token, ip) for token in garbage]
            sent.append(await exchange(gql, org.slug, garbage[0], ip))

        # when a user of the tenant signs in with a valid token from their own address
        claims = idp.claims(email=org.members[1].email)
        valid = await exchange(gql, org.slug, idp.token(key, claims), from_ip(fresh_ip()))

    # then the user got in, and each sender was held to its own limit
    assert valid["errors"] == []
    assert valid["accessToken"]
    assert [r["errors"][0]["code"] for r in sent] == (
        ["INVALID_CREDENTIALS"] * 3 + ["TOO_MANY_ATTEMPTS"]
    ) * 4


@pytest.mark.parametrize("store", STORES)
async def test_concurrent_forged_tokens_are_verified_at_most_the_limit(
    store: str,
    app_settings: Settings,
    database: Database,
    org: Org,
    admin: str,
    idp: FakeIdp,
    key: SigningKey,
) -> None:
    ip = from_ip(fresh_ip())
    async with throttled_server(app_settings, database, store=store, **THROTTLED) as gql:
        await add_provider(gql, admin, idp)
        forged = idp.token(new_key("RS256", kid=key.kid))

        results = await asyncio.gather(*(exchange(gql, org.slug, forged, ip) for _ in range(20)))

    # every verification leaves one audit entry: only 3 of the 20 tokens were looked at
    assert await _reasons(database, org.id) == ["signature"] * 3
    codes = sorted(r["errors"][0]["code"] for r in results)
    assert codes == ["INVALID_CREDENTIALS"] * 3 + ["TOO_MANY_ATTEMPTS"] * 17


async def test_an_external_sign_in_never_bypasses_tenantry_mfa(
    idp_gql: GraphQL, org: Org, database: Database, idp: FakeIdp, key: SigningKey, trust: Trust
) -> None:
    # given a tenant that requires MFA, and a member without a factor
    await trust()
    async with database.transaction(org.id) as session:
        await session.execute("UPDATE tenants SET mfa_required = true")
    claims = idp.claims(email=org.members[1].email)

    # when
    result = await exchange(idp_gql, org.slug, idp.token(key, claims))

    # then no tokens: the member must enrol first, exactly as after a password
    assert result["errors"] == []
    assert result["nextStep"] == "MFA_ENROLLMENT_REQUIRED"
    assert result["accessToken"] is None
    assert result["refreshToken"] is None
    assert await _sessions(database, org.id) == []
