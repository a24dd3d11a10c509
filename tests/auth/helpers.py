"""Sign-in helpers shared by the authentication tests."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import httpx
import pytest

from app.core.db import Database
from app.core.settings import Settings
from tests.app_fixtures import GraphQL, start_server, stop_server

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


# -- Servers with small throttling limits, and clients told apart by address -------------------

STORES = ["redis", "memory"]


def store_url(kind: str, app_settings: Settings) -> str | None:
    """The store a throttled server uses: the CI's Redis, or process memory."""
    if kind == "memory":
        return None
    if app_settings.redis_url is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but REDIS_URL is not set: the Redis tests must run in CI")
        pytest.skip("REDIS_URL is not set (CI sets it; see README)")
    return app_settings.redis_url


@asynccontextmanager
async def throttled_server(
    app_settings: Settings, database: Database, *, store: str = "redis", **limits: int
) -> AsyncIterator[GraphQL]:
    """A server of its own with these `AuthSettings` (the shared one allows many failures per
    address: every test signs in from 127.0.0.1), on Redis or in memory."""
    settings = replace(
        app_settings,
        redis_url=store_url(store, app_settings),
        auth=replace(app_settings.auth, **limits),
    )
    server, url = await start_server(settings, database)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            yield GraphQL(client)
    finally:
        await stop_server(server)


def fresh_ip() -> str:
    """An IPv4 address no other test uses (counts outlive a run in Redis, so runs too)."""
    return "10." + ".".join(str(secrets.randbelow(256)) for _ in range(3))


def fresh_ipv6_prefix() -> str:
    """The first four groups of an IPv6 /64 no other test uses: append the last four."""
    return f"2001:db8:{secrets.randbelow(65536):x}:{secrets.randbelow(65536):x}:"


def from_ip(ip: str) -> dict[str, str]:
    """Headers that make the request come from `ip` (the test servers believe
    X-Forwarded-For from 127.0.0.1, as uvicorn does by default)."""
    return {"x-forwarded-for": ip}
