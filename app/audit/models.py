"""The audit log: one append-only entry per security event, per tenant."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from app.core.request_meta import RequestMeta
from app.core.tables import Ordering, Table

__all__ = [
    "AUDIT_LOG",
    "NEWEST_FIRST",
    "ActorKind",
    "AuditEntry",
    "AuditOutcome",
    "RequestMeta",
    "TenantAuditEntry",
]


class AuditOutcome(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"


class ActorKind(enum.Enum):
    USER = "user"
    ANONYMOUS = "anonymous"
    SYSTEM = "system"
    PLATFORM = "platform"


@dataclass(frozen=True)
class AuditEntry:
    id: UUID
    occurred_at: datetime
    actor_kind: ActorKind
    actor_id: UUID | None
    action: str
    target_type: str | None
    target_id: str | None
    outcome: AuditOutcome
    ip: str | None
    user_agent: str | None
    request_id: str | None
    metadata: dict[str, Any]


@dataclass(frozen=True)
class TenantAuditEntry(AuditEntry):
    """An entry of a tenant's log, which also names the platform administrator who acted
    as the user (break-glass impersonation), if one did."""

    impersonator_id: UUID | None = None


AUDIT_LOG = Table("audit_log", TenantAuditEntry)

# Both audit logs read newest first: what an administrator looks for.
NEWEST_FIRST = Ordering("t.occurred_at", "timestamptz", descending=True)
