"""Creating tenants and resolving them by slug."""

from __future__ import annotations

import re
from uuid import UUID, uuid4

import asyncpg

from app.audit.service import record
from app.core import validation
from app.core.actor import Actor
from app.core.db import Database, Session
from app.core.errors import Conflict, Invalid, NotFound
from app.core.request_meta import RequestMeta
from app.core.store import Store, StoreKey, tenant_key
from app.rbac import service as rbac
from app.rbac.permissions import Permission
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
