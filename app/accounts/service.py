"""The accounts service: invitations, password reset and change, email change.

One module per use case; resolvers and other domains call through here. Each flow writes
one audit entry in the transaction of the action itself, and mails through a `Mailer`
(app/accounts/mailer.py) as its last step.
"""

from __future__ import annotations

from app.accounts.email_change import request_email_change, verify_email
from app.accounts.invitations import accept_invitation, invite_user
from app.accounts.passwords import (
    RESET_MAILS_PER_HOUR,
    WrongPassword,
    change_password,
    complete_password_reset,
    request_password_reset,
)
from app.accounts.tokens import InvalidToken

__all__ = [
    "RESET_MAILS_PER_HOUR",
    "InvalidToken",
    "WrongPassword",
    "accept_invitation",
    "change_password",
    "complete_password_reset",
    "invite_user",
    "request_email_change",
    "request_password_reset",
    "verify_email",
]
