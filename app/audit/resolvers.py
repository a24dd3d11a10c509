"""The auditLog query (`audit:read`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import strawberry

from app.api.context import Info
from app.api.permissions import requires
from app.api.relay import After, Connection, First, table_connection
from app.audit.models import AUDIT_ORDERINGS
from app.audit.types import AuditLogEntry
from app.core.tables import Filter
from app.rbac.permissions import Permission

NEWEST_FIRST = replace(AUDIT_ORDERINGS["OCCURRED_AT"], descending=True)


@strawberry.type
class AuditQueries:
    @strawberry.field(
        description="The tenant's audit log, newest first.",
        extensions=requires(Permission.AUDIT_READ),
    )
    async def audit_log(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        action: Annotated[
            str | None, strawberry.argument(description="Only entries of this action.")
        ] = None,
    ) -> Connection[AuditLogEntry]:
        filters: tuple[Filter, ...] = () if action is None else (("action", action),)
        return await table_connection(
            info,
            AuditLogEntry,
            ordering=NEWEST_FIRST,
            first=first,
            after=after,
            filters=filters,
        )
