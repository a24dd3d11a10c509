"""The auditLog query (`audit:read`), and the connection both audit logs are read through."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

import strawberry

from app.api.context import Info
from app.api.permissions import requires
from app.api.relay import After, Connection, First, TableBacked, table_connection
from app.audit.models import AUDIT_ORDERINGS
from app.audit.types import AuditLogEntry
from app.core.tables import Filter
from app.rbac.permissions import Permission

NEWEST_FIRST = replace(AUDIT_ORDERINGS["OCCURRED_AT"], descending=True)

ActionFilter = Annotated[
    str | None, strawberry.argument(description="Only entries of this action.")
]


async def audit_connection(
    info: Info,
    entry_type: type[TableBacked],
    *,
    first: int | None,
    after: str | None,
    action: str | None,
) -> Connection[Any]:
    """A page of an audit log (the tenant's or the platform's), newest first."""
    filters: tuple[Filter, ...] = () if action is None else (("action", action),)
    return await table_connection(
        info, entry_type, ordering=NEWEST_FIRST, first=first, after=after, filters=filters
    )


@strawberry.type
class AuditQueries:
    @strawberry.field(
        description="The tenant's audit log, newest first.",
        extensions=requires(Permission.AUDIT_READ),
    )
    async def audit_log(
        self, info: Info, first: First = None, after: After = None, action: ActionFilter = None
    ) -> Connection[AuditLogEntry]:
        return await audit_connection(info, AuditLogEntry, first=first, after=after, action=action)
