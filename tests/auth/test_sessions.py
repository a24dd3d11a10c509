"""Sessions: refresh rotation, reuse detection, sign-out and session management."""

from __future__ import annotations

import pytest

from app.core.db import Database
from app.core.security import MFA_CHALLENGE_TYPE, TokenService
from tests.app_fixtures import GRAPHQL_RESPONSE, PASSWORD, GraphQL, Org, new_org
from tests.auth.helpers import (
    REVOKE,
    SESSIONS,
    SIGN_OUT,
    SIGN_OUT_EVERYWHERE,
    refresh,
    sign_in,
)
from tests.factories import set_role

VIEWER = "{ viewer { email } }"


@pytest.fixture
async def team(database: Database, tokens: TokenService) -> Org:
    return await new_org(database, tokens, members=2, password=PASSWORD, role="member")


async def _only_signed_in_sessions(database: Database, org: Org) -> None:
    """End the sessions new_org opened for the members' tokens, so that every session a test
    counts is one it signed in itself."""
    async with database.transaction(org.id) as session:
        await session.execute("UPDATE auth_sessions SET revoked_at = statement_timestamp()")


async def _signed_in(gql: GraphQL, org: Org, member: int = 0) -> dict[str, str]:
    result = await sign_in(gql, org.slug, org.members[member].email, PASSWORD)
    assert result["errors"] == []
    assert result["nextStep"] == "DONE"
    return result


async def _status(gql: GraphQL, token: str) -> int:
    """The status of a read with `token`, in GraphQL over HTTP's media type (401: refused)."""
    return (await gql.post(VIEWER, token=token, headers=GRAPHQL_RESPONSE)).status_code


async def _audit_actions(database: Database, org: Org) -> list[str]:
    async with database.transaction(org.id, readonly=True) as s:
        rows = await s.fetch("SELECT action, outcome FROM audit_log ORDER BY occurred_at, id")
    return [f"{r['action']}:{r['outcome']}" for r in rows]


async def test_sign_in_opens_a_session_with_access_and_refresh_tokens(
    gql: GraphQL, team: Org, database: Database
) -> None:
    await _only_signed_in_sessions(database, team)
    tokens = await _signed_in(gql, team)

    assert tokens["refreshToken"].startswith(f"rt.{team.id.hex}.")
    assert tokens["refreshExpiresAt"]
    sessions = (await gql.data(SESSIONS, token=tokens["accessToken"]))["viewer"]["sessions"]
    assert len(sessions) == 1
    assert sessions[0]["current"] is True
    assert sessions[0]["aal"] == 1
    assert sessions[0]["amr"] == ["pwd"]
    assert sessions[0]["ip"] == "127.0.0.1"


async def test_refresh_rotates_and_the_new_tokens_work(gql: GraphQL, team: Org) -> None:
    first = await _signed_in(gql, team)

    second = await refresh(gql, first["refreshToken"])

    assert second["errors"] == []
    assert second["refreshToken"] != first["refreshToken"]
    assert second["accessToken"] != first["accessToken"]
    assert await _status(gql, second["accessToken"]) == 200
    third = await refresh(gql, second["refreshToken"])
    assert third["errors"] == []


async def test_a_retry_within_the_grace_window_rotates_once_more(
    gql: GraphQL, team: Org, database: Database
) -> None:
    # The client lost the response of its refresh and retries with the same token.
    first = await _signed_in(gql, team)
    second = await refresh(gql, first["refreshToken"])

    retried = await refresh(gql, first["refreshToken"])

    assert retried["errors"] == []
    # Only the newest token of the family lives on; the one the lost response carried is
    # now rotated too, so nothing forks.
    assert (await refresh(gql, retried["refreshToken"]))["errors"] == []
    assert "session.refresh_token_reused:denied" not in await _audit_actions(database, team)
    assert second["refreshToken"] != retried["refreshToken"]


