"""Accounts: the single-use tokens mailed to users and the mails that carry them."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from uuid import UUID


class TokenPurpose(enum.Enum):
    INVITATION = "invitation"
    PASSWORD_RESET = "password_reset"  # noqa: S105 (a purpose name, not a secret)
    EMAIL_VERIFICATION = "email_verification"

    @property
    def kind(self) -> str:
        """The opaque-token prefix (app/core/security.py): a token works for one purpose."""
        return _KINDS[self]


_KINDS = {
    TokenPurpose.INVITATION: "inv",
    TokenPurpose.PASSWORD_RESET: "pwr",
    TokenPurpose.EMAIL_VERIFICATION: "emv",
}


class Role(enum.Enum):
    """The system role an invitation grants (custom roles are assigned after acceptance)."""

    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"


@dataclass(frozen=True)
class ConsumedToken:
    """An account token that was just marked used."""

    user_id: UUID
    email: str | None


@dataclass(frozen=True)
class MailMessage:
    # What the mail is for (invitation, password_reset, email_verification).
    kind: str
    recipient: str
    subject: str
    body: str
