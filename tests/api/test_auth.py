"""signIn: tokens for valid credentials; one indistinguishable error for everything else."""

from __future__ import annotations

from typing import Any

import pytest

from app.core.db import Database
from app.core.security import TokenService
from tests.app_fixtures import PASSWORD, GraphQL, Org, new_org, without_cost

SIGN_IN = """
mutation SignIn($input: SignInInput!) {
  signIn(input: $input) { accessToken tokenType expiresAt errors { code message field } }
}
"""
VIEWER = "{ viewer { id email } tenant { slug } }"


async def sign_in(gql: GraphQL, tenant: str, email: str, password: str) -> dict[str, Any]:
    data = await gql.data(
        SIGN_IN, {"input": {"tenant": tenant, "email": email, "password": password}}
    )
    result: dict[str, Any] = data["signIn"]
    return result


@pytest.fixture
async def org_with_password(database: Database, tokens: TokenService) -> Org:
    return await new_org(database, tokens, members=1, password=PASSWORD)


async def test_sign_in_returns_a_token_that_identifies_the_user(
    gql: GraphQL, org_with_password: Org
) -> None:
    member = org_with_password.members[0]

    result = await sign_in(gql, org_with_password.slug, member.email.upper(), PASSWORD)

    assert result["errors"] == []
    assert result["tokenType"] == "Bearer"
    assert result["expiresAt"]
    data = await gql.data(VIEWER, token=result["accessToken"])
    assert data["viewer"]["email"] == member.email
    assert data["tenant"]["slug"] == org_with_password.slug


async def test_every_failure_is_the_same_error(
    gql: GraphQL, org_with_password: Org, other_org: Org, database: Database
) -> None:
    member = org_with_password.members[0]
    async with database.transaction(org_with_password.id) as session:
        disabled = await session.fetchval(
            "INSERT INTO users (tenant_id, email, display_name, password_hash) "
            "SELECT tenant_id, 'disabled@x.example', 'D', password_hash FROM users "
            "WHERE id = $1 RETURNING email",
            member.id,
        )
        await session.execute("UPDATE users SET status = 'disabled' WHERE email = $1", disabled)
    attempts = [
        (org_with_password.slug, member.email, "wrong password!"),
        (org_with_password.slug, "nobody@x.example", PASSWORD),
        ("no-such-tenant", member.email, PASSWORD),
        ("NOT A SLUG", member.email, PASSWORD),
        # The right email and password, but in the wrong tenant.
        (other_org.slug, member.email, PASSWORD),
        (org_with_password.slug, disabled, PASSWORD),
        # Users without a password (created by invitation) never sign in with one.
        (other_org.slug, other_org.members[0].email, ""),
        (org_with_password.slug, member.email, "x" * 5000),
    ]

    results = [await sign_in(gql, *attempt) for attempt in attempts]

    expected = {
        "accessToken": None,
        "tokenType": "Bearer",
        "expiresAt": None,
        "errors": [
            {
                "code": "INVALID_CREDENTIALS",
                "message": "Invalid organisation, email or password",
                "field": None,
            }
        ],
    }
    assert results == [expected] * len(attempts)


async def test_a_deleted_tenant_signs_in_like_an_unknown_one(
    gql: GraphQL, org_with_password: Org, database: Database
) -> None:
    # (A suspended one tells the holder of the right credentials: tests/auth/test_sign_in.py.)
    async with database.transaction(org_with_password.id) as session:
        await session.execute("UPDATE tenants SET status = 'deleted', deleted_at = now()")
    member = org_with_password.members[0]

    result = await sign_in(gql, org_with_password.slug, member.email, PASSWORD)

    assert result["accessToken"] is None
    assert result["errors"][0]["code"] == "INVALID_CREDENTIALS"


async def test_anonymous_caller_sees_no_viewer_and_cannot_list(gql: GraphQL) -> None:
    # Neither runs: one request error, no data, whatever the root fields.
    for document in ("{ viewer { id } }", "{ projects { totalCount } }"):
        body = await gql(document)

        assert without_cost(body) == {
            "errors": [{"message": "Sign in required", "extensions": {"code": "UNAUTHENTICATED"}}]
        }
