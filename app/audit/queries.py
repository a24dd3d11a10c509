"""SQL for the audit log: insert and read only (the server's role can do nothing else)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from app.core.db import Session


async def insert(
    session: Session,
    *,
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
    await session.execute(
        "INSERT INTO audit_log (tenant_id, actor_kind, actor_id, action, target_type,"
        " target_id, outcome, ip, user_agent, request_id, metadata)"
        " VALUES (app.current_tenant_id(), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
    )
