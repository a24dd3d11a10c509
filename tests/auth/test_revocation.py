"""A revoked session's access tokens are refused after a server restart and by every server
process, with or without Redis: PostgreSQL holds the truth, the store only caches it.

Without Redis the revocations lived only in one process's memory: a restarted server (or a
second one) took the tokens of signed-out sessions, reused refresh families and MFA
re-enrolments again, and one of them created a task.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID

import httpx
import pytest

from app.api.relay import decode_global_id, encode_global_id
from app.auth.types import SESSION_TYPE
from app.core.db import Database
from app.core.security import TokenService
from app.core.settings import Settings
from app.core.store import Store, tenant_key
from tests.accounts.support import CHANGE_PASSWORD
from tests.app_fixtures import (
    GRAPHQL_RESPONSE,
    PASSWORD,
    GraphQL,
    Org,
    new_org,
    start_server,
    stop_server,
)
from tests.auth.helpers import REFRESH, REVOKE, SESSIONS, SIGN_IN, SIGN_OUT, SIGN_OUT_EVERYWHERE
from tests.factories import mint_access_token, session_of, set_role
from tests.mfa.helpers import enrol
from tests.platform.support import new_admin
from tests.platform.support import sign_in as platform_sign_in

VIEWER = "{ viewer { email } }"
CREATE_TASK = """
mutation ($input: CreateTaskInput!) { createTask(input: $input) { task { id } errors { code } } }
"""
CREATE_PROJECT = 'mutation { createProject(input: {name: "P"}) { project { id } errors { code } } }'
DISABLE = "mutation ($id: ID!) { disableUser(id: $id) { user { status } errors { code } } }"
SUSPEND = """
mutation ($input: SuspendTenantInput!) { suspendTenant(input: $input) { errors { code } } }
"""
REACTIVATE = """
mutation ($input: ReactivateTenantInput!) { reactivateTenant(input: $input) { errors { code } } }
"""


def redis_url() -> str:
    url = os.environ.get("REDIS_URL")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but REDIS_URL is not set: the Redis tests must run in CI")
        pytest.skip("REDIS_URL is not set (CI sets it; see README)")
    return url


@asynccontextmanager
async def server(settings: Settings, database: Database) -> AsyncIterator[GraphQL]:
    """A server of its own (with its own store: process memory unless `redis_url`)."""
    running, url = await start_server(settings, database)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            yield GraphQL(http)
    finally:
        await stop_server(running)


@pytest.fixture
def memory_settings(app_settings: Settings) -> Settings:
    """No Redis; a refresh token presented twice is reuse at once (no grace window)."""
    auth = replace(app_settings.auth, refresh_reuse_grace_seconds=0)
    return replace(app_settings, redis_url=None, auth=auth)


@dataclass
class Person:
    email: str
    user_id: str


async def signed_in(gql: GraphQL, org: Org, member: int) -> dict[str, Any]:
    variables = {
        "input": {"tenant": org.slug, "email": org.members[member].email, "password": PASSWORD}
    }
    result: dict[str, Any] = (await gql.data(SIGN_IN, variables))["signIn"]
    assert result["errors"] == [], result
    return result


def sid(signed: dict[str, Any]) -> UUID:
    """The session a sign-in's access token belongs to."""
    return session_of(signed["accessToken"])


async def status(gql: GraphQL, token: str) -> int:
    """The status of a read with `token`, in GraphQL over HTTP's media type (401: refused)."""
    return (await gql.post(VIEWER, token=token, headers=GRAPHQL_RESPONSE)).status_code


Revocation = Callable[[GraphQL, Org], Awaitable[list[str]]]


async def _signed_out(gql: GraphQL, org: Org) -> list[str]:
    session = await signed_in(gql, org, 0)
    assert (await gql.data(SIGN_OUT, token=session["accessToken"]))["signOut"]["errors"] == []
    return [session["accessToken"]]


async def _signed_out_everywhere(gql: GraphQL, org: Org) -> list[str]:
    first, second = await signed_in(gql, org, 0), await signed_in(gql, org, 0)
    ended = await gql.data(SIGN_OUT_EVERYWHERE, token=first["accessToken"])
    assert ended["signOutEverywhere"]["errors"] == []
    return [first["accessToken"], second["accessToken"]]


