"""Failed sign-ins are throttled per account, per IP and per tenant."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest

from app.core.db import Database
from app.core.security import TokenService
from app.core.settings import Settings
from tests.app_fixtures import PASSWORD, GraphQL, Org, new_org, start_server, stop_server
from tests.auth.helpers import ERRORS, sign_in

LIMITS = {"throttle_per_account": 3, "throttle_per_ip": 5, "throttle_per_tenant": 7}


@pytest.fixture
async def strict(app_settings: Settings, database: Database) -> AsyncIterator[GraphQL]:
    """A server of its own with small limits (the shared one allows many per IP)."""
    settings = replace(app_settings, auth=replace(app_settings.auth, **LIMITS))
    server, url = await start_server(settings, database)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield GraphQL(client)
    finally:
        await stop_server(server)


@pytest.fixture
async def team(database: Database, tokens: TokenService) -> Org:
    return await new_org(database, tokens, members=2, password=PASSWORD)


def _ip() -> dict[str, str]:
    # uvicorn trusts X-Forwarded-For from 127.0.0.1: each test acts from fresh addresses.
    octets = ".".join(str(secrets.randbelow(250)) for _ in range(3))
    return {"x-forwarded-for": f"10.{octets}"}


def _codes(result: dict[str, object]) -> list[object]:
    return [e["code"] for e in result["errors"]]  # type: ignore[attr-defined, index]


async def test_an_account_is_throttled_after_its_limit_even_with_the_right_password(
    strict: GraphQL, team: Org
) -> None:
    member = team.members[0]
    for _ in range(LIMITS["throttle_per_account"]):
        result = await sign_in(strict, team.slug, member.email, "wrong password", _ip())
        assert _codes(result) == ["INVALID_CREDENTIALS"]

    blocked = await sign_in(strict, team.slug, member.email, PASSWORD, _ip())

    assert _codes(blocked) == ["TOO_MANY_ATTEMPTS"]
    assert blocked["accessToken"] is None
    assert 1 <= blocked["errors"][0]["retryAfterSeconds"] <= 900
    # Another account of the tenant is not affected.
    other = await sign_in(strict, team.slug, team.members[1].email, PASSWORD, _ip())
    assert other["errors"] == []


async def test_an_ip_is_throttled_across_accounts_and_tenants(
    strict: GraphQL, team: Org, other_org: Org
) -> None:
    ip = _ip()
    for i in range(LIMITS["throttle_per_ip"]):
        await sign_in(strict, team.slug, f"nobody{i}@x.example", "wrong password", ip)

    blocked = await sign_in(strict, other_org.slug, other_org.members[0].email, PASSWORD, ip)

    assert _codes(blocked) == ["TOO_MANY_ATTEMPTS"]
    elsewhere = await sign_in(strict, team.slug, team.members[0].email, PASSWORD, _ip())
    assert elsewhere["errors"] == []


async def test_a_tenant_is_throttled_across_accounts_and_ips(strict: GraphQL, team: Org) -> None:
    for i in range(LIMITS["throttle_per_tenant"]):
        await sign_in(strict, team.slug, f"guess{i}@x.example", "wrong password", _ip())

    blocked = await sign_in(strict, team.slug, team.members[0].email, PASSWORD, _ip())

    assert _codes(blocked) == ["TOO_MANY_ATTEMPTS"]


async def test_aliases_in_one_operation_each_count(strict: GraphQL, team: Org) -> None:
    member = team.members[0]
    fields = "\n".join(
        f'a{i}: signIn(input: {{tenant: "{team.slug}", email: "{member.email}",'
        f' password: "wrong {i}"}}) {{ accessToken {ERRORS} }}'
        for i in range(6)
    )
    response = await strict.http.post(
        "/graphql", json={"query": f"mutation {{ {fields} }}"}, headers=_ip()
    )

    data = response.json()["data"]
    codes = [data[f"a{i}"]["errors"][0]["code"] for i in range(6)]
    assert codes == ["INVALID_CREDENTIALS"] * 3 + ["TOO_MANY_ATTEMPTS"] * 3


async def test_unknown_tenants_and_accounts_are_throttled_alike(strict: GraphQL) -> None:
    slug = f"missing-{secrets.token_hex(4)}"
    results = [
        await sign_in(strict, slug, "who@x.example", "wrong password", _ip())
        for _ in range(LIMITS["throttle_per_account"] + 1)
    ]

    assert [_codes(r) for r in results] == [["INVALID_CREDENTIALS"]] * 3 + [["TOO_MANY_ATTEMPTS"]]
