"""Recording and reading security events. Every domain writes through `record`."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from app.audit import queries
from app.audit.models import ActorKind, AuditOutcome, RequestMeta
from app.core.db import Session

logger = logging.getLogger("tenantry.audit")

_USER_AGENT_MAX = 512


async def record(
    session: Session,
    meta: RequestMeta,
    *,
    action: str,
    actor_id: UUID | None,
    outcome: AuditOutcome | str = AuditOutcome.SUCCESS,
    actor_kind: ActorKind | str = ActorKind.USER,
    target_type: str | None = None,
    target_id: str | UUID | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Append one entry to the audit log of the session's tenant.

    It is written in the caller's transaction: an action that rolls back leaves no entry
    claiming it happened. Failures that must be recorded although the action failed (a
    wrong password) are recorded in a transaction of their own by the caller.
    """
    await _write(
        session,
        meta,
        platform=False,
        action=action,
        actor_id=actor_id,
        outcome=outcome,
        actor_kind=actor_kind,
        target_type=target_type,
        target_id=target_id,
        metadata=metadata,
    )


async def record_platform(
    session: Session,
    meta: RequestMeta,
    *,
    action: str,
    actor_id: UUID | None,
    outcome: AuditOutcome | str = AuditOutcome.SUCCESS,
    actor_kind: ActorKind | str = ActorKind.PLATFORM,
    target_type: str | None = None,
    target_id: str | UUID | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Append one entry to the platform audit log (a platform-scoped session), in the
    caller's transaction like `record`."""
    await _write(
        session,
        meta,
        platform=True,
        action=action,
        actor_id=actor_id,
        outcome=outcome,
        actor_kind=actor_kind,
        target_type=target_type,
        target_id=target_id,
        metadata=metadata,
    )


async def _write(
    session: Session,
    meta: RequestMeta,
    *,
    platform: bool,
    action: str,
    actor_id: UUID | None,
    outcome: AuditOutcome | str,
    actor_kind: ActorKind | str,
    target_type: str | None,
    target_id: str | UUID | None,
    metadata: dict[str, Any] | None,
) -> None:
    outcome = AuditOutcome(outcome)
    actor_kind = ActorKind(actor_kind)
    # Without an id only the system (an operator's command) is anyone in particular.
    if actor_id is None and actor_kind is not ActorKind.SYSTEM:
        actor_kind = ActorKind.ANONYMOUS
    await queries.insert(
        session,
        platform=platform,
        actor_kind=actor_kind.value,
        actor_id=actor_id,
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        outcome=outcome.value,
        ip=meta.ip,
        user_agent=meta.user_agent[:_USER_AGENT_MAX],
        request_id=meta.request_id,
        metadata=metadata or {},
    )
    logger.info(
        "audit%s %s %s actor=%s target=%s:%s request=%s",
        " platform" if platform else "",
        action,
        outcome.value,
        actor_id,
        target_type,
        target_id,
        meta.request_id,
    )