async def _session_revoked(gql: GraphQL, org: Org) -> list[str]:
    keeper, ended = await signed_in(gql, org, 0), await signed_in(gql, org, 0)
    listed = (await gql.data(SESSIONS, token=keeper["accessToken"]))["viewer"]["sessions"]
    [other] = [s for s in listed if decode_global_id(s["id"]) == (SESSION_TYPE, sid(ended))]
    result = await gql.data(REVOKE, {"id": other["id"]}, token=keeper["accessToken"])
    assert result["revokeSession"]["errors"] == []
    return [ended["accessToken"]]


async def _refresh_token_reused(gql: GraphQL, org: Org) -> list[str]:
    first = await signed_in(gql, org, 0)
    rotated = (await gql.data(REFRESH, {"token": first["refreshToken"]}))["refreshToken"]
    assert rotated["errors"] == []
    reused = (await gql.data(REFRESH, {"token": first["refreshToken"]}))["refreshToken"]
    assert [e["code"] for e in reused["errors"]] == ["INVALID_REFRESH_TOKEN"]
    return [first["accessToken"], rotated["accessToken"]]


async def _mfa_enrolled(gql: GraphQL, org: Org) -> list[str]:
    before = await signed_in(gql, org, 1)
    other = await signed_in(gql, org, 1)
    await enrol(gql, before["accessToken"])
    return [before["accessToken"], other["accessToken"]]


async def _password_changed(gql: GraphQL, org: Org) -> list[str]:
    session = await signed_in(gql, org, 2)
    variables = {"input": {"currentPassword": PASSWORD, "newPassword": "a new long passphrase"}}
    changed = await gql.data(CHANGE_PASSWORD, variables, token=session["accessToken"])
    assert changed["changePassword"]["errors"] == []
    return [session["accessToken"]]


async def _user_disabled(gql: GraphQL, org: Org) -> list[str]:
    session = await signed_in(gql, org, 3)
    admin = await signed_in(gql, org, 4)
    user = encode_global_id("User", org.members[3].id)
    disabled = await gql.data(DISABLE, {"id": user}, token=admin["accessToken"])
    assert disabled["disableUser"]["errors"] == []
    return [session["accessToken"]]


KINDS: dict[str, Revocation] = {
    "signed-out": _signed_out,
    "signed-out-everywhere": _signed_out_everywhere,
    "session-revoked": _session_revoked,
    "refresh-token-reused": _refresh_token_reused,
    "mfa-enrolled": _mfa_enrolled,
    "password-changed": _password_changed,
    "user-disabled": _user_disabled,
}


async def revoke_every_kind(gql: GraphQL, org: Org) -> dict[str, list[str]]:
    """Each kind of revocation through `gql`'s server: the access tokens it must kill."""
    return {kind: await revoke(gql, org) for kind, revoke in KINDS.items()}


async def assert_refused(gql: GraphQL, revoked: dict[str, list[str]], project: str) -> None:
    for kind, tokens in revoked.items():
        for token in tokens:
            assert await status(gql, token) == 401, kind
            task = {"input": {"projectId": project, "title": f"after {kind}"}}
            created = await gql.post(CREATE_TASK, task, token=token, headers=GRAPHQL_RESPONSE)
            assert created.status_code == 401, kind


async def tasks_of(database: Database, org: Org) -> int:
    async with database.transaction(org.id, readonly=True) as session:
        count: int = await session.fetchval("SELECT count(*) FROM tasks")
    return count


@pytest.fixture
async def team(database: Database, tokens: TokenService) -> Org:
    """Members 0-3 have their sessions revoked one way or another; 4 is the admin who
    disables 3; 5 stays signed in throughout (the control)."""
    return await new_org(database, tokens, members=6, password=PASSWORD, role="member")


