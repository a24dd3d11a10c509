"""SQL for the audit log: insert and read only (the server's role can do nothing else)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from app.core.db import Session

_COLUMNS = (
    "actor_kind, actor_id, action, target_type, target_id, outcome, ip, user_agent,"
    " request_id, metadata"
)
_VALUES = "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10"
# The tenant's log also names the platform administrator acting as the user, if any.
_INSERT_TENANT = (
    f"INSERT INTO audit_log (tenant_id, {_COLUMNS}, impersonator_id)"
    f" VALUES (app.current_tenant_id(), {_VALUES}, $11)"
)
_INSERT_PLATFORM = f"INSERT INTO platform_audit_log ({_COLUMNS}) VALUES ({_VALUES})"


async def insert(
    session: Session,
    *,
    platform: bool,
    actor_kind: str,
    actor_id: UUID | None,
    action: str,
    target_type: str | None,
    target_id: str | None,
    outcome: str,
    ip: str | None,
    user_agent: str | None,
    request_id: str | None,
    metadata: dict[str, Any],
) -> None:
    # The tenant's log takes the bound tenant; the platform's has no tenant column.
    # The impersonator comes from the transaction, not from the caller: no service can
    # forget it. (The platform's log has no such column; its actor is the administrator.)
    tenant = () if platform else (session.impersonator_id,)
    await session.execute(
        _INSERT_PLATFORM if platform else _INSERT_TENANT,
        actor_kind,
        actor_id,
        action,
        target_type,
        target_id,
        outcome,
        ip,
        user_agent,
        request_id,
        metadata,
        *tenant,
    )


async def count_entries(session: Session) -> int:
    """The bound tenant's audit entries."""
    return int(await session.fetchval("SELECT count(*) FROM audit_log"))
