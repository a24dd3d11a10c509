"""GraphQL types of sign-in, tokens and sessions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Self
from uuid import UUID

import strawberry

from app.api.mutations import Outcome, UserError
from app.api.relay import encode_global_id
from app.auth.models import AuthSession, SignInTokens
from app.auth.service import NextStep, SignInResult

strawberry.enum(NextStep, description="What a sign-in needs next.")


@strawberry.type(description="Tokens, an MFA challenge, or why sign-in failed.")
class SignInPayload:
    next_step: NextStep | None = strawberry.field(
        description="DONE with tokens; MFA_REQUIRED: call `verifyMfa` with `challenge`; "
        "MFA_ENROLLMENT_REQUIRED: enrol with `challenge` first. Null when `errors` is not empty."
    )
    access_token: str | None = strawberry.field(
        description="Send as `Authorization: Bearer <token>`; short-lived."
    )
    token_type: str = strawberry.field(default="Bearer", description="Always `Bearer`.")
    expires_at: datetime | None = strawberry.field(description="When the access token expires.")
    refresh_token: str | None = strawberry.field(
        description="Exchange with `refreshToken` for new tokens; each works once. Keep secret."
    )
    refresh_expires_at: datetime | None = strawberry.field(
        description="When the session ends unless refreshed earlier (sliding, never past it)."
    )
    challenge: str | None = strawberry.field(
        description="For MFA_REQUIRED / MFA_ENROLLMENT_REQUIRED: the short-lived challenge."
    )
    challenge_expires_at: datetime | None = strawberry.field(
        description="When `challenge` stops working."
    )
    errors: list[UserError] = strawberry.field(description="Why sign-in failed.")

    @classmethod
    def of_tokens(cls, tokens: SignInTokens) -> Self:
        return cls(
            next_step=NextStep.DONE,
            access_token=tokens.access_token.token,
            expires_at=_time(tokens.access_token.expires_at),
            refresh_token=tokens.refresh_token,
            refresh_expires_at=tokens.refresh_expires_at,
            challenge=None,
            challenge_expires_at=None,
            errors=[],
        )

    @classmethod
    def of_result(cls, result: SignInResult) -> Self:
        if result.tokens is not None:
            return cls.of_tokens(result.tokens)
        assert result.challenge is not None
        return cls(
            next_step=result.next_step,
            access_token=None,
            expires_at=None,
            refresh_token=None,
            refresh_expires_at=None,
            challenge=result.challenge.token,
            challenge_expires_at=_time(result.challenge.expires_at),
            errors=[],
        )

    @classmethod
    def failed(cls, errors: list[UserError]) -> Self:
        return cls(
            next_step=None,
            access_token=None,
            expires_at=None,
            refresh_token=None,
            refresh_expires_at=None,
            challenge=None,
            challenge_expires_at=None,
            errors=errors,
        )

    @classmethod
    def of_outcome(cls, outcome: Outcome[SignInResult] | Outcome[SignInTokens]) -> Self:
        """The payload of a settled sign-in step: its result (tokens, or what comes next) or
        why it failed."""
        if outcome.value is None:
            return cls.failed(outcome.errors)
        if isinstance(outcome.value, SignInTokens):
            return cls.of_tokens(outcome.value)
        return cls.of_result(outcome.value)


def _time(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


# Not a Node: `node(id:)` must never show one user's sessions to another user of the tenant.
@strawberry.type(
    name="Session", description="A signed-in device or client: one sign-in and its refreshes."
)
class DeviceSession:
    id: strawberry.ID = strawberry.field(description="Pass to `revokeSession` to end it.")
    user_agent: str = strawberry.field(description="User agent at the last sign-in or refresh.")
    ip: str | None = strawberry.field(description="Client address at the last use.")
    aal: int = strawberry.field(description="Assurance level: 1 password, 2 with MFA.")
    amr: list[str] = strawberry.field(description="How the user authenticated (pwd, otp, ext).")
    created_at: datetime = strawberry.field(description="When the user signed in.")
    last_used_at: datetime = strawberry.field(description="When it was last refreshed.")
    expires_at: datetime = strawberry.field(description="When it ends at the latest.")
    current: bool = strawberry.field(description="Whether this is the session making the request.")

    @classmethod
    def of(cls, model: AuthSession, *, current_id: UUID) -> DeviceSession:
        return cls(
            id=strawberry.ID(encode_global_id(SESSION_TYPE, model.id)),
            user_agent=model.user_agent,
            ip=model.ip,
            aal=model.aal,
            amr=list(model.amr),
            created_at=model.created_at,
            last_used_at=model.last_used_at,
            expires_at=model.expires_at,
            current=model.id == current_id,
        )


SESSION_TYPE = "Session"


@strawberry.type(description="The result of signing out.")
class SignOutPayload:
    revoked_sessions: int = strawberry.field(description="How many sessions were ended.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")
