"""Platform administrators, their sessions and the platform audit log, as stored."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from app.audit.models import AuditEntry
from app.core.tables import Table


class AdminStatus(enum.Enum):
    ACTIVE = "active"
    DISABLED = "disabled"


@dataclass(frozen=True)
class PlatformAdmin:
    """An administrator without secrets (what listings and the API show)."""

    id: UUID
    email: str
    name: str
    permissions: list[str]
    status: AdminStatus
    created_at: datetime
    updated_at: datetime
    last_sign_in_at: datetime | None


@dataclass(frozen=True)
class AdminCredentials:
    """What sign-in checks: read only by the sign-in path."""

    id: UUID
    status: AdminStatus
    password_hash: str
    totp_secret: bytes
    totp_key_version: int
    totp_last_used_step: int | None


@dataclass(frozen=True)
class NewAdmin:
    """A created (or reset) administrator with the secrets shown to the operator once."""

    admin: PlatformAdmin
    password: str | None
    totp_secret: str
    otpauth_uri: str


PLATFORM_ADMINS = Table("platform_admins", PlatformAdmin)
# The same entry shape as a tenant's audit log, in the platform's own table.
PLATFORM_AUDIT_LOG = Table("platform_audit_log", AuditEntry)


@dataclass(frozen=True)
class ExpiredTenant:
    """A deleted tenant whose retention period is over: only a purge is left for it."""

    id: UUID
    slug: str
    # None when a purge has begun (it set deleted_at to -infinity) and did not finish.
    deleted_at: datetime | None
