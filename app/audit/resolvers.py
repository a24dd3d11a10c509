"""The auditLog query (`audit:read`, the rule of its entries)."""

from __future__ import annotations

import strawberry

from app.api.relations import connection
from app.audit.types import AUDIT_LISTING


@strawberry.type
class AuditQueries:
    audit_log = connection(
        AUDIT_LISTING, nullable=True, description="The tenant's audit log, newest first."
    )
