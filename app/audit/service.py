"""Recording and reading security events. Every domain writes through `record`."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from app.audit import queries
from app.audit.models import ActorKind, AuditOutcome, RequestMeta
from app.core import telemetry
from app.core.db import Session

logger = logging.getLogger("tenantry.audit")

_USER_AGENT_MAX = 512
# Audit actions that are a sign-in step, and the method each stands for in the sign-in
# metric (tenantry_sign_ins_total); a failed second factor names its method in metadata.
_SIGN_IN_METHODS = {
    "auth.sign_in": "password",
    "auth.token_exchange": "external",
    "platform.sign_in": "platform",
    "mfa.totp.verified": "totp",
    "mfa.recovery_code.used": "recovery_code",
}
_MFA_METHODS = {"otp": "totp", "recovery": "recovery_code"}


async def record(
    session: Session,
    meta: RequestMeta,
    *,
    action: str,
    actor_id: UUID | None,
    outcome: AuditOutcome | str = AuditOutcome.SUCCESS,
    actor_kind: ActorKind | str | None = None,
    target_type: str | None = None,
    target_id: str | UUID | None = None,
    metadata: dict[str, Any] | None = None,
    platform: bool = False,
) -> None:
    """Append one entry to the audit log of the session's tenant or, with `platform`, to the
    platform audit log (a platform-scoped session). The actor is a user, or with `platform`
    a platform administrator, unless `actor_kind` says otherwise.

    It is written in the caller's transaction: an action that rolls back leaves no entry
    claiming it happened. Failures that must be recorded although the action failed (a
    wrong password) are recorded in a transaction of their own by the caller.
    """
    if actor_kind is None:
        actor_kind = ActorKind.PLATFORM if platform else ActorKind.USER
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
        extra={
            "event": "audit",
            "action": action,
            "audit_outcome": outcome.value,
            "actor_kind": actor_kind.value,
            "actor_id": None if actor_id is None else str(actor_id),
            "target": None if target_type is None else f"{target_type}:{target_id}",
            "platform_log": platform,
        },
    )
    method = _SIGN_IN_METHODS.get(action)
    details = metadata or {}
    if action == "mfa.verification.failed" and details.get("purpose") == "sign_in":
        method = _MFA_METHODS.get(str(details.get("method")), "mfa")
    if method is not None:
        result = outcome.value.lower()

        async def count() -> None:
            telemetry.sign_in(method, result)

        # Counted once recorded for good: an entry rolled back with its action is not one.
        session.after_commit(count)


async def count_entries(session: Session) -> int:
    """How many audit entries the bound tenant has (they go with the tenant's row)."""
    return await queries.count_entries(session)
