"""Tenant lifecycle, run by platform administrators: provisioning, suspension.

Provisioning is one transaction bound to the new tenant's id and in the platform scope:
the tenant row, its system roles, an entry in the tenant's audit log and one in the
platform's, the idempotency key, and last its owner (with a password, or invited by mail).
A failure at any step leaves none of it. A request retried with the same idempotency key
returns the tenant the first one created; the same key with different input is a CONFLICT.
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass
from uuid import UUID, uuid4

import asyncpg

from app.accounts.invitations import invite_owner
from app.accounts.mailer import Mailer
from app.audit import service as audit
from app.audit.models import ActorKind
from app.audit.service import record
from app.auth.sessions import revoke_tenant_sessions
from app.core import validation
from app.core.actor import Operator, PlatformActor
from app.core.db import Database
from app.core.errors import Conflict, NotFound
from app.core.passwords import check_password_policy
from app.core.request_meta import RequestMeta
from app.core.security import TokenService
from app.core.settings import Settings
from app.core.store import Store
from app.core.validation import MISSING, Patch
from app.platform import queries
from app.platform.permissions import PlatformPermission
from app.rbac import service as rbac
from app.tenants import features
from app.tenants import queries as tenant_queries
from app.tenants.features import FeatureFlag
from app.tenants.models import Tenant, TenantStatus
from app.tenants.plans import check_plan
from app.tenants.resolution import forget, forget_slug
from app.tenants.service import (
    TenantAccess,
    check_slug,
    current_tenant,
    provision,
    remember,
    slug_taken,
)
from app.users.service import create_user


@dataclass(frozen=True)
class OwnerSpec:
    email: str
    display_name: str | None
    # None: the owner is invited by mail and chooses a password.
    password: str | None


@dataclass(frozen=True)
class Provisioned:
    tenant: Tenant
    # False when an earlier request with the same idempotency key created it.
    created: bool


async def create_tenant(
    database: Database,
    store: Store,
    mailer: Mailer,
    settings: Settings,
    meta: RequestMeta,
    *,
    actor: PlatformActor,
    slug: str,
    name: str,
    plan: str,
    owner: OwnerSpec,
    idempotency_key: str | None,
    reason: str | None,
) -> Provisioned:
    actor.require(PlatformPermission.TENANT_CREATE)
    slug = check_slug(slug)
    name = validation.text(name, field="name", max_length=200)
    plan_key = check_plan(plan).key
    email = validation.email(owner.email, field="owner.email")
    display_name = validation.text(
        owner.display_name if owner.display_name is not None else email.split("@", 1)[0],
        field="owner.displayName",
        max_length=200,
    )
    if owner.password is not None:
        check_password_policy(owner.password, field="owner.password")
    reason = None if reason is None else validation.text(reason, field="reason", max_length=500)
    key = (
        None
        if idempotency_key is None
        else validation.text(idempotency_key, field="idempotencyKey", max_length=200)
    )
    # What makes two requests "the same" for an idempotency key (never the password).
    digest = hashlib.sha256(
        json.dumps(
            [slug, name, plan_key, email.lower(), display_name, owner.password is None, reason]
        ).encode()
    ).digest()
    if key is not None:
        earlier = await _earlier(database, actor, key, digest)
        if earlier is not None:
            return earlier

    tenant_id = uuid4()
    details = {"slug": slug, "plan": plan_key, "owner_invited": owner.password is None}
    try:
        async with database.transaction(tenant_id, platform=True) as session:
            tenant = await provision(session, tenant_id, slug=slug, name=name, plan=plan_key)
            for platform in (False, True):
                await record(
                    session,
                    meta,
                    action="tenant.created",
                    actor_id=actor.admin_id,
                    actor_kind=ActorKind.PLATFORM,
                    target_type="tenant",
                    target_id=tenant_id,
                    metadata={**details, "reason": reason},
                    platform=platform,
                )
            if key is not None:
                await queries.insert_provisioning(session, actor.admin_id, key, digest, tenant_id)
            # Last: an invitation is mailed at once by the SMTP mailer, so every write that
            # could still fail comes before it.
            if owner.password is None:
                await invite_owner(
                    session,
                    mailer,
                    settings,
                    meta,
                    email=email,
                    display_name=display_name,
                    actor_id=actor.admin_id,
                    actor_kind=ActorKind.PLATFORM,
                )
            else:
                await create_user(
                    session,
                    email=email,
                    display_name=display_name,
                    password=owner.password,
                    role="owner",
                )
    except asyncpg.UniqueViolationError:
        # A concurrent retry with the same key may have won the race (its slug, or its key,
        # committed first): then answer as it did. Otherwise the slug is someone else's.
        earlier = None if key is None else await _earlier(database, actor, key, digest)
        if earlier is not None:
            return earlier
        raise slug_taken(slug) from None
    # Requests naming the new slug (subdomain, X-Tenant) find it at once.
    await forget_slug(store, slug)
    return Provisioned(tenant, created=True)


async def _earlier(
    database: Database, actor: PlatformActor, key: str, digest: bytes
) -> Provisioned | None:
    async with database.transaction(None, readonly=True, platform=True) as session:
        found = await queries.provisioned(session, actor.admin_id, key)
    if found is None:
        return None
    earlier_digest, tenant_id = found
    if earlier_digest != digest:
        raise Conflict(
            "This idempotency key was used for a different request", field="idempotencyKey"
        )
    async with database.transaction(tenant_id, readonly=True) as session:
        return Provisioned(await current_tenant(session), created=False)


class Change(enum.Enum):
    SUSPEND = "suspend"
    REACTIVATE = "reactivate"
    DELETE = "delete"
    RESTORE = "restore"


@dataclass(frozen=True)
class _Transition:
    permission: PlatformPermission
    sources: frozenset[TenantStatus]
    target: TenantStatus
    action: str
    reason_required: bool


_ACTIVE, _SUSPENDED, _DELETED = TenantStatus.ACTIVE, TenantStatus.SUSPENDED, TenantStatus.DELETED
TRANSITIONS = {
    Change.SUSPEND: _Transition(
        PlatformPermission.TENANT_SUSPEND, frozenset({_ACTIVE}), _SUSPENDED, "suspended", True
    ),
    Change.REACTIVATE: _Transition(
        PlatformPermission.TENANT_SUSPEND, frozenset({_SUSPENDED}), _ACTIVE, "reactivated", False
    ),
    Change.DELETE: _Transition(
        PlatformPermission.TENANT_DELETE,
        frozenset({_ACTIVE, _SUSPENDED}),
        _DELETED,
        "deleted",
        True,
    ),
    Change.RESTORE: _Transition(
        PlatformPermission.TENANT_DELETE, frozenset({_DELETED}), _ACTIVE, "restored", False
    ),
}


async def change_status(
    database: Database,
    tokens: TokenService,
    store: Store,
    settings: Settings,
    meta: RequestMeta,
    *,
    actor: PlatformActor,
    tenant_id: UUID,
    change: Change,
    reason: str | None,
) -> Tenant:
    """Suspend, reactivate, (soft-)delete or restore a tenant.

    Leaving `active` refuses the tenant's users from their next request on, ends every
    session of the tenant and drops its cached permissions. A deleted tenant can be restored
    within the retention period (`TENANTRY_TENANT_RETENTION_DAYS`), then only purged. A
    change to the status the tenant already has changes and records nothing.
    """
    rule = TRANSITIONS[change]
    actor.require(rule.permission)
    if rule.reason_required or reason is not None:
        reason = validation.text(reason or "", field="reason", max_length=500)
    async with database.transaction(tenant_id, platform=True) as session:
        tenant = await tenant_queries.current(session, lock=True)
        if tenant is None:
            raise NotFound("Tenant not found", field="id")
        if tenant.status is rule.target:
            return tenant
        if tenant.status not in rule.sources:
            raise Conflict(_refusal(tenant.status), field="id")
        metadata: dict[str, object] = {"reason": reason}
        if change is Change.RESTORE and not await tenant_queries.restorable(
            session, settings.tenant_retention_days
        ):
            raise Conflict(
                "The retention period of this deleted tenant is over; it can only be purged",
                field="id",
            )
        changed = await tenant_queries.set_status(session, rule.target)
        assert changed is not None
        if tenant.status is _ACTIVE:
            reason_key = f"tenant_{rule.action}"
            metadata["sessions_ended"] = await revoke_tenant_sessions(
                session, tokens, store, reason=reason_key
            )
        # Every server sees the new status at once through a shared store (else within
        # STATUS_TTL_SECONDS), and nobody's permissions are served from the cache any more.
        access = TenantAccess.of(changed)
        session.after_commit(lambda: remember(store, tenant_id, access))
        rbac.invalidate(session, store)
        for platform in (False, True):
            await record(
                session,
                meta,
                action=f"tenant.{rule.action}",
                actor_id=actor.admin_id,
                actor_kind=ActorKind.PLATFORM,
                target_type="tenant",
                target_id=tenant_id,
                metadata=metadata,
                platform=platform,
            )
    return changed


def _refusal(status: TenantStatus) -> str:
    if status is _DELETED:
        return "The tenant is deleted; restore it first"
    return f"The tenant is {status.value}"


async def update_tenant(
    database: Database,
    store: Store,
    meta: RequestMeta,
    *,
    actor: PlatformActor,
    tenant_id: UUID,
    name: Patch[str],
    plan: Patch[str],
    reason: str | None,
) -> Tenant:
    """Rename a tenant or move it to another plan (tenant:create). What does not change is
    not recorded; a deleted tenant is restored first."""
    actor.require(PlatformPermission.TENANT_CREATE)
    wanted: dict[str, str] = {}
    if name is not MISSING:
        wanted["name"] = validation.text(name, field="name", max_length=200)
    if plan is not MISSING:
        wanted["plan"] = check_plan(plan).key
    reason = None if reason is None else validation.text(reason, field="reason", max_length=500)
    async with database.transaction(tenant_id, platform=True) as session:
        tenant = await tenant_queries.current(session, lock=True)
        if tenant is None:
            raise NotFound("Tenant not found", field="id")
        if tenant.status is TenantStatus.DELETED:
            raise Conflict(_refusal(tenant.status), field="id")
        changes = {k: [getattr(tenant, k), v] for k, v in wanted.items() if getattr(tenant, k) != v}
        if not changes:
            return tenant
        updated = await tenant_queries.update(
            session, name=wanted.get("name"), plan=wanted.get("plan")
        )
        assert updated is not None
        if "plan" in changes:
            # Its request rate changes with the plan, on every server at once.
            access = TenantAccess.of(updated)
            session.after_commit(lambda: remember(store, tenant_id, access))
        for platform in (False, True):
            await record(
                session,
                meta,
                action="tenant.updated",
                actor_id=actor.admin_id,
                actor_kind=ActorKind.PLATFORM,
                target_type="tenant",
                target_id=tenant_id,
                metadata={"changes": changes, "reason": reason},
                platform=platform,
            )
    return updated


async def set_feature(
    database: Database,
    meta: RequestMeta,
    *,
    actor: PlatformActor,
    tenant_id: UUID,
    key: str,
    enabled: bool | None,
) -> list[FeatureFlag]:
    """Set (`enabled` True/False) or unset (None) a tenant's feature flag (tenant:create);
    returns the tenant's flags. A change is recorded in both audit logs; a no-op is not."""
    actor.require(PlatformPermission.TENANT_CREATE)
    key = features.check_key(key)
    async with database.transaction(tenant_id, platform=True) as session:
        tenant = await tenant_queries.current(session, lock=True)
        if tenant is None:
            raise NotFound("Tenant not found", field="id")
        if tenant.status is TenantStatus.DELETED:
            raise Conflict(_refusal(tenant.status), field="id")
        if enabled is None:
            before = await features.unset_flag(session, key)
        else:
            before = await features.set_flag(session, key, enabled)
        if before is not enabled:
            for platform in (False, True):
                await record(
                    session,
                    meta,
                    action="tenant.feature_set" if enabled is not None else "tenant.feature_unset",
                    actor_id=actor.admin_id,
                    actor_kind=ActorKind.PLATFORM,
                    target_type="tenant",
                    target_id=tenant_id,
                    metadata={"key": key, "before": before, "after": enabled},
                    platform=platform,
                )
        return await features.flags(session)


