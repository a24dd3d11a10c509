"""Break-glass impersonation: a platform administrator acts as one user of a tenant.

`impersonate` (tenant:impersonate, with a reason) opens a session of the user that names the
administrator and their platform session, and issues a tenant access token for it carrying
an RFC 8693 `act` claim. The token is short (TENANTRY_IMPERSONATION_TTL, never past the
platform session) and has no refresh token. Under it:

- every request checks, besides everything a tenant token needs, that the platform session
  is live, the administrator active and still holding tenant:impersonate, and the
  impersonation session live (`impersonation_live`, in the authentication middleware), so
  signing the administrator out, disabling them or taking the permission away ends it at
  the next request;
- every GraphQL operation is recorded in the tenant's audit log before it runs
  (`record_operation`), and every entry written by the operation names the administrator
  (`audit_log.impersonator_id`);
- credentials, sessions, membership and the tenant's security settings are refused
  (`@refusedWhileImpersonating` on the fields, `refuse_impersonation` in the services).

Owners cannot be impersonated: they hold the tenant's last-resort powers, and the people
who can reach them are the people they answer to, not the platform's support.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from app.api.context import OperationSummary
from app.audit.models import ActorKind
from app.audit.service import record
from app.auth import sessions
from app.core import validation
from app.core.actor import PlatformActor
from app.core.db import Database, Session
from app.core.errors import Forbidden, Invalid, NotFound, TenantSuspended, Unauthenticated
from app.core.request_meta import RequestMeta
from app.core.security import AccessClaims, Impersonator, IssuedToken, TokenService
from app.core.settings import Settings
from app.platform import queries
from app.platform.permissions import PlatformPermission, known
from app.platform.service import AMR
from app.rbac import service as rbac
from app.tenants import queries as tenant_queries
from app.tenants.models import Tenant, TenantStatus
from app.users import service as users
from app.users.models import User, UserStatus

REASON_MAX_LENGTH = 500
_NO_USER = "No active user with this id or email in the tenant"


@dataclass(frozen=True)
class Impersonation:
    """A started impersonation: the token and whom it acts as, for whom."""

    access_token: IssuedToken
    tenant: Tenant
    user: User
    admin_id: UUID
    session_id: UUID


async def impersonate(
    database: Database,
    tokens: TokenService,
    settings: Settings,
    meta: RequestMeta,
    *,
    actor: PlatformActor,
    tenant_id: UUID,
    user_id: UUID | None,
    email: str | None,
    reason: str,
) -> Impersonation:
    """Start acting as a user of an active tenant (tenant:impersonate). The user is named by
    id or by email, exactly one; an unknown, invited or disabled user, or one of another
    tenant, is the same NOT_FOUND. Recorded in the platform's and the tenant's audit logs."""
    actor.require(PlatformPermission.TENANT_IMPERSONATE)
    reason = validation.text(reason, field="reason", max_length=REASON_MAX_LENGTH)
    if (user_id is None) == (email is None):
        raise Invalid("Name the user by `userId` or by `email`, not both", field="userId")
    # Bound to the tenant (its rows only) and in the platform scope (the administrator's
    # session and the platform audit log), like provisioning. The operation's own session
    # stays in the tenant scope only.
    async with database.transaction(
        tenant_id, platform=True, impersonator_id=actor.admin_id
    ) as session:
        tenant = await tenant_queries.current(session)
        if tenant is None:
            raise NotFound("Tenant not found", field="tenantId")
        if tenant.status is not TenantStatus.ACTIVE:
            raise TenantSuspended(f"The tenant is {tenant.status.value}", field="tenantId")
        user = await _active_user(session, user_id, email)
        if (await rbac.resolve(session, user.id)).is_owner:
            raise Forbidden("The tenant's owners cannot be impersonated", field="userId")
        platform_expires = await queries.session_expires_at(session, actor.session_id)
        if platform_expires is None:
            raise Unauthenticated("The platform session has ended; sign in again")
        now = datetime.now(UTC)
        expires_at = min(
            now + timedelta(seconds=settings.impersonation_token_ttl_seconds), platform_expires
        )
        ttl = int((expires_at - now).total_seconds())
        if ttl < 1:
            raise Unauthenticated("The platform session has ended; sign in again")
        opened = await sessions.start_impersonation(
            session,
            meta,
            user_id=user.id,
            impersonator_id=actor.admin_id,
            platform_session_id=actor.session_id,
            amr=AMR,
            expires_at=now + timedelta(seconds=ttl),
        )
        admin = await queries.by_id(session, actor.admin_id)
        assert admin is not None
        details: dict[str, object] = {
            "reason": reason,
            "tenant_id": str(tenant_id),
            "user_id": str(user.id),
            "user_email": user.email,
            "admin_id": str(actor.admin_id),
            "admin_email": admin.email,
            "session_id": str(opened.id),
            "platform_session_id": str(actor.session_id),
            "expires_at": opened.expires_at.isoformat(),
        }
        for platform in (False, True):
            await record(
                session,
                meta,
                action="impersonation.started",
                actor_id=actor.admin_id,
                actor_kind=ActorKind.PLATFORM,
                target_type="user",
                target_id=user.id,
                metadata=details,
                platform=platform,
            )
        token = tokens.issue_impersonation_token(
            user_id=user.id,
            tenant_id=tenant_id,
            session_id=opened.id,
            impersonator=Impersonator(actor.admin_id, actor.session_id),
            amr=AMR,
            auth_time=int(now.timestamp()),
            ttl_seconds=ttl,
        )
    return Impersonation(token, tenant, user, actor.admin_id, opened.id)


async def _active_user(session: Session, user_id: UUID | None, email: str | None) -> User:
    if user_id is None:
        assert email is not None
        found = (await users.look_up(session, email)).found
        if found is None:
            raise NotFound(_NO_USER, field="email")
        user_id = found.id
    try:
        user = await users.get_user(session, user_id, field="userId")
    except NotFound:
        raise NotFound(_NO_USER, field="userId" if email is None else "email") from None
    if user.status is not UserStatus.ACTIVE:
        raise NotFound(_NO_USER, field="userId" if email is None else "email")
    return user


async def impersonation_live(database: Database, claims: AccessClaims) -> bool:
    """Whether an impersonation token may still be used: its administrator is active in a
    live platform session and holds tenant:impersonate now, and its session of the user is
    live. One short transaction per request, like a platform operation's own check."""
    acting = claims.impersonator
    assert acting is not None
    async with database.transaction(claims.tenant_id, readonly=True, platform=True) as session:
        held = await queries.live_session_permissions(
            session, acting.platform_session_id, acting.admin_id
        )
        if held is None or PlatformPermission.TENANT_IMPERSONATE not in known(held):
            return False
        return await sessions.impersonation_live(
            session,
            session_id=claims.session_id,
            user_id=claims.user_id,
            impersonator_id=acting.admin_id,
            platform_session_id=acting.platform_session_id,
        )


async def record_operation(
    database: Database, claims: AccessClaims, meta: RequestMeta, operation: OperationSummary
) -> None:
    """One `impersonation.operation` entry in the tenant's log, naming the user and the
    administrator, committed before the operation runs: nothing runs unrecorded, refused
    and failed attempts included. (The operation's own entries follow in its transaction.)"""
    acting = claims.impersonator
    assert acting is not None
    async with database.transaction(claims.tenant_id, impersonator_id=acting.admin_id) as session:
        await record(
            session,
            meta,
            action="impersonation.operation",
            actor_id=claims.user_id,
            target_type="operation",
            target_id=(operation.name or operation.kind)[:200],
            metadata={
                "operation": operation.kind,
                "name": operation.name,
                "fields": list(operation.fields),
                "session_id": str(claims.session_id),
                "platform_session_id": str(acting.platform_session_id),
            },
        )
