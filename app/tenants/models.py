"""Tenants: the customer organisations every other row belongs to."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from app.core.tables import Table
from app.tasks.models import TaskStatus


class TenantStatus(enum.Enum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    DELETED = "deleted"


@dataclass(frozen=True)
class Tenant:
    id: UUID
    slug: str
    name: str
    status: TenantStatus
    plan: str
    mfa_required: bool
    created_at: datetime
    updated_at: datetime
    # Set while the tenant is deleted (restorable until the retention period ends).
    deleted_at: datetime | None
    # Settings its admins manage (updateTenantSettings); None: the server's default.
    session_lifetime_hours: int | None
    default_task_status: TaskStatus
    # Browser origins allowed to call the API on the tenant's own host (app/api/cors.py).
    cors_origins: list[str]


@dataclass(frozen=True)
class TenantRef:
    """What sign-in may learn about a slug before it is bound to that tenant."""

    id: UUID
    status: TenantStatus


TENANTS = Table("tenants", Tenant)
