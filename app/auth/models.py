"""Sessions: one per sign-in, each the family of the refresh tokens it rotates through."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from app.core.security import IssuedToken
from app.core.tables import Table


@dataclass(frozen=True)
class AuthSession:
    id: UUID
    user_id: UUID
    aal: int
    amr: list[str]
    auth_time: datetime
    user_agent: str
    ip: str | None
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


AUTH_SESSIONS = Table("auth_sessions", AuthSession)

# Opaque-token kind of refresh tokens (app/core/security.py).
REFRESH_TOKEN_KIND = "rt"  # noqa: S105 (a token-kind prefix, not a secret)


@dataclass(frozen=True)
class SignInTokens:
    """What a completed sign-in (or refresh) hands the client."""

    user_id: UUID
    session_id: UUID
    access_token: IssuedToken
    refresh_token: str
    refresh_expires_at: datetime


@dataclass(frozen=True)
class RefreshCandidate:
    """A presented refresh token with its family and owner, locked for the exchange."""

    token_id: UUID
    rotated_at: datetime | None
    session: AuthSession
    session_revoked: bool
    user_active: bool
    tenant_active: bool
    now: datetime
