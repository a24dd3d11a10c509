"""Users: the people of one tenant. Email is unique per tenant, case-insensitively."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from app.core.tables import Ordering, Table


class UserStatus(enum.Enum):
    ACTIVE = "active"
    INVITED = "invited"
    DISABLED = "disabled"


@dataclass(frozen=True)
class User:
    id: UUID
    email: str
    display_name: str
    status: UserStatus
    created_at: datetime
    updated_at: datetime
    # When the address was proven theirs (an invitation or a verification link followed).
    email_verified_at: datetime | None


@dataclass(frozen=True)
class Credentials:
    """What sign-in checks; never leaves the service layer."""

    user_id: UUID
    password_hash: str | None
    status: UserStatus


@dataclass(frozen=True)
class CredentialsLookup:
    """An email looked up for sign-in: the account it names, if any, and the email in the
    form the lookup compares (PostgreSQL's lower(), as the unique index on users), which
    keys the account's throttling counts whether or not an account has it."""

    compared_as: str
    found: Credentials | None


USERS = Table("users", User)


class UserOrderField(enum.Enum):
    """Every order a client may ask for, each member's value its SQL ordering. The GraphQL
    enum of the same name is this one."""

    CREATED_AT = Ordering("t.created_at", "timestamptz")
    EMAIL = Ordering("lower(t.email)", "text")
    DISPLAY_NAME = Ordering("t.display_name", "text")
