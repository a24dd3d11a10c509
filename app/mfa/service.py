"""MFA rules: TOTP enrolment and verification, recovery codes, and the audit trail."""

from __future__ import annotations

from uuid import UUID

from app.core.db import Session
from app.mfa import queries


async def has_confirmed_totp(session: Session, user_id: UUID) -> bool:
    """Whether the user has a confirmed TOTP factor (sign-in then owes a second step)."""
    return await queries.has_confirmed_totp(session, user_id)
