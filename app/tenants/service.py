"""Creating tenants and resolving them by slug."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from uuid import UUID, uuid4

import asyncpg

from app.audit.service import record
from app.core import telemetry, validation
from app.core.actor import Actor, refuse_impersonation
from app.core.db import Database, Session
from app.core.errors import Conflict, Invalid, NotFound
from app.core.ratelimit import PlanRates
from app.core.request_meta import RequestMeta
from app.core.store import Store, StoreKey, tenant_key
from app.core.validation import MISSING, Patch
from app.rbac import service as rbac
from app.rbac.permissions import Permission
from app.tasks.models import TaskStatus
from app.tenants import queries
from app.tenants.models import Tenant, TenantRef, TenantStatus
from app.tenants.plans import plan_of

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
            return await provision(session, new_id, slug=slug, name=name, plan=plan)
    except asyncpg.UniqueViolationError:
        raise slug_taken(slug) from None


async def provision(
    session: Session, tenant_id: UUID, *, slug: str, name: str, plan: str
) -> Tenant:
    """The tenant row and its system roles, in a transaction bound to `tenant_id` (checked
    input; a taken slug raises asyncpg's UniqueViolationError, see `slug_taken`)."""
    started = time.perf_counter()
    tenant = await queries.insert(session, tenant_id, slug, name, plan)
    await rbac.provision(session)

    async def provisioned() -> None:
        # Until the commit: the rest of the transaction (the owner's account) is part of it.
        telemetry.provisioned(time.perf_counter() - started)

    session.after_commit(provisioned)
    return tenant


def slug_taken(slug: str) -> Conflict:
    return Conflict(f"The slug {slug!r} is already taken", field="slug")


def canonical_name(name: str) -> UUID | str:
    """The one form of a tenant name that lookups and every count keyed on a tenant use: an
    id in any spelling (hyphens or none, braces, `urn:uuid:`, any case) is that UUID;
    anything else is a slug, trimmed and lower-cased."""
    cleaned = name.strip()
    try:
        return UUID(cleaned)
    except ValueError:
        return cleaned.lower()


async def lookup_slug(database: Database, slug: str) -> TenantRef | None:
    """Id and status of the tenant with this slug, read without binding any tenant."""
    async with database.transaction(None, readonly=True) as session:
        return await queries.lookup_slug(session, slug.strip().lower())


async def tenant_ids(database: Database) -> list[UUID]:
    """Every tenant's id, for operator jobs that visit each tenant in turn."""
    async with database.transaction(None, readonly=True, platform=True) as session:
        return await queries.ids(session)


async def lookup(database: Database, name: str) -> TenantRef | None:
    """Id and status of the tenant a name stands for: its id, or its slug."""
    tenant_id = canonical_name(name)
    if not isinstance(tenant_id, UUID):
        return await lookup_slug(database, tenant_id)
    # Bound to the id itself: row-level security shows that tenant's row, or none.
    async with database.transaction(tenant_id, readonly=True) as session:
        status = await queries.status(session)
    return None if status is None else TenantRef(tenant_id, status)


# How long a server trusts what it has read of a tenant (status, plan): a lifecycle change
# reaches every request at once through the shared store, and within this many seconds
# where it cannot (a store entry lost, another process's memory).
STATUS_TTL_SECONDS = 5


@dataclass(frozen=True)
class TenantAccess:
    """What every signed-in request needs of its tenant before anything runs: whether it may
    be used at all, and its plan's rates. Cached by tenant id."""

    status: str  # a TenantStatus value, or "missing" (purged)
    plan: str | None

    @property
    def active(self) -> bool:
        return self.status == TenantStatus.ACTIVE.value

    @property
    def rates(self) -> PlanRates:
        """The plan's request, per-user and cost rates (app/api/fairness.py applies them)."""
        return plan_of(self.plan).rates

    @classmethod
    def of(cls, tenant: Tenant | None) -> TenantAccess:
        if tenant is None:
            return cls("missing", None)
        return cls(tenant.status.value, tenant.plan)

    @classmethod
    def cached(cls, value: object) -> TenantAccess | None:
        """The access `remember` stored (a value read from `access_key`); None if absent."""
        if not isinstance(value, dict):
            return None
        return cls(str(value["status"]), value.get("plan"))


def access_key(tenant_id: UUID) -> StoreKey:
    """Where a tenant's access is cached; read together with the request's session on every
    signed-in request (app/auth/revocation.py)."""
    return tenant_key(tenant_id, "access")


async def read_access(session: Session) -> TenantAccess:
    """The bound tenant's access, from the database."""
    return TenantAccess.of(await queries.current(session))


async def tenant_access(database: Database, store: Store, tenant_id: UUID) -> TenantAccess:
    """The tenant's status and plan, cached for `STATUS_TTL_SECONDS`."""
    access = TenantAccess.cached(await store.get(access_key(tenant_id)))
    telemetry.cache("tenant_access", hit=access is not None)
    if access is None:
        async with database.transaction(tenant_id, readonly=True) as session:
            access = await read_access(session)
        await remember(store, tenant_id, access)
    return access


async def forget_access(store: Store, tenant_id: UUID) -> None:
    await store.delete(access_key(tenant_id))


async def remember(store: Store, tenant_id: UUID, access: TenantAccess) -> None:
    """Publish a tenant's new status or plan (after its change committed)."""
    await store.put(
        access_key(tenant_id),
        {"status": access.status, "plan": access.plan},
        ttl_seconds=STATUS_TTL_SECONDS,
    )


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
# The database bounds the list too (sql/migrations/0011.tenant-cors-origins.sql).
MAX_CORS_ORIGINS = 20


@dataclass(frozen=True)
class SettingsChanges:
    mfa_required: Patch[bool] = MISSING
    # None: back to the server's default.
    session_lifetime_hours: Patch[int | None] = MISSING
    default_task_status: Patch[TaskStatus] = MISSING
    # The whole list (an empty one allows no origin beyond the server's).
    cors_origins: Patch[list[str]] = MISSING


async def update_settings(
    session: Session, meta: RequestMeta, *, actor: Actor, store: Store, changes: SettingsChanges
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
    origins = changes.cors_origins
    if origins is not MISSING:
        origins = validation.origins(origins, field="corsOrigins", max_count=MAX_CORS_ORIGINS)
    tenant = await current_tenant(session)
    wanted = validation.given(
        {
            "mfa_required": changes.mfa_required,
            "session_lifetime_hours": hours,
            "default_task_status": changes.default_task_status,
            "cors_origins": origins,
        }
    )
    diff = {k: v for k, v in wanted.items() if getattr(tenant, k) != v}
    if not diff:
        return tenant
    stored = {k: v.value if isinstance(v, TaskStatus) else v for k, v in diff.items()}
    updated = await queries.update_settings(session, stored)
    if updated is None:
        raise NotFound("Tenant not found")
    if "cors_origins" in diff:
        # After the commit: a request meanwhile would cache the old list again.
        session.after_commit(lambda: forget_cors_origins(store, tenant.id))
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


# How long a server trusts what it has read of a tenant's allowed origins. A change drops
# the entry once it commits: every process sees that at once through Redis; in process
# memory, other processes within this many seconds, as does a request that read the old
# list just before the commit and stores it just after.
CORS_ORIGINS_TTL_SECONDS = 60


def _cors_key(tenant_id: UUID) -> StoreKey:
    return tenant_key(tenant_id, "cors-origins")


async def cors_origins(database: Database, store: Store, tenant_id: UUID) -> frozenset[str]:
    """The browser origins the tenant allows (none for a tenant that no longer exists), from
    the store when cached there: asked by requests from origins the server does not list."""
    cached = await store.get(_cors_key(tenant_id))
    telemetry.cache("tenant_cors_origins", hit=isinstance(cached, list))
    if not isinstance(cached, list):
        async with database.transaction(tenant_id, readonly=True) as session:
            cached = await queries.cors_origins(session) or []
        await store.put(_cors_key(tenant_id), cached, ttl_seconds=CORS_ORIGINS_TTL_SECONDS)
    return frozenset(cached)


async def forget_cors_origins(store: Store, tenant_id: UUID) -> None:
    await store.delete(_cors_key(tenant_id))


async def session_lifetime_seconds(session: Session, default: int) -> int:
    """How long a new session of the bound tenant lasts: its setting, else `default`."""
    hours = await queries.session_lifetime_hours(session)
    return default if hours is None else hours * 3600


async def default_task_status(session: Session) -> TaskStatus:
    value = await queries.default_task_status(session)
    return TaskStatus.TODO if value is None else TaskStatus(value)