async def test_reuse_after_the_grace_window_revokes_the_whole_family(
    gql: GraphQL, team: Org, database: Database
) -> None:
    first = await _signed_in(gql, team)
    second = await refresh(gql, first["refreshToken"])
    third = await refresh(gql, second["refreshToken"])
    # The grace window (10 s) has passed for the first token.
    async with database.transaction(team.id) as s:
        await s.execute("UPDATE refresh_tokens SET rotated_at = rotated_at - interval '1 minute'")

    stolen = await refresh(gql, first["refreshToken"])

    assert stolen["accessToken"] is None
    assert [e["code"] for e in stolen["errors"]] == ["INVALID_REFRESH_TOKEN"]
    # The legitimate holder's newest tokens are dead too: refresh and access alike.
    assert [e["code"] for e in (await refresh(gql, third["refreshToken"]))["errors"]] == [
        "INVALID_REFRESH_TOKEN"
    ]
    assert await _status(gql, third["accessToken"]) == 401
    actions = await _audit_actions(database, team)
    assert actions.count("session.refresh_token_reused:denied") == 1


@pytest.mark.parametrize(
    "token",
    [
        "",
        "rt",
        "rt.not-a-uuid.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "rt.00000000000000000000000000000000.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "x" * 10_000,
    ],
)
async def test_malformed_or_unknown_refresh_tokens_are_one_error(gql: GraphQL, token: str) -> None:
    result = await refresh(gql, token)

    assert result["accessToken"] is None
    assert [e["code"] for e in result["errors"]] == ["INVALID_REFRESH_TOKEN"]


async def test_a_refresh_token_names_its_tenant_but_works_only_there(
    gql: GraphQL, team: Org, other_org: Org
) -> None:
    tokens = await _signed_in(gql, team)
    forged = tokens["refreshToken"].replace(team.id.hex, other_org.id.hex)

    result = await refresh(gql, forged)

    assert [e["code"] for e in result["errors"]] == ["INVALID_REFRESH_TOKEN"]


async def test_refresh_and_challenge_tokens_are_not_access_tokens(
    gql: GraphQL, team: Org, tokens: TokenService
) -> None:
    signed_in = await _signed_in(gql, team)
    challenge = tokens.issue_challenge(
        MFA_CHALLENGE_TYPE, user_id=team.members[0].id, tenant_id=team.id, amr=("pwd",)
    ).token

    assert await _status(gql, signed_in["refreshToken"]) == 401
    assert await _status(gql, challenge) == 401


async def test_sign_out_ends_this_session_only(gql: GraphQL, team: Org, database: Database) -> None:
    laptop = await _signed_in(gql, team)
    phone = await _signed_in(gql, team)

    result = await gql.data(SIGN_OUT, token=laptop["accessToken"])

    assert result["signOut"] == {"revokedSessions": 1, "errors": []}
    # The access token dies at once, not at its expiry; so does the refresh token.
    assert await _status(gql, laptop["accessToken"]) == 401
    assert (await refresh(gql, laptop["refreshToken"]))["errors"][0]["code"] == (
        "INVALID_REFRESH_TOKEN"
    )
    assert await _status(gql, phone["accessToken"]) == 200
    assert (await refresh(gql, phone["refreshToken"]))["errors"] == []
    assert "session.revoked:success" in await _audit_actions(database, team)


async def test_sign_out_everywhere_ends_every_session_of_the_user(
    gql: GraphQL, team: Org, database: Database
) -> None:
    await _only_signed_in_sessions(database, team)
    sessions = [await _signed_in(gql, team) for _ in range(3)]
    colleague = await _signed_in(gql, team, member=1)

    result = await gql.data(SIGN_OUT_EVERYWHERE, token=sessions[0]["accessToken"])

    assert result["signOutEverywhere"] == {"revokedSessions": 3, "errors": []}
    for s in sessions:
        assert await _status(gql, s["accessToken"]) == 401
        assert (await refresh(gql, s["refreshToken"]))["errors"]
    assert await _status(gql, colleague["accessToken"]) == 200


async def test_viewer_lists_and_revokes_its_own_sessions(
    gql: GraphQL, team: Org, database: Database
) -> None:
    await _only_signed_in_sessions(database, team)
    current = await _signed_in(gql, team)
    other = await _signed_in(gql, team)
    listed = (await gql.data(SESSIONS, token=current["accessToken"]))["viewer"]["sessions"]
    assert len(listed) == 2
    to_end = next(s for s in listed if not s["current"])

    result = await gql.data(REVOKE, {"id": to_end["id"]}, token=current["accessToken"])

    assert result["revokeSession"] == {"revokedSessions": 1, "errors": []}
    assert await _status(gql, other["accessToken"]) == 401
    assert await _status(gql, current["accessToken"]) == 200
    listed = (await gql.data(SESSIONS, token=current["accessToken"]))["viewer"]["sessions"]
    assert [s["current"] for s in listed] == [True]


