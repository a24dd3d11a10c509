"""inviteUser and acceptInvitation: admins invite by email; the link sets a password once."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.accounts.models import TokenPurpose
from app.core.db import Database
from app.core.security import TokenService, new_opaque_token, token_digest
from tests.accounts.support import (
    ACCEPT,
    INVITE,
    VIEWER,
    Argon2Work,
    account_tokens,
    audit,
    call,
    insert_token,
    invalid_token_error,
    link_token,
    outbox,
    set_role,
    sign_in,
    user_row,
)
from tests.app_fixtures import GraphQL, Org, new_org

NEW_PASSWORD = "a brand new passphrase ☕"
PASSWORD_2 = "another fine passphrase"


@pytest.fixture
async def admin_org(database: Database, tokens: TokenService) -> Org:
    """Member 0 is an owner, member 1 a plain member."""
    org = await new_org(database, tokens, members=2, role="member")
    await set_role(database, org.id, org.members[0].id, "owner")
    return org


async def invite(gql: GraphQL, org: Org, token: str | None = None, **input: Any) -> Any:
    return await call(gql, INVITE, "inviteUser", token=token or org.token, input=input)


async def accept(gql: GraphQL, token: str, password: str = NEW_PASSWORD, **more: Any) -> Any:
    return await call(
        gql, ACCEPT, "acceptInvitation", input={"token": token, "password": password, **more}
    )


async def invitation_token(database: Database, org: Org, email: str) -> str:
    mails = [m for m in await outbox(database, org.id) if m["recipient"] == email]
    return link_token(mails[-1]["body"], "accept-invitation")


async def test_an_owner_invites_and_the_invitee_accepts_and_is_signed_in(
    gql: GraphQL, admin_org: Org, database: Database
) -> None:
    owner = admin_org.members[0]

    invited = await invite(gql, admin_org, email="Ada@Example.com", role="ADMIN")

    assert invited["errors"] == []
    assert invited["user"]["email"] == "Ada@Example.com"
    assert invited["user"]["status"] == "INVITED"
    assert invited["user"]["displayName"] == "Ada"
    row = await user_row(database, admin_org.id, "ada@example.com")
    assert row is not None
    assert (row["status"], row["role"], row["password_hash"]) == ("invited", "admin", None)
    [mail] = await outbox(database, admin_org.id)
    assert mail["kind"] == "invitation"
    assert mail["recipient"] == "Ada@Example.com"
    assert mail["subject"] == f"You are invited to Org {admin_org.slug}"
    token = link_token(mail["body"], "accept-invitation")
    assert token.startswith(f"inv.{admin_org.id.hex}.")
    [stored] = await account_tokens(database, admin_org.id, row["id"])
    # Only the digest is stored, never the token itself.
    assert stored["purpose"] == "invitation"
    assert stored["token_hash"] == token_digest(token)
    assert stored["created_by"] == owner.id
    assert stored["used_at"] is None
    assert stored["expires_at"] - stored["created_at"] == timedelta(days=7)
    assert await audit(database, admin_org.id, "invitation.") == [
        {
            "action": "invitation.sent",
            "outcome": "success",
            "actor_kind": "user",
            "actor_id": owner.id,
            "target_type": "user",
            "target_id": str(row["id"]),
            "metadata": {"role": "admin", "reinvited": False},
        }
    ]

    accepted = await accept(gql, token, displayName="Ada Lovelace")

    assert accepted["errors"] == []
    assert accepted["nextStep"] == "DONE"
    assert accepted["refreshToken"]
    viewer = await gql.data(VIEWER, token=accepted["accessToken"])
    assert viewer["viewer"] == {
        "email": "Ada@Example.com",
        "displayName": "Ada Lovelace",
        "status": "ACTIVE",
    }
    row = await user_row(database, admin_org.id, "ada@example.com")
    assert row is not None
    assert row["status"] == "active"
    assert row["email_verified_at"] is not None
    assert row["password_changed_at"] is not None
    [stored] = await account_tokens(database, admin_org.id, row["id"])
    assert stored["used_at"] is not None
    entries = await audit(database, admin_org.id, "invitation.accepted")
    assert [(e["actor_id"], e["target_id"], e["outcome"]) for e in entries] == [
        (row["id"], str(row["id"]), "success")
    ]
    signed_in = await sign_in(gql, admin_org.slug, "ada@example.com", NEW_PASSWORD)
    assert signed_in["errors"] == []
    assert signed_in["accessToken"]


async def test_members_cannot_invite(gql: GraphQL, admin_org: Org, database: Database) -> None:
    member = admin_org.members[1]

    body = await gql(
        INVITE,
        {"input": {"email": "eve@example.com", "role": "MEMBER"}},
        token=member.token,
    )

    # Refused by the field's @requiresPermission before the resolver ran.
    assert body["data"] is None
    [error] = body["errors"]
    assert (error["message"], error["extensions"]) == (
        "This needs the user:invite permission",
        {"code": "FORBIDDEN"},
    )
    assert await user_row(database, admin_org.id, "eve@example.com") is None
    assert await outbox(database, admin_org.id) == []
    assert await audit(database, admin_org.id, "invitation.") == []


async def test_only_owners_invite_owners(gql: GraphQL, admin_org: Org, database: Database) -> None:
    admin = admin_org.members[1]
    await set_role(database, admin_org.id, admin.id, "admin")

    as_owner = await invite(gql, admin_org, token=admin.token, email="o@example.com", role="OWNER")
    as_member = await invite(gql, admin_org, token=admin.token, email="m@example.com")

    assert as_owner["errors"][0]["code"] == "FORBIDDEN"
    assert as_owner["errors"][0]["field"] == "role"
    assert as_member["errors"] == []
    assert [m["recipient"] for m in await outbox(database, admin_org.id)] == ["m@example.com"]


async def test_signing_in_is_required(gql: GraphQL) -> None:
    body = await gql(INVITE, {"input": {"email": "x@example.com"}})

    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize(
    ("input", "field"),
    [({"email": "not an email"}, "email"), ({"email": "a@b.c", "displayName": " "}, "displayName")],
)
async def test_bad_input(
    gql: GraphQL, admin_org: Org, database: Database, input: dict[str, str], field: str
) -> None:
    result = await invite(gql, admin_org, **input)

    assert result["user"] is None
    assert [(e["code"], e["field"]) for e in result["errors"]] == [("INVALID", field)]
    assert await outbox(database, admin_org.id) == []


async def test_inviting_an_existing_member_is_a_conflict(
    gql: GraphQL, admin_org: Org, database: Database
) -> None:
    member = admin_org.members[1]

    result = await invite(gql, admin_org, email=member.email.upper())

    assert result["user"] is None
    assert [(e["code"], e["field"]) for e in result["errors"]] == [("CONFLICT", "email")]
    assert await outbox(database, admin_org.id) == []
    assert await audit(database, admin_org.id, "invitation.") == []


async def test_reinviting_replaces_the_pending_invitation(
    gql: GraphQL, admin_org: Org, database: Database
) -> None:
    await invite(gql, admin_org, email="bob@example.com", role="VIEWER")
    first = await invitation_token(database, admin_org, "bob@example.com")

    again = await invite(gql, admin_org, email="BOB@example.com", role="MEMBER", displayName="Bob")
    second = await invitation_token(database, admin_org, "bob@example.com")

    assert again["errors"] == []
    assert again["user"]["displayName"] == "Bob"
    assert first != second
    row = await user_row(database, admin_org.id, "bob@example.com")
    assert row is not None
    assert row["role"] == "member"
    assert [t["token_hash"] for t in await account_tokens(database, admin_org.id, row["id"])] == [
        token_digest(second)
    ]
    assert (await accept(gql, first))["errors"] == [invalid_token_error()]
    assert (await accept(gql, second))["errors"] == []
    sent = await audit(database, admin_org.id, "invitation.sent")
    assert [e["metadata"]["reinvited"] for e in sent] == [False, True]


async def test_a_weak_password_is_refused_and_the_link_still_works(
    gql: GraphQL, admin_org: Org, database: Database
) -> None:
    await invite(gql, admin_org, email="carol@example.com")
    token = await invitation_token(database, admin_org, "carol@example.com")

    weak = await accept(gql, token, password="password1")
    short = await accept(gql, token, password="short")

    assert [(e["code"], e["field"]) for e in weak["errors"]] == [("INVALID", "password")]
    assert [(e["code"], e["field"]) for e in short["errors"]] == [("INVALID", "password")]
    assert weak["accessToken"] is None
    assert (await accept(gql, token))["errors"] == []


async def test_every_bad_token_gives_the_same_answer_after_the_same_work(
    gql: GraphQL, admin_org: Org, other_org: Org, database: Database
) -> None:
    await invite(gql, admin_org, email="dan@example.com")
    used = await invitation_token(database, admin_org, "dan@example.com")
    assert (await accept(gql, used))["errors"] == []
    await invite(gql, admin_org, email="erin@example.com")
    pending = await user_row(database, admin_org.id, "erin@example.com")
    assert pending is not None
    yesterday = datetime.now(UTC) - timedelta(days=1)
    expired = await insert_token(
        database, admin_org.id, TokenPurpose.INVITATION, pending["id"], expires_at=yesterday
    )
    reset_token = await insert_token(
        database,
        admin_org.id,
        TokenPurpose.PASSWORD_RESET,
        pending["id"],
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )
    valid = await invitation_token(database, admin_org, "erin@example.com")
    bad_tokens = [
        used,
        expired,
        reset_token,
        # The pending invitation's secret with another tenant named in it.
        valid.replace(admin_org.id.hex, other_org.id.hex),
        new_opaque_token("inv", admin_org.id).token,
        "inv." + secrets.token_hex(16) + "." + secrets.token_urlsafe(32),
        "garbage",
        "",
    ]

    results = []
    for token in bad_tokens:
        with Argon2Work() as work:
            results.append(await accept(gql, token))
        assert work.count == 1, token

    expected = {
        "nextStep": None,
        "accessToken": None,
        "refreshToken": None,
        "errors": [invalid_token_error()],
    }
    assert results == [expected] * len(bad_tokens)
    with Argon2Work() as work:
        good = await accept(gql, valid)
    assert good["errors"] == []
    assert work.count == 1
    assert len(await audit(database, admin_org.id, "invitation.accepted")) == 2


async def test_an_invited_user_cannot_sign_in_before_accepting(
    gql: GraphQL, admin_org: Org
) -> None:
    await invite(gql, admin_org, email="fay@example.com")

    result = await sign_in(gql, admin_org.slug, "fay@example.com", "")

    assert result["accessToken"] is None
    assert result["errors"][0]["code"] == "INVALID_CREDENTIALS"


async def test_in_a_tenant_that_requires_mfa_acceptance_leads_to_enrolment(
    gql: GraphQL, admin_org: Org, database: Database
) -> None:
    async with database.transaction(admin_org.id) as session:
        await session.execute("UPDATE tenants SET mfa_required = true WHERE id = $1", admin_org.id)
    await invite(gql, admin_org, email="gus@example.com")
    token = await invitation_token(database, admin_org, "gus@example.com")

    data = await gql.data(
        "mutation A($input: AcceptInvitationInput!) {"
        " acceptInvitation(input: $input) { nextStep accessToken challenge errors { code } } }",
        {"input": {"token": token, "password": NEW_PASSWORD}},
    )

    result = data["acceptInvitation"]
    assert result["errors"] == []
    assert result["nextStep"] == "MFA_ENROLLMENT_REQUIRED"
    assert result["accessToken"] is None
    assert result["challenge"]
    row = await user_row(database, admin_org.id, "gus@example.com")
    assert row is not None
    assert row["status"] == "active"


async def test_two_concurrent_acceptances_of_one_link_succeed_once(
    gql: GraphQL, admin_org: Org, database: Database
) -> None:
    await invite(gql, admin_org, email="hal@example.com")
    token = await invitation_token(database, admin_org, "hal@example.com")

    results = await asyncio.gather(accept(gql, token), accept(gql, token, password=PASSWORD_2))

    assert sorted(bool(r["accessToken"]) for r in results) == [False, True]
    failed = next(r for r in results if not r["accessToken"])
    assert failed["errors"] == [invalid_token_error()]
    assert len(await audit(database, admin_org.id, "invitation.accepted")) == 1
