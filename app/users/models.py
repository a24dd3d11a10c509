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
class Account:
    """What sign-in and the account flows check about a user; never leaves the service
    layer."""

    id: UUID
    email: str
    status: UserStatus
    password_hash: str | None


@dataclass(frozen=True)
class AccountLookup:
    """An email looked up: the account it names, if any, and the email in the form the
    lookup compares (PostgreSQL's lower(), as the unique index on users), which keys the
    account's sign-in throttling whether or not an account has it."""

    compared_as: str
    found: Account | None


USERS = Table("users", User)


class UserOrderField(enum.Enum):
    """Every order a client may ask for, each member's value its SQL ordering. The GraphQL
    enum of the same name is this one."""

    CREATED_AT = Ordering("t.created_at", "timestamptz")
    EMAIL = Ordering("lower(t.email)", "text")
    DISPLAY_NAME = Ordering("t.display_name", "text")