async def test_another_users_session_is_not_found_and_not_listed(gql: GraphQL, team: Org) -> None:
    mine = await _signed_in(gql, team, member=0)
    theirs = await _signed_in(gql, team, member=1)
    their_sessions = (await gql.data(SESSIONS, token=theirs["accessToken"]))["viewer"]["sessions"]
    users = await gql.data(
        "{ users { nodes { email sessions { id } } } }", token=mine["accessToken"]
    )

    result = await gql.data(REVOKE, {"id": their_sessions[0]["id"]}, token=mine["accessToken"])

    assert result["revokeSession"]["errors"] == [{"code": "NOT_FOUND", "field": "id"}]
    assert await _status(gql, theirs["accessToken"]) == 200
    # Other users' sessions are null, never listed.
    others = [u for u in users["users"]["nodes"] if u["email"] != team.members[0].email]
    assert others
    assert all(u["sessions"] is None for u in others)


async def test_a_disabled_user_cannot_refresh(gql: GraphQL, team: Org, database: Database) -> None:
    tokens = await _signed_in(gql, team)
    async with database.transaction(team.id) as s:
        await s.execute("UPDATE users SET status = 'disabled' WHERE id = $1", team.members[0].id)

    assert (await refresh(gql, tokens["refreshToken"]))["errors"][0]["code"] == (
        "INVALID_REFRESH_TOKEN"
    )


DISABLE = """
mutation Disable($id: ID!) { disableUser(id: $id) { user { status } errors { code field } } }
"""
ENABLE = """
mutation Enable($id: ID!) { enableUser(id: $id) { user { status } errors { code field } } }
"""


async def _user_id(gql: GraphQL, token: str) -> str:
    return str((await gql.data("{ viewer { id } }", token=token))["viewer"]["id"])


async def test_disabling_a_user_ends_all_their_sessions_at_once(
    gql: GraphQL, team: Org, database: Database
) -> None:
    await set_role(database, team.id, team.members[0].id, "admin")
    admin = await _signed_in(gql, team, member=0)
    victim = [await _signed_in(gql, team, member=1) for _ in range(2)]
    victim_id = await _user_id(gql, victim[0]["accessToken"])

    result = await gql.data(DISABLE, {"id": victim_id}, token=admin["accessToken"])

    assert result["disableUser"] == {"user": {"status": "DISABLED"}, "errors": []}
    for s in victim:
        assert await _status(gql, s["accessToken"]) == 401
        assert (await refresh(gql, s["refreshToken"]))["errors"]
    retry = await sign_in(gql, team.slug, team.members[1].email, PASSWORD)
    assert [e["code"] for e in retry["errors"]] == ["INVALID_CREDENTIALS"]
    actions = await _audit_actions(database, team)
    assert actions.count("user.disabled:success") == 1
    assert actions.count("session.revoked_all:success") == 1
    enabled = await gql.data(ENABLE, {"id": victim_id}, token=admin["accessToken"])
    assert enabled["enableUser"] == {"user": {"status": "ACTIVE"}, "errors": []}
    assert (await sign_in(gql, team.slug, team.members[1].email, PASSWORD))["errors"] == []


async def test_only_admins_disable_users_and_never_themselves(
    gql: GraphQL, team: Org, other_org: Org, database: Database
) -> None:
    await set_role(database, team.id, team.members[0].id, "admin")
    admin, member = team.members[0], team.members[1]
    admin_id = await _user_id(gql, admin.token)
    stranger_id = await _user_id(gql, other_org.members[0].token)

    by_member = await gql(DISABLE, {"id": admin_id}, token=member.token)
    by_self = await gql.data(DISABLE, {"id": admin_id}, token=admin.token)
    stranger = await gql.data(DISABLE, {"id": stranger_id}, token=admin.token)

    assert by_member["data"] is None
    assert [e["extensions"]["code"] for e in by_member["errors"]] == ["FORBIDDEN"]
    assert by_self["disableUser"]["errors"] == [{"code": "INVALID", "field": "id"}]
    assert stranger["disableUser"]["errors"] == [{"code": "NOT_FOUND", "field": "id"}]
    assert await _status(gql, member.token) == 200