# Rows per delete: small enough that each transaction is short and holds few locks.
PURGE_BATCH_ROWS = 1000


@dataclass(frozen=True)
class Purged:
    # Rows deleted per table (the audit log's went with the tenant row).
    rows: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.rows.values())


async def purge_tenant(
    database: Database,
    store: Store,
    meta: RequestMeta,
    *,
    actor: PlatformActor | Operator,
    tenant_id: UUID,
    reason: str | None,
) -> Purged:
    """Delete every row of a deleted tenant in every tenant table, in batches of their own
    transactions, then the tenant row; the record of it stays in the platform audit log.

    The first step ends the retention period, so a restore cannot race the purge. A purge
    that stops half-way (a crash) is finished by running it again. The actor is an
    administrator holding tenant:delete, or the operator's retention job
    (`tenantry tenant purge-expired`, app/platform/retention.py), recorded as the system.
    """
    if isinstance(actor, PlatformActor):
        actor.require(PlatformPermission.TENANT_DELETE)
        actor_id, actor_kind = actor.admin_id, ActorKind.PLATFORM
    else:
        actor_id, actor_kind = None, ActorKind.SYSTEM
    reason = None if reason is None else validation.text(reason, field="reason", max_length=500)
    async with database.transaction(tenant_id) as session:
        tenant = await tenant_queries.current(session, lock=True)
        if tenant is None:
            raise NotFound("Tenant not found", field="id")
        if tenant.status is not TenantStatus.DELETED:
            raise Conflict("Only a deleted tenant can be purged; delete it first", field="id")
        await tenant_queries.close_retention(session)
        tables = await queries.purgeable_tables(session)
    rows: dict[str, int] = {}
    for table in tables:
        rows[table] = 0
        while True:
            async with database.transaction(tenant_id) as session:
                deleted = await queries.delete_batch(session, table, PURGE_BATCH_ROWS)
            rows[table] += deleted
            if deleted < PURGE_BATCH_ROWS:
                break
    async with database.transaction(tenant_id, platform=True) as session:
        rows["public.audit_log"] = await audit.count_entries(session)
        rows["public.tenants"] = await tenant_queries.delete(session)
        await record(
            session,
            meta,
            action="tenant.purged",
            actor_id=actor_id,
            actor_kind=actor_kind,
            target_type="tenant",
            target_id=tenant_id,
            metadata={"slug": tenant.slug, "reason": reason, "rows": rows},
            platform=True,
        )
    # Its slug may be taken again at once, and nothing cached of it is served any more.
    await forget(store, tenant_id, tenant.slug)
    return Purged(rows)
