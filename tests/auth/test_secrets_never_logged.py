"""Every authentication flow, run end to end with every logger at DEBUG: no password, token,
TOTP secret or code, recovery code or mailed link's token it used or received appears in
any line the process wrote, as the production JSON handler formats it."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any
from uuid import UUID

import httpx
import pytest

from app.api.relay import encode_global_id
from app.core.db import Database
from app.core.settings import Settings
from tests.accounts.support import (
    ACCEPT,
    CHANGE_EMAIL,
    CHANGE_PASSWORD,
    COMPLETE_RESET,
    INVITE,
    REQUEST_RESET,
    VERIFY_EMAIL,
    link_token,
    outbox,
)
from tests.api.helpers import pk
from tests.app_fixtures import GraphQL, start_server, stop_server
from tests.identity.support import FakeIdp, add_provider, exchange, new_key
from tests.logs import Captured, capture_logs
from tests.mfa.helpers import CONFIRM, START, VERIFY, now_code
from tests.platform.support import SIGN_IN as PLATFORM_SIGN_IN
from tests.platform.support import new_admin

TOKENS = "nextStep accessToken refreshToken challenge errors { code }"
SIGN_UP = f"""
mutation SignUp($input: SignUpInput!) {{ signUp(input: $input) {{ tenantId {TOKENS} }} }}
"""
SIGN_IN = f"mutation SignIn($input: SignInInput!) {{ signIn(input: $input) {{ {TOKENS} }} }}"
REFRESH = f"mutation Refresh($rt: String!) {{ refreshToken(refreshToken: $rt) {{ {TOKENS} }} }}"
IMPERSONATE = """
mutation Impersonate($input: ImpersonateUserInput!) {
  impersonateUser(input: $input) { accessToken errors { code } }
}"""
VIEWER = "{ viewer { email } }"


class Secrets:
    """Every secret the flows used or received, to look for in the logs."""

    def __init__(self) -> None:
        self.values: list[str] = []

    def keep(self, *values: Any) -> None:
        for value in values:
            if isinstance(value, str) and value:
                self.values.append(value)
            elif isinstance(value, list):
                self.keep(*value)
            elif isinstance(value, dict):
                self.keep(*value.values())


def new_password() -> str:
    return f"pw {secrets.token_urlsafe(12)}"


@pytest.fixture
async def server(app_settings: Settings, database: Database) -> AsyncIterator[GraphQL]:
    """A development server (mails kept in files too) with sign-up on."""
    settings = replace(app_settings, signup_enabled=True, signup_per_ip_per_hour=1_000_000)
    running, url = await start_server(settings, database)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            yield GraphQL(http)
    finally:
        await stop_server(running)


async def data(gql: GraphQL, document: str, field: str, token: str | None = None, **v: Any) -> Any:
    body = await gql.data(document, v, token=token)
    payload = body[field]
    assert not payload.get("errors"), payload
    return payload


async def mailed(database: Database, tenant_id: UUID, path: str) -> str:
    return link_token((await outbox(database, tenant_id))[-1]["body"], path)


async def every_flow(gql: GraphQL, database: Database, settings: Settings, kept: Secrets) -> None:
    slug = f"logs-{secrets.token_hex(5)}"
    owner_email, owner_password = f"owner@{slug}.example", new_password()
    kept.keep(owner_password)

    # signUp, then the address it mails to verify.
    signed_up = await data(
        gql,
        SIGN_UP,
        "signUp",
        input={
            "organizationName": "Logs",
            "slug": slug,
            "email": owner_email,
            "password": owner_password,
        },
    )
    kept.keep(signed_up["accessToken"], signed_up["refreshToken"])
    tenant_id = pk(signed_up["tenantId"])
    verification = await mailed(database, tenant_id, "verify-email")
    kept.keep(verification)
    await data(gql, VERIFY_EMAIL, "verifyEmail", link=verification)

    # signIn (a wrong password too), refresh.
    wrong = new_password()
    kept.keep(wrong)
    failed = await gql.data(
        SIGN_IN, {"input": {"tenant": slug, "email": owner_email, "password": wrong}}
    )
    assert failed["signIn"]["errors"]
    signed_in = await data(
        gql,
        SIGN_IN,
        "signIn",
        input={"tenant": slug, "email": owner_email, "password": owner_password},
    )
    kept.keep(signed_in["accessToken"], signed_in["refreshToken"])
    refreshed = await data(gql, REFRESH, "refreshToken", rt=signed_in["refreshToken"])
    kept.keep(refreshed["accessToken"], refreshed["refreshToken"])

    # MFA: enrolment, a sign-in with a code, one with a recovery code, one with a bad code.
    started = await data(gql, START, "startTotpEnrollment", token=refreshed["accessToken"])
    secret = started["enrollment"]["secret"]
    kept.keep(secret, started["enrollment"]["otpauthUri"])
    code = now_code(secret)
    kept.keep(code)
    confirmed = await data(
        gql, CONFIRM, "confirmTotpEnrollment", token=refreshed["accessToken"], code=code
    )
    kept.keep(confirmed["recoveryCodes"], confirmed["signIn"])
    credentials = {"tenant": slug, "email": owner_email, "password": owner_password}
    challenged = await data(gql, SIGN_IN, "signIn", input=credentials)
    kept.keep(challenged["challenge"])
    bad = await gql.data(
        VERIFY, {"input": {"challenge": challenged["challenge"], "code": "000000"}}
    )
    assert bad["verifyMfa"]["errors"]
    next_code = now_code(secret, 1)
    kept.keep(next_code)
    verified = await data(
        gql, VERIFY, "verifyMfa", input={"challenge": challenged["challenge"], "code": next_code}
    )
    kept.keep(verified)
    owner_token = verified["accessToken"]
    challenged = await data(gql, SIGN_IN, "signIn", input=credentials)
    kept.keep(challenged["challenge"])
    recovered = await data(
        gql,
        VERIFY,
        "verifyMfa",
        input={"challenge": challenged["challenge"], "recoveryCode": confirmed["recoveryCodes"][0]},
    )
    kept.keep(recovered)

    # An invitation, accepted; a password reset; a password change; an email change.
    member_email = f"member@{slug}.example"
    await data(gql, INVITE, "inviteUser", token=owner_token, input={"email": member_email})
    invitation = await mailed(database, tenant_id, "accept-invitation")
    member_password = new_password()
    kept.keep(invitation, member_password)
    accepted = await data(
        gql, ACCEPT, "acceptInvitation", input={"token": invitation, "password": member_password}
    )
    kept.keep(accepted)
    await data(
        gql, REQUEST_RESET, "requestPasswordReset", input={"tenant": slug, "email": member_email}
    )
    reset = await mailed(database, tenant_id, "reset-password")
    reset_password = new_password()
    kept.keep(reset, reset_password)
    await data(
        gql,
        COMPLETE_RESET,
        "completePasswordReset",
        input={"token": reset, "newPassword": reset_password},
    )
    member = await data(
        gql,
        SIGN_IN,
        "signIn",
        input={"tenant": slug, "email": member_email, "password": reset_password},
    )
    kept.keep(member)
    changed_password = new_password()
    kept.keep(changed_password)
    await data(
        gql,
        CHANGE_PASSWORD,
        "changePassword",
        token=member["accessToken"],
        input={"currentPassword": reset_password, "newPassword": changed_password},
    )
    member = await data(
        gql,
        SIGN_IN,
        "signIn",
        input={"tenant": slug, "email": member_email, "password": changed_password},
    )
    kept.keep(member)
    await data(
        gql,
        CHANGE_EMAIL,
        "changeEmail",
        token=member["accessToken"],
        input={"newEmail": f"moved@{slug}.example"},
    )
    change = await mailed(database, tenant_id, "verify-email")
    kept.keep(change)
    await data(gql, VERIFY_EMAIL, "verifyEmail", link=change)

    # Token exchange with an external identity provider's ID token.
    idp = FakeIdp()
    try:
        key = new_key()
        idp.published = [key]
        await add_provider(gql, owner_token, idp)
        id_token = idp.token(key, idp.claims(email=owner_email))
        kept.keep(id_token)
        exchanged = await exchange(gql, slug, id_token)
        assert exchanged["errors"] == [], exchanged
        kept.keep(exchanged)
    finally:
        idp.close()

    # A platform administrator signs in (password and TOTP) and impersonates the member.
    admin = await new_admin(database, settings)
    kept.keep(admin.password, admin.secret)
    sign_in = admin.credentials()
    kept.keep(sign_in["input"]["code"])
    platform = await data(gql, PLATFORM_SIGN_IN, "platformSignIn", **sign_in)
    kept.keep(platform["accessToken"])
    impersonation = await data(
        gql,
        IMPERSONATE,
        "impersonateUser",
        token=platform["accessToken"],
        input={
            "tenantId": encode_global_id("Tenant", tenant_id),
            "email": f"moved@{slug}.example",
            "reason": "ticket #1: logging check",
        },
    )
    kept.keep(impersonation["accessToken"])
    assert await gql.data(VIEWER, token=impersonation["accessToken"])


async def test_no_flow_leaves_a_secret_in_the_logs(
    server: GraphQL, database: Database, app_settings: Settings
) -> None:
    kept = Secrets()
    captured: Captured
    with capture_logs(logging.DEBUG) as captured:
        await every_flow(server, database, app_settings, kept)

    # The capture saw the flows: an access line per request, the audit events, the mails.
    assert len(captured.events("request")) >= 25
    actions = {line["action"] for line in captured.events("audit")}
    assert {
        "auth.sign_in",
        "mfa.totp.enrolled",
        "mfa.totp.verified",
        "mfa.recovery_code.used",
        "invitation.accepted",
        "password_reset.completed",
        "password.changed",
        "email_change.verified",
        "auth.token_exchange",
        "platform.sign_in",
        "impersonation.started",
    } <= actions
    assert len(captured.events("mail")) == 4
    assert len(kept.values) >= 40
    leaked = [value for value in kept.values if value in captured.text]
    assert leaked == []
