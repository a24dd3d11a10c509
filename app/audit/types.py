"""GraphQL types of the audit logs: a tenant's, and the platform's (app/platform)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import strawberry
from strawberry.scalars import JSON

from app.api.permissions import Rule, needs
from app.api.relations import Argument, Listing, listing
from app.api.relay import Node
from app.audit.models import AUDIT_LOG, NEWEST_FIRST, ActorKind, AuditOutcome
from app.core.tables import Filter, Table
from app.rbac.permissions import Permission

strawberry.enum(AuditOutcome, description="How a recorded action ended.")
strawberry.enum(ActorKind, description="What kind of principal acted.")


@strawberry.type
class AuditEntryFields:
    """The fields both audit logs share (one entry shape, app/audit/models.py)."""

    occurred_at: datetime = strawberry.field(description="When it happened.")
    actor_kind: ActorKind = strawberry.field(description="Who acted: a user, anonymous, ...")
    actor_id: strawberry.Private[Any]
    action: str = strawberry.field(description="What happened, e.g. `auth.sign_in`.")
    target_type: str | None = strawberry.field(description="Kind of object acted on.")
    target_id: str | None = strawberry.field(description="Id of the object acted on.")
    outcome: AuditOutcome = strawberry.field(description="success, failure or denied.")
    ip: str | None = strawberry.field(description="Client address.")
    user_agent: str | None = strawberry.field(description="Client user agent.")
    request_id: str | None = strawberry.field(description="The request's X-Request-ID.")
    metadata: JSON = strawberry.field(description="Details of the event (no secrets).")


@strawberry.type(description="One recorded security event of the tenant (append-only).")
class AuditLogEntry(Node, AuditEntryFields):
    table: ClassVar[Table[Any]] = AUDIT_LOG
    read_rule: ClassVar[Rule | None] = needs(Permission.AUDIT_READ)

    impersonator_id: strawberry.Private[Any]

    @strawberry.field(description="The acting user's id (raw UUID), if a user acted.")
    def actor_user_id(self) -> strawberry.ID | None:
        return None if self.actor_id is None else strawberry.ID(str(self.actor_id))

    @strawberry.field(
        description="The platform administrator (raw UUID) who acted as the user through "
        "break-glass impersonation; null when the user acted themself. The "
        "`impersonation.started` entry names the administrator's email and reason."
    )
    def impersonator_admin_id(self) -> strawberry.ID | None:
        return None if self.impersonator_id is None else strawberry.ID(str(self.impersonator_id))


def _action(action: str | None) -> tuple[Filter, ...]:
    return () if action is None else (("action", action),)


def audit_listing(entry_type: type[Any]) -> Listing:
    """How both audit logs (the tenant's, the platform's) are listed: newest first, optionally
    only one action."""
    return listing(
        entry_type,
        order=NEWEST_FIRST,
        arguments=[Argument("action", str, "Only entries of this action.")],
        filters=_action,
    )


AUDIT_LISTING = audit_listing(AuditLogEntry)