async def test_every_revocation_survives_a_restart_without_redis(
    database: Database, memory_settings: Settings, team: Org
) -> None:
    # given every kind of revocation, made through a server without Redis
    await set_role(database, team.id, team.members[4].id, "admin")
    async with server(memory_settings, database) as first:
        control = await signed_in(first, team, 5)
        project = (await first.data(CREATE_PROJECT, token=control["accessToken"]))["createProject"][
            "project"
        ]["id"]
        revoked = await revoke_every_kind(first, team)
        await assert_refused(first, revoked, project)

    # when the server restarts on the same database, its memory empty
    async with server(memory_settings, database) as restarted:
        # then every revoked session's tokens are still refused, and nothing is created
        await assert_refused(restarted, revoked, project)
        assert await status(restarted, control["accessToken"]) == 200
    assert await tasks_of(database, team) == 0


async def test_two_servers_without_redis_refuse_each_others_revocations(
    database: Database, memory_settings: Settings, team: Org
) -> None:
    async with server(memory_settings, database) as a, server(memory_settings, database) as b:
        # given sessions signed in on A and used on B
        on_a = await signed_in(a, team, 0)
        on_b = await signed_in(b, team, 1)
        for gql in (a, b):
            assert await status(gql, on_a["accessToken"]) == 200
            assert await status(gql, on_b["accessToken"]) == 200

        # when A signs out its session and B its own
        await a.data(SIGN_OUT, token=on_a["accessToken"])
        await b.data(SIGN_OUT, token=on_b["accessToken"])

        # then both servers refuse both at once
        for gql in (a, b):
            assert await status(gql, on_a["accessToken"]) == 401
            assert await status(gql, on_b["accessToken"]) == 401


async def test_with_redis_every_server_refuses_at_once_and_a_lost_mark_changes_nothing(
    database: Database, memory_settings: Settings, team: Org
) -> None:
    settings = replace(memory_settings, redis_url=redis_url())
    store = Store.from_url(settings.redis_url)
    try:
        async with server(settings, database) as a, server(settings, database) as b:
            # given a session B has vouched for (cached as live in Redis)
            session = await signed_in(a, team, 0)
            assert await status(b, session["accessToken"]) == 200
            key = tenant_key(team.id, "session", str(sid(session)))
            assert await store.get(key) == "live"

            # when A signs it out
            await a.data(SIGN_OUT, token=session["accessToken"])

            # then B refuses it from its next request
            assert await store.get(key) == "revoked"
            assert await status(b, session["accessToken"]) == 401
            # and with the mark gone (Redis restarted, or the key evicted) the database says so
            await store.delete(key)
            assert await status(b, session["accessToken"]) == 401
            assert await store.get(key) == "revoked"
    finally:
        await store.close()


async def test_a_suspension_ends_sessions_for_good_across_a_restart(
    database: Database, memory_settings: Settings, app_settings: Settings, team: Org
) -> None:
    admin = await new_admin(database, app_settings, permissions=["tenant:suspend"])
    tenant = {"input": {"id": encode_global_id("Tenant", team.id), "reason": "unpaid"}}
    async with server(memory_settings, database) as first:
        # given a session of a tenant that is suspended and reactivated
        session = await signed_in(first, team, 0)
        operator = await platform_sign_in(first, admin)
        assert (await first.data(SUSPEND, tenant, token=operator))["suspendTenant"]["errors"] == []
        assert (await first.data(REACTIVATE, tenant, token=operator))["reactivateTenant"][
            "errors"
        ] == []
        assert await status(first, session["accessToken"]) == 401

    # when the server restarts, then the suspension's revocation still holds
    async with server(memory_settings, database) as restarted:
        assert await status(restarted, session["accessToken"]) == 401
        assert await status(restarted, (await signed_in(restarted, team, 1))["accessToken"]) == 200


async def test_a_token_of_a_session_the_database_does_not_know_is_refused(
    gql: GraphQL, team: Org, tokens: TokenService
) -> None:
    # A validly signed token naming no session (a database restored from before it, a
    # purged user): there is nothing to vouch for it.
    token = mint_access_token(tokens, user_id=team.members[0].id, tenant_id=team.id)

    assert await status(gql, token) == 401
