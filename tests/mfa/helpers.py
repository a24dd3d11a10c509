"""Documents and small factories shared by the MFA tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from app.core.db import Database
from app.core.security import MFA_CHALLENGE_TYPE, TokenService
from app.core.settings import Settings
from app.mfa import crypto, queries
from tests.app_fixtures import GraphQL
from tests.factories import open_session

ERRORS = "errors { code message field }"
TOKENS = "nextStep accessToken refreshToken challenge"

SIGN_IN = f"""
mutation SignIn($input: SignInInput!) {{ signIn(input: $input) {{ {TOKENS} {ERRORS} }} }}
"""
VERIFY = f"""
mutation Verify($input: VerifyMfaInput!) {{ verifyMfa(input: $input) {{ {TOKENS} {ERRORS} }} }}
"""
START = f"""
mutation Start($challenge: String) {{
  startTotpEnrollment(challenge: $challenge) {{ enrollment {{ secret otpauthUri }} {ERRORS} }}
}}
"""
CONFIRM = f"""
mutation Confirm($code: String!, $challenge: String) {{
  confirmTotpEnrollment(code: $code, challenge: $challenge) {{
    recoveryCodes signIn {{ {TOKENS} }} {ERRORS}
  }}
}}
"""
REGENERATE = f"mutation {{ regenerateRecoveryCodes {{ recoveryCodes {ERRORS} }} }}"
DISABLE = f"mutation {{ disableMfa {{ disabled signIn {{ nextStep accessToken }} {ERRORS} }} }}"
STATUS = "{ mfaStatus { totpEnabled totpPending recoveryCodesRemaining } }"


def now_code(secret: str, offset: int = 0) -> str:
    """The code of the current step (+ offset): what the user's app shows now."""
    return crypto.code_at_step(secret, crypto.current_step() + offset)


def codes_of(body: dict[str, Any]) -> list[str]:
    return [e["code"] for e in body.get("errors", [])]


@dataclass(frozen=True)
class Enrolment:
    secret: str
    codes: list[str]
    # Enrolling ends every session of the user, the enrolling one's too: this is the access
    # token of the session it opened instead.
    token: str


async def enrol(gql: GraphQL, token: str) -> Enrolment:
    """Enrol the token's user through the API."""
    started = (await gql.data(START, token=token))["startTotpEnrollment"]
    assert started["errors"] == []
    secret: str = started["enrollment"]["secret"]
    confirmed = (await gql.data(CONFIRM, {"code": now_code(secret)}, token=token))[
        "confirmTotpEnrollment"
    ]
    assert confirmed["errors"] == []
    return Enrolment(secret, confirmed["recoveryCodes"], confirmed["signIn"]["accessToken"])


async def seed_totp(
    database: Database, settings: Settings, *, tenant_id: UUID, user_id: UUID
) -> str:
    """A confirmed factor with no step used yet (every code of the window is available),
    written as the server writes it; returns the secret."""
    keys = crypto.load_or_create_mfa_keys(settings.mfa_keys_path, create=True)
    secret = crypto.new_totp_secret()
    sealed = crypto.seal_totp_secret(keys, secret, tenant_id=tenant_id, user_id=user_id)
    async with database.transaction(tenant_id) as session:
        assert await queries.upsert_pending_totp(
            session, user_id, sealed.ciphertext, sealed.key_version
        )
        await session.execute(
            "UPDATE mfa_totp SET confirmed_at = now() WHERE user_id = $1", user_id
        )
    return secret


def challenge(
    tokens: TokenService, *, tenant_id: UUID, user_id: UUID, typ: str = MFA_CHALLENGE_TYPE
) -> str:
    """What signIn returns to a user with a confirmed factor (password already checked)."""
    return tokens.issue_challenge(typ, user_id=user_id, tenant_id=tenant_id, amr=("pwd",)).token


async def verify(
    gql: GraphQL, challenge_token: str, *, code: str | None = None, recovery: str | None = None
) -> dict[str, Any]:
    variables = {"input": {"challenge": challenge_token, "code": code, "recoveryCode": recovery}}
    result: dict[str, Any] = (await gql.data(VERIFY, variables))["verifyMfa"]
    return result


async def audit_actions(database: Database, tenant_id: UUID, user_id: UUID) -> list[str]:
    """`action:outcome` of the user's audit entries, oldest first."""
    async with database.transaction(tenant_id, readonly=True) as session:
        rows = await session.fetch(
            "SELECT action, outcome FROM audit_log WHERE target_id = $1 OR actor_id = $2"
            " ORDER BY occurred_at, id",
            str(user_id),
            user_id,
        )
    return [f"{r['action']}:{r['outcome']}" for r in rows]


async def access_token(
    database: Database,
    tokens: TokenService,
    *,
    tenant_id: UUID,
    user_id: UUID,
    aal: int,
    age_seconds: int = 0,
) -> str:
    """An access token of a new session authenticated `age_seconds` ago at `aal`."""
    async with database.transaction(tenant_id) as session:
        return await open_session(
            session, tokens, user_id=user_id, aal=aal, age_seconds=age_seconds
        )
