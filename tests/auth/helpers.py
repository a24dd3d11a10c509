"""Sign-in helpers shared by the authentication tests."""

from __future__ import annotations

from typing import Any

from tests.app_fixtures import GraphQL

TOKENS = "nextStep accessToken refreshToken expiresAt refreshExpiresAt challenge"
ERRORS = "errors { code message field retryAfterSeconds }"

SIGN_IN = f"""
mutation SignIn($input: SignInInput!) {{ signIn(input: $input) {{ {TOKENS} {ERRORS} }} }}
"""
REFRESH = f"""
mutation Refresh($token: String!) {{ refreshToken(refreshToken: $token) {{ {TOKENS} {ERRORS} }} }}
"""
SIGN_OUT = "mutation { signOut { revokedSessions errors { code } } }"
SIGN_OUT_EVERYWHERE = "mutation { signOutEverywhere { revokedSessions errors { code } } }"
REVOKE = """
mutation Revoke($id: ID!) { revokeSession(id: $id) { revokedSessions errors { code field } } }
"""
SESSIONS = "{ viewer { sessions { id userAgent ip aal amr current createdAt lastUsedAt } } }"


async def sign_in(
    gql: GraphQL, tenant: str, email: str, password: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    variables = {"input": {"tenant": tenant, "email": email, "password": password}}
    response = await gql.http.post(
        "/graphql", json={"query": SIGN_IN, "variables": variables}, headers=headers or {}
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["data"]["signIn"]
    return result


async def refresh(gql: GraphQL, token: str) -> dict[str, Any]:
    result: dict[str, Any] = (await gql.data(REFRESH, {"token": token}))["refreshToken"]
    return result
