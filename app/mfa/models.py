"""MFA factors: a TOTP secret (stored encrypted) per user, and single-use recovery codes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True)
class TotpFactor:
    """A user's TOTP factor as stored; the secret stays encrypted until verification."""

    id: UUID
    user_id: UUID
    secret_ciphertext: bytes
    key_version: int
    confirmed_at: datetime | None
    last_used_step: int | None
    created_at: datetime

    @property
    def confirmed(self) -> bool:
        return self.confirmed_at is not None


@dataclass(frozen=True)
class TotpEnrollment:
    """A started enrolment: what the authenticator app needs, shown once."""

    secret: str
    otpauth_uri: str


@dataclass(frozen=True)
class MfaStatus:
    totp_enabled: bool
    # A started, not yet confirmed enrolment.
    totp_pending: bool
    recovery_codes_remaining: int
