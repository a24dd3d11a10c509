"""Helpers of the account-flow tests: GraphQL documents and reads of outbox, audit and tokens."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote
from uuid import UUID

from app.accounts.models import TokenPurpose
from app.core.db import Database
from app.core.passwords import argon2_computations
from app.core.security import new_opaque_token, token_digest
from tests.app_fixtures import GraphQL
from tests.factories import SYSTEM_ROLE_COLUMN, TEST_SESSION_AGENT
from tests.factories import set_role as set_role

ERRORS = "errors { code message field }"
SIGN_IN_FIELDS = f"nextStep accessToken refreshToken {ERRORS}"

INVITE = f"""
mutation Invite($input: InviteUserInput!) {{
  inviteUser(input: $input) {{ user {{ id email displayName status }} {ERRORS} }}
}}
"""
ACCEPT = f"""
mutation Accept($input: AcceptInvitationInput!) {{
  acceptInvitation(input: $input) {{ {SIGN_IN_FIELDS} }}
}}
"""
SIGN_IN = f"""
mutation SignIn($input: SignInInput!) {{ signIn(input: $input) {{ {SIGN_IN_FIELDS} }} }}
"""
REQUEST_RESET = f"""
mutation Request($input: RequestPasswordResetInput!) {{
  requestPasswordReset(input: $input) {{ ok {ERRORS} }}
}}
"""
COMPLETE_RESET = f"""
mutation Complete($input: CompletePasswordResetInput!) {{
  completePasswordReset(input: $input) {{ ok {ERRORS} }}
}}
"""
CHANGE_PASSWORD = f"""
mutation Change($input: ChangePasswordInput!) {{
  changePassword(input: $input) {{ ok {ERRORS} }}
}}
"""
CHANGE_EMAIL = f"""
mutation ChangeEmail($input: ChangeEmailInput!) {{
  changeEmail(input: $input) {{ ok {ERRORS} }}
}}
"""
VERIFY_EMAIL = f"""
mutation Verify($link: String!) {{ verifyEmail(token: $link) {{ ok {ERRORS} }} }}
"""
VIEWER = "{ viewer { email displayName status } }"


def invalid_token_error() -> dict[str, Any]:
    return {
        "code": "INVALID_TOKEN",
        "message": "This link is invalid or has expired",
        "field": "token",
    }


class Argon2Work:
    """Counts the Argon2 computations of the (in-process) server during a block."""

    def __enter__(self) -> Argon2Work:
        self.start = argon2_computations.value
        self.count = 0
        return self

    def __exit__(self, *exc: object) -> None:
        self.count = argon2_computations.value - self.start


async def call(
    gql: GraphQL, document: str, name: str, token: str | None = None, **variables: Any
) -> Any:
    data = await gql.data(document, variables, token=token)
    return data[name]


async def sign_in(gql: GraphQL, tenant: str, email: str, password: str) -> dict[str, Any]:
    result: dict[str, Any] = await call(
        gql, SIGN_IN, "signIn", input={"tenant": tenant, "email": email, "password": password}
    )
    return result


async def outbox(database: Database, tenant_id: UUID) -> list[dict[str, Any]]:
    async with database.transaction(tenant_id, readonly=True) as session:
        rows = await session.fetch(
            "SELECT kind, recipient, subject, body FROM outbox ORDER BY created_at, id"
        )
    return [dict(r) for r in rows]


async def audit(database: Database, tenant_id: UUID, prefix: str = "") -> list[dict[str, Any]]:
    """Audit entries of the tenant whose action starts with `prefix`, oldest first."""
    async with database.transaction(tenant_id, readonly=True) as session:
        rows = await session.fetch(
            "SELECT action, outcome, actor_kind, actor_id, target_type, target_id, metadata"
            " FROM audit_log WHERE starts_with(action, $1) ORDER BY occurred_at, id",
            prefix,
        )
    return [dict(r) for r in rows]


async def user_row(database: Database, tenant_id: UUID, email: str) -> dict[str, Any] | None:
    async with database.transaction(tenant_id, readonly=True) as session:
        row = await session.fetchrow(
            "SELECT id, email, display_name, status, password_hash, email_verified_at,"  # noqa: S608 (a constant)
            f" {SYSTEM_ROLE_COLUMN},"
            " password_changed_at FROM users WHERE lower(email) = lower($1)",
            email,
        )
    return None if row is None else dict(row)


async def account_tokens(
    database: Database, tenant_id: UUID, user_id: UUID
) -> list[dict[str, Any]]:
    async with database.transaction(tenant_id, readonly=True) as session:
        rows = await session.fetch(
            "SELECT purpose, token_hash, email, created_by, expires_at, used_at, created_at"
            " FROM account_tokens WHERE user_id = $1 ORDER BY created_at, id",
            user_id,
        )
    return [dict(r) for r in rows]


def link_token(body: str, path: str) -> str:
    """The token of the `{public_url}/{path}?token=…` link in a mail body."""
    found = re.search(rf"http://127\.0\.0\.1:8000/{path}\?token=(\S+)", body)
    assert found is not None, body
    return unquote(found.group(1))


async def insert_token(
    database: Database,
    tenant_id: UUID,
    purpose: TokenPurpose,
    user_id: UUID,
    *,
    expires_at: datetime,
    email: str | None = None,
) -> str:
    """A token written straight to the database (e.g. one that has already expired)."""
    token = new_opaque_token(purpose.kind, tenant_id)
    async with database.transaction(tenant_id) as session:
        await session.execute(
            "INSERT INTO account_tokens (tenant_id, purpose, user_id, token_hash, email,"
            " expires_at, created_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $6::timestamptz - interval '1 hour')",
            tenant_id,
            purpose.value,
            user_id,
            token.digest,
            email,
            expires_at,
        )
    assert token.digest == token_digest(token.token)
    return token.token


REFRESH = f"""
mutation Refresh($rt: String!) {{ refreshToken(refreshToken: $rt) {{ {SIGN_IN_FIELDS} }} }}
"""


async def refresh_works(gql: GraphQL, refresh_token: str) -> bool:
    result = await call(gql, REFRESH, "refreshToken", rt=refresh_token)
    return bool(result["accessToken"])


async def access_works(gql: GraphQL, access_token: str) -> bool:
    body = (await gql.post(VIEWER, token=access_token)).json()
    if "data" not in body:  # refused before it ran: a token that no longer works
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", body
        return False
    return body["data"]["viewer"] is not None


async def live_sessions(database: Database, tenant_id: UUID, user_id: UUID) -> int:
    """The user's live sessions that were signed in (not the one new_org opened for their
    token)."""
    async with database.transaction(tenant_id, readonly=True) as session:
        count: int = await session.fetchval(
            "SELECT count(*) FROM auth_sessions WHERE user_id = $1 AND revoked_at IS NULL"
            " AND user_agent <> $2",
            user_id,
            TEST_SESSION_AGENT,
        )
    return count


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps every message it receives."""

    received: list[tuple[str, list[str], bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"
