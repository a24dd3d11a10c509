"""Creating tenants and resolving them by slug."""

from __future__ import annotations

import re
from dataclasses import dataclass
from uuid import UUID, uuid4

import asyncpg

from app.audit.service import record
from app.core import validation
from app.core.actor import Actor, refuse_impersonation
from app.core.db import Database, Session
from app.core.errors import Conflict, Invalid, NotFound
from app.core.request_meta import RequestMeta
from app.core.store import Store, StoreKey, tenant_key
from app.core.validation import MISSING, Patch
from app.rbac import service as rbac
from app.rbac.permissions import Permission
from app.tasks.models import TaskStatus
from app.tenants import queries
from app.tenants.models import Tenant, TenantRef, TenantStatus

_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# Slugs become subdomains and URL segments; these would collide with our own.
RESERVED_SLUGS = frozenset(
    {"admin", "api", "app", "auth", "graphql", "internal", "platform", "static", "status", "www"}
)


def check_slug(slug: str) -> str:
    normalised = slug.strip().lower()
    if not _SLUG.match(normalised):
        raise Invalid(
            "`slug` must be 1-63 lowercase letters, digits or hyphens, "
            "not starting or ending with a hyphen",
            field="slug",
        )
    if normalised in RESERVED_SLUGS:
        raise Invalid(f"`slug` {normalised!r} is reserved", field="slug")
    return normalised


async def create_tenant(
    database: Database, *, slug: str, name: str, plan: str = "free", tenant_id: UUID | None = None
) -> Tenant:
    """Create a tenant with its system roles in one transaction, bound to the new tenant's id.

    The tenants policy admits a row whose id is the bound tenant, so the server's role
    can create a tenant without any way to see or touch the others.
    """
    slug = check_slug(slug)
    name = validation.text(name, field="name", max_length=200)
    new_id = tenant_id or uuid4()
    try:
        async with database.transaction(new_id) as session:
            tenant = await queries.insert(session, new_id, slug, name, plan)
            await rbac.provision(session)
            return tenant
    except asyncpg.UniqueViolationError:
        raise Conflict(f"The slug {slug!r} is already taken", field="slug") from None


async def lookup_slug(database: Database, slug: str) -> TenantRef | None:
    """Id and status of the tenant with this slug, read without binding any tenant."""
    async with database.transaction(None, readonly=True) as session:
        return await queries.lookup_slug(session, slug.strip().lower())


# How long a server trusts a tenant's status it has read: a suspension reaches every request
# at once through the shared store, and within this many seconds where it cannot (a store
# entry lost, another process's memory).
STATUS_TTL_SECONDS = 5


def _status_key(tenant_id: UUID) -> StoreKey:
    return tenant_key(tenant_id, "status")


async def is_active(database: Database, store: Store, tenant_id: UUID) -> bool:
    """Whether the tenant's users may use it now (checked on every signed-in request)."""
    cached = await store.get(_status_key(tenant_id))
    if cached is None:
        async with database.transaction(tenant_id, readonly=True) as session:
            status = await queries.status(session)
        cached = "missing" if status is None else status.value
        await remember_status(store, tenant_id, cached)
    return bool(cached == TenantStatus.ACTIVE.value)


async def remember_status(store: Store, tenant_id: UUID, status: str) -> None:
    await store.put(_status_key(tenant_id), status, ttl_seconds=STATUS_TTL_SECONDS)


async def current_tenant(session: Session) -> Tenant:
    """The tenant the session is bound to."""
    tenant = await queries.current(session)
    if tenant is None:
        raise NotFound("Tenant not found")
    return tenant


async def mfa_required(session: Session) -> bool:
    """Whether the session's tenant requires a second factor of every user."""
    return bool(await queries.mfa_required(session))


async def set_mfa_required(
    session: Session, meta: RequestMeta, *, actor: Actor, required: bool
) -> Tenant:
    """Require (or stop requiring) a second factor of every user (`tenant:settings`)."""
    refuse_impersonation(session, "Changing the tenant's settings")
    actor.require(Permission.TENANT_SETTINGS)
    tenant = await queries.set_mfa_required(session, required)
    if tenant is None:
        raise NotFound("Tenant not found")
    await record(
        session,
        meta,
        action="tenant.mfa_required_changed",
        actor_id=actor.user_id,
        target_type="tenant",
        target_id=tenant.id,
        metadata={"mfa_required": required},
    )
    return tenant


MAX_SESSION_LIFETIME_HOURS = 2160  # 90 days


@dataclass(frozen=True)
class SettingsChanges:
    mfa_required: Patch[bool] = MISSING
    # None: back to the server's default.
    session_lifetime_hours: Patch[int | None] = MISSING
    default_task_status: Patch[TaskStatus] = MISSING


async def update_settings(
    session: Session, meta: RequestMeta, *, actor: Actor, changes: SettingsChanges
) -> Tenant:
    """Change the tenant's settings (`tenant:settings`); one audit entry names every change,
    none when nothing changes."""
    refuse_impersonation(session, "Changing the tenant's settings")
    actor.require(Permission.TENANT_SETTINGS)
    hours = changes.session_lifetime_hours
    if hours is not MISSING and hours is not None and not 1 <= hours <= MAX_SESSION_LIFETIME_HOURS:
        raise Invalid(
            f"`sessionLifetimeHours` must be between 1 and {MAX_SESSION_LIFETIME_HOURS}",
            field="sessionLifetimeHours",
        )
    tenant = await current_tenant(session)
    wanted = validation.given(
        {
            "mfa_required": changes.mfa_required,
            "session_lifetime_hours": hours,
            "default_task_status": changes.default_task_status,
        }
    )
    diff = {k: v for k, v in wanted.items() if getattr(tenant, k) != v}
    if not diff:
        return tenant
    stored = {k: v.value if isinstance(v, TaskStatus) else v for k, v in diff.items()}
    updated = await queries.update_settings(session, stored)
    if updated is None:
        raise NotFound("Tenant not found")
    await record(
        session,
        meta,
        action="tenant.settings_changed",
        actor_id=actor.user_id,
        target_type="tenant",
        target_id=tenant.id,
        metadata={"changes": {k: [_plain(getattr(tenant, k)), _plain(v)] for k, v in diff.items()}},
    )
    return updated


def _plain(value: object) -> object:
    return value.value if isinstance(value, TaskStatus) else value


async def session_lifetime_seconds(session: Session, default: int) -> int:
    """How long a new session of the bound tenant lasts: its setting, else `default`."""
    hours = await queries.session_lifetime_hours(session)
    return default if hours is None else hours * 3600


async def default_task_status(session: Session) -> TaskStatus:
    value = await queries.default_task_status(session)
    return TaskStatus.TODO if value is None else TaskStatus(value)
