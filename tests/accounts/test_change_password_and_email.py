"""changePassword, changeEmail and verifyEmail for the signed-in user."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.accounts.models import TokenPurpose
from app.core.db import Database
from app.core.security import TokenService
from app.core.settings import Settings
from tests.accounts.support import (
    CHANGE_EMAIL,
    CHANGE_PASSWORD,
    VERIFY_EMAIL,
    VIEWER,
    Argon2Work,
    access_works,
    audit,
    call,
    insert_token,
    invalid_token_error,
    link_token,
    live_sessions,
    outbox,
    refresh_works,
    sign_in,
    user_row,
)
from tests.app_fixtures import PASSWORD, GraphQL, Org, new_org
from tests.auth.helpers import STORES, throttled_server

NEW_PASSWORD = "my new and longer passphrase"


@pytest.fixture
async def org(database: Database, tokens: TokenService) -> Org:
    return await new_org(database, tokens, members=2, password=PASSWORD)


async def change_password(gql: GraphQL, token: str, current: str, new: str) -> Any:
    return await call(
        gql,
        CHANGE_PASSWORD,
        "changePassword",
        token=token,
        input={"currentPassword": current, "newPassword": new},
    )


async def change_email(gql: GraphQL, token: str, new_email: str) -> Any:
    return await call(gql, CHANGE_EMAIL, "changeEmail", token=token, input={"newEmail": new_email})


async def verify(gql: GraphQL, token: str) -> Any:
    return await call(gql, VERIFY_EMAIL, "verifyEmail", link=token)


# --- changePassword ---------------------------------------------------------------------


CHANGE_PASSWORD_WITH_TOKENS = """
mutation Change($input: ChangePasswordInput!) {
  changePassword(input: $input) { ok signIn { nextStep accessToken refreshToken } errors { code } }
}
"""


async def test_changing_the_password_ends_every_session_and_hands_out_a_new_one(
    gql: GraphQL, org: Org, database: Database
) -> None:
    member = org.members[0]
    this = await sign_in(gql, org.slug, member.email, PASSWORD)
    other = await sign_in(gql, org.slug, member.email, PASSWORD)

    with Argon2Work() as work:
        result = await call(
            gql,
            CHANGE_PASSWORD_WITH_TOKENS,
            "changePassword",
            token=this["accessToken"],
            input={"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD},
        )

    assert result["ok"] is True
    assert result["errors"] == []
    # Verify the current password, hash the new one.
    assert work.count == 2
    # Every earlier session ends, the caller's too (a thief may hold its refresh token).
    for old in (this, other):
        assert not await access_works(gql, old["accessToken"])
        assert not await refresh_works(gql, old["refreshToken"])
    new = result["signIn"]
    assert new["nextStep"] == "DONE"
    assert await access_works(gql, new["accessToken"])
    assert await refresh_works(gql, new["refreshToken"])
    assert await live_sessions(database, org.id, member.id) == 1
    assert (await sign_in(gql, org.slug, member.email, PASSWORD))["accessToken"] is None
    assert (await sign_in(gql, org.slug, member.email, NEW_PASSWORD))["accessToken"]
    entries = await audit(database, org.id, "password.")
    assert [(e["action"], e["actor_id"], e["target_id"]) for e in entries] == [
        ("password.changed", member.id, str(member.id))
    ]


async def test_a_wrong_current_password_changes_nothing(
    gql: GraphQL, org: Org, database: Database
) -> None:
    member = org.members[0]
    before = await user_row(database, org.id, member.email)

    result = await change_password(gql, member.token, "not my password", NEW_PASSWORD)

    assert result == {
        "ok": False,
        "errors": [
            {
                "code": "INVALID_CREDENTIALS",
                "message": "The current password is wrong",
                "field": "currentPassword",
            }
        ],
    }
    assert await user_row(database, org.id, member.email) == before
    assert await audit(database, org.id, "password.") == []


async def test_a_weak_new_password_is_refused_before_any_argon2_work(
    gql: GraphQL, org: Org, database: Database
) -> None:
    member = org.members[0]

    with Argon2Work() as work:
        results = [
            await change_password(gql, member.token, PASSWORD, new)
            for new in ("password123", "short", "y" * 1025)
        ]

    assert work.count == 0
    for result in results:
        assert result["ok"] is False
        assert [(e["code"], e["field"]) for e in result["errors"]] == [("INVALID", "newPassword")]
    assert await audit(database, org.id, "password.") == []


async def test_changing_the_password_needs_a_signed_in_user(gql: GraphQL) -> None:
    body = await gql(
        CHANGE_PASSWORD, {"input": {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}}
    )

    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


# --- changeEmail / verifyEmail ----------------------------------------------------------


async def email_token(database: Database, org: Org, recipient: str) -> str:
    mails = [m for m in await outbox(database, org.id) if m["recipient"] == recipient]
    return link_token(mails[-1]["body"], "verify-email")


async def test_an_email_change_applies_once_the_new_address_is_verified(
    gql: GraphQL, org: Org, database: Database
) -> None:
    member = org.members[0]

    requested = await change_email(gql, member.token, "Grace@New.example")

    assert requested == {"ok": True, "errors": []}
    [mail] = await outbox(database, org.id)
    assert mail["kind"] == "email_verification"
    assert mail["recipient"] == "Grace@New.example"
    token = link_token(mail["body"], "verify-email")
    assert (await gql.data(VIEWER, token=member.token))["viewer"]["email"] == member.email

    verified = await verify(gql, token)

    assert verified == {"ok": True, "errors": []}
    assert (await gql.data(VIEWER, token=member.token))["viewer"]["email"] == "Grace@New.example"
    row = await user_row(database, org.id, "grace@new.example")
    assert row is not None
    assert row["id"] == member.id
    assert row["email_verified_at"] is not None
    entries = await audit(database, org.id, "email_change.")
    assert [(e["action"], e["actor_id"], e["metadata"]) for e in entries] == [
        ("email_change.requested", member.id, {"new_email": "Grace@New.example"}),
        (
            "email_change.verified",
            member.id,
            {"old_email": member.email, "new_email": "Grace@New.example"},
        ),
    ]
    assert (await verify(gql, token)) == {"ok": False, "errors": [invalid_token_error()]}


async def test_an_address_in_use_is_a_conflict(gql: GraphQL, org: Org, database: Database) -> None:
    member, other = org.members

    taken = await change_email(gql, member.token, other.email.upper())
    same = await change_email(gql, member.token, member.email)
    malformed = await change_email(gql, member.token, "nope")

    assert [(e["code"], e["field"]) for e in taken["errors"]] == [("CONFLICT", "newEmail")]
    assert [(e["code"], e["field"]) for e in same["errors"]] == [("INVALID", "newEmail")]
    assert [(e["code"], e["field"]) for e in malformed["errors"]] == [("INVALID", "newEmail")]
    assert await outbox(database, org.id) == []
    assert await audit(database, org.id, "email_change.") == []


async def test_an_address_taken_meanwhile_is_a_conflict_at_verification(
    gql: GraphQL, org: Org, database: Database
) -> None:
    member, other = org.members
    await change_email(gql, member.token, "shared@new.example")
    token = await email_token(database, org, "shared@new.example")
    await change_email(gql, other.token, "shared@new.example")
    assert (await verify(gql, await email_token(database, org, "shared@new.example")))["ok"]

    result = await verify(gql, token)

    assert result["ok"] is False
    assert [(e["code"], e["field"]) for e in result["errors"]] == [("CONFLICT", "token")]
    assert (await gql.data(VIEWER, token=member.token))["viewer"]["email"] == member.email
    verified = await audit(database, org.id, "email_change.verified")
    assert [e["actor_id"] for e in verified] == [other.id]


async def test_expired_and_foreign_email_tokens_are_refused(
    gql: GraphQL, org: Org, database: Database
) -> None:
    member = org.members[0]
    expired = await insert_token(
        database,
        org.id,
        TokenPurpose.EMAIL_VERIFICATION,
        member.id,
        expires_at=datetime.now(UTC) - timedelta(minutes=1),
        email="late@new.example",
    )
    reset = await insert_token(
        database,
        org.id,
        TokenPurpose.PASSWORD_RESET,
        member.id,
        expires_at=datetime.now(UTC) + timedelta(minutes=10),
    )

    results = [await verify(gql, t) for t in (expired, reset, "emv.x.y", "")]

    assert results == [{"ok": False, "errors": [invalid_token_error()]}] * 4
    assert (await gql.data(VIEWER, token=member.token))["viewer"]["email"] == member.email
    assert await audit(database, org.id, "email_change.") == []


async def test_wrong_current_passwords_are_throttled_with_sign_ins(
    gql: GraphQL, org: Org, database: Database, app_settings: Settings
) -> None:
    member = org.members[0]
    for _ in range(app_settings.auth.throttle_per_account):
        wrong = await change_password(gql, member.token, "not my password", NEW_PASSWORD)
        assert [e["code"] for e in wrong["errors"]] == ["INVALID_CREDENTIALS"]
    before = await user_row(database, org.id, member.email)

    # The right password no longer helps, and signing in to the account is held back too.
    blocked = await change_password(gql, member.token, PASSWORD, NEW_PASSWORD)
    signing_in = await sign_in(gql, org.slug, member.email, PASSWORD)

    assert [e["code"] for e in blocked["errors"]] == ["TOO_MANY_ATTEMPTS"]
    assert [e["code"] for e in signing_in["errors"]] == ["TOO_MANY_ATTEMPTS"]
    assert await user_row(database, org.id, member.email) == before


@pytest.mark.parametrize("store", STORES)
async def test_concurrent_wrong_current_passwords_verify_at_most_the_limit(
    store: str, org: Org, database: Database, app_settings: Settings
) -> None:
    # given a stolen access token and 20 guesses of the password sent at once
    member, limit = org.members[0], 3
    before = await user_row(database, org.id, member.email)
    async with throttled_server(
        app_settings, database, store=store, throttle_per_account=limit
    ) as gql:
        with Argon2Work() as work:
            results = await asyncio.gather(
                *(change_password(gql, member.token, f"guess {i}", NEW_PASSWORD) for i in range(20))
            )

    # then only the limit's worth were verified; the others were refused unverified
    assert work.count == limit
    codes = sorted(e["code"] for r in results for e in r["errors"])
    assert codes == ["INVALID_CREDENTIALS"] * limit + ["TOO_MANY_ATTEMPTS"] * (20 - limit)
    assert await user_row(database, org.id, member.email) == before
