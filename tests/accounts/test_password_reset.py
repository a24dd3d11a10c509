"""requestPasswordReset and completePasswordReset: one answer for every account, single-use
links, and every session of the user ends."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.accounts.models import TokenPurpose
from app.accounts.service import RESET_MAILS_PER_HOUR
from app.core.db import Database
from app.core.security import TokenService, token_digest
from app.tenants.service import create_tenant
from app.users.service import create_user
from tests.accounts.support import (
    COMPLETE_RESET,
    REQUEST_RESET,
    Argon2Work,
    access_works,
    account_tokens,
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

NEW_PASSWORD = "entirely different passphrase"


@pytest.fixture
async def org(database: Database, tokens: TokenService) -> Org:
    return await new_org(database, tokens, members=2, password=PASSWORD)


async def request_reset(gql: GraphQL, tenant: str, email: str) -> Any:
    return await call(
        gql, REQUEST_RESET, "requestPasswordReset", input={"tenant": tenant, "email": email}
    )


async def complete(gql: GraphQL, token: str, new_password: str = NEW_PASSWORD) -> Any:
    return await call(
        gql,
        COMPLETE_RESET,
        "completePasswordReset",
        input={"token": token, "newPassword": new_password},
    )


async def reset_token(database: Database, org: Org, email: str) -> str:
    mails = [m for m in await outbox(database, org.id) if m["recipient"] == email]
    return link_token(mails[-1]["body"], "reset-password")


async def test_a_reset_sets_the_password_and_ends_every_session(
    gql: GraphQL, org: Org, database: Database
) -> None:
    member = org.members[0]
    first = await sign_in(gql, org.slug, member.email, PASSWORD)
    second = await sign_in(gql, org.slug, member.email, PASSWORD)
    assert await live_sessions(database, org.id, member.id) == 2

    requested = await request_reset(gql, org.slug, member.email.upper())

    assert requested == {"ok": True, "errors": []}
    [mail] = await outbox(database, org.id)
    assert mail["kind"] == "password_reset"
    assert mail["recipient"] == member.email
    assert mail["subject"] == "Reset your Tenantry password"
    token = link_token(mail["body"], "reset-password")
    [stored] = await account_tokens(database, org.id, member.id)
    assert stored["purpose"] == "password_reset"
    assert stored["token_hash"] == token_digest(token)
    assert stored["expires_at"] - stored["created_at"] == timedelta(hours=1)
    # Nothing changes until the link is used.
    assert (await sign_in(gql, org.slug, member.email, PASSWORD))["accessToken"]

    completed = await complete(gql, token)

    assert completed == {"ok": True, "errors": []}
    assert await live_sessions(database, org.id, member.id) == 0
    for old in (first, second):
        assert not await access_works(gql, old["accessToken"])
        assert not await refresh_works(gql, old["refreshToken"])
    assert (await sign_in(gql, org.slug, member.email, PASSWORD))["accessToken"] is None
    assert (await sign_in(gql, org.slug, member.email, NEW_PASSWORD))["accessToken"]
    row = await user_row(database, org.id, member.email)
    assert row is not None
    assert row["password_changed_at"] is not None
    entries = await audit(database, org.id, "password_reset.")
    assert [(e["action"], e["outcome"], e["actor_kind"], e["target_id"]) for e in entries] == [
        ("password_reset.requested", "success", "anonymous", str(member.id)),
        ("password_reset.completed", "success", "user", str(member.id)),
    ]
    # The other member was not touched.
    assert await user_row(database, org.id, org.members[1].email) is not None
    assert (await sign_in(gql, org.slug, org.members[1].email, PASSWORD))["accessToken"]


async def test_the_answer_is_the_same_for_every_account_and_tenant(
    gql: GraphQL, org: Org, other_org: Org, database: Database
) -> None:
    member = org.members[0]
    async with database.transaction(org.id) as session:
        await session.execute(
            "UPDATE users SET status = 'disabled' WHERE id = $1", org.members[1].id
        )
    attempts = [
        (org.slug, member.email),
        (org.slug, "nobody@example.com"),
        (org.slug, org.members[1].email),  # disabled
        (other_org.slug, member.email),  # exists, but in another tenant
        ("no-such-tenant", member.email),
        ("NOT A SLUG", member.email),
    ]

    results = []
    for tenant, email in attempts:
        with Argon2Work() as work:
            results.append(await request_reset(gql, tenant, email))
        assert work.count == 0

    assert results == [{"ok": True, "errors": []}] * len(attempts)
    assert [m["recipient"] for m in await outbox(database, org.id)] == [member.email]
    assert await outbox(database, other_org.id) == []
    entries = await audit(database, org.id, "password_reset.requested")
    assert [(e["outcome"], e["target_id"], e["metadata"]) for e in entries] == [
        ("success", str(member.id), {}),
        ("failure", None, {"reason": "no_active_account"}),
        ("failure", str(org.members[1].id), {"reason": "no_active_account"}),
    ]
    other_entries = await audit(database, other_org.id, "password_reset.requested")
    assert [e["outcome"] for e in other_entries] == ["failure"]


async def test_a_malformed_email_is_an_input_error(gql: GraphQL, org: Org) -> None:
    result = await request_reset(gql, org.slug, "not an email")

    assert result["ok"] is False
    assert [(e["code"], e["field"]) for e in result["errors"]] == [("INVALID", "email")]


async def test_a_new_request_replaces_the_previous_link(
    gql: GraphQL, org: Org, database: Database
) -> None:
    member = org.members[0]
    await request_reset(gql, org.slug, member.email)
    first = await reset_token(database, org, member.email)
    await request_reset(gql, org.slug, member.email)
    second = await reset_token(database, org, member.email)

    assert (await complete(gql, first))["errors"] == [invalid_token_error()]
    assert (await complete(gql, second))["errors"] == []


async def test_a_weak_password_is_refused_and_the_link_still_works(
    gql: GraphQL, org: Org, database: Database
) -> None:
    member = org.members[0]
    await request_reset(gql, org.slug, member.email)
    token = await reset_token(database, org, member.email)

    with Argon2Work() as work:
        weak = await complete(gql, token, "12345678")
        huge = await complete(gql, token, "x" * 5000)

    assert work.count == 0
    assert [(e["code"], e["field"]) for e in weak["errors"]] == [("INVALID", "newPassword")]
    assert [(e["code"], e["field"]) for e in huge["errors"]] == [("INVALID", "newPassword")]
    assert (await complete(gql, token))["errors"] == []


async def test_every_bad_token_gives_the_same_answer_after_the_same_work(
    gql: GraphQL, org: Org, database: Database
) -> None:
    member = org.members[0]
    await request_reset(gql, org.slug, member.email)
    used = await reset_token(database, org, member.email)
    assert (await complete(gql, used))["ok"] is True
    expired = await insert_token(
        database,
        org.id,
        TokenPurpose.PASSWORD_RESET,
        member.id,
        expires_at=datetime.now(UTC) - timedelta(seconds=1),
    )
    invitation = await insert_token(
        database,
        org.id,
        TokenPurpose.INVITATION,
        member.id,
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )
    bad_tokens = [used, expired, invitation, invitation.replace("inv.", "pwr.", 1), "pwr.x.y"]

    results = []
    for token in bad_tokens:
        with Argon2Work() as work:
            results.append(await complete(gql, token, "yet another passphrase"))
        assert work.count == 1, token

    assert results == [{"ok": False, "errors": [invalid_token_error()]}] * len(bad_tokens)
    assert (await sign_in(gql, org.slug, member.email, NEW_PASSWORD))["accessToken"]
    assert len(await audit(database, org.id, "password_reset.completed")) == 1


async def test_at_most_five_mails_per_address_and_hour_with_the_same_answer(
    gql: GraphQL, org: Org, database: Database
) -> None:
    member = org.members[0]

    known = [
        await request_reset(gql, org.slug, member.email) for _ in range(RESET_MAILS_PER_HOUR + 2)
    ]
    unknown = [await request_reset(gql, org.slug, "ghost@example.com") for _ in range(7)]

    assert known + unknown == [{"ok": True, "errors": []}] * (RESET_MAILS_PER_HOUR + 2 + 7)
    mails = await outbox(database, org.id)
    assert [m["recipient"] for m in mails] == [member.email] * RESET_MAILS_PER_HOUR
    entries = await audit(database, org.id, "password_reset.requested")
    reasons = [e["metadata"].get("reason") for e in entries if e["target_id"] == str(member.id)]
    assert reasons == [None] * RESET_MAILS_PER_HOUR + ["too_many_requests"] * 2
    # The latest mailed link still works.
    assert (await complete(gql, link_token(mails[-1]["body"], "reset-password")))["ok"]


async def test_every_spelling_of_the_address_shares_its_mail_limit(
    gql: GraphQL, database: Database
) -> None:
    # given an account whose address has an i, and its hour's mails all sent
    slug = f"org-{secrets.token_hex(5)}"
    tenant = await create_tenant(database, slug=slug, name="Spellings", plan="enterprise")
    email = f"kim.ito@{slug}.example"
    async with database.transaction(tenant.id) as session:
        await create_user(session, email=email, display_name="Kim", password=PASSWORD)
    for _ in range(RESET_MAILS_PER_HOUR):
        await request_reset(gql, slug, email)
    # U+0130 (capital I with dot): PostgreSQL's lower() may make it an i, and so find the
    # account, where Python's lower() does not
    spellings = [email.upper(), email.replace("i", "\u0130"), str(tenant.id).upper()]

    for spelled in spellings[:2]:
        assert await request_reset(gql, slug, spelled) == {"ok": True, "errors": []}
    assert await request_reset(gql, spellings[2], email) == {"ok": True, "errors": []}

    # then no spelling of the address, nor of the tenant, got another mail through
    assert len(await outbox(database, tenant.id)) == RESET_MAILS_PER_HOUR


async def test_links_of_a_suspended_tenant_are_dead(
    gql: GraphQL, org: Org, database: Database
) -> None:
    member = org.members[0]
    await request_reset(gql, org.slug, member.email)
    token = await reset_token(database, org, member.email)
    async with database.transaction(org.id) as session:
        await session.execute("UPDATE tenants SET status = 'suspended' WHERE id = $1", org.id)

    requested = await request_reset(gql, org.slug, member.email)
    completed = await complete(gql, token)

    assert requested == {"ok": True, "errors": []}
    assert completed == {"ok": False, "errors": [invalid_token_error()]}
    assert len(await outbox(database, org.id)) == 1
    [stored] = await account_tokens(database, org.id, member.id)
    assert stored["used_at"] is None
