"""Which tenant a request names: its slug or id, resolved (and cached) to the tenant's id.

A request can name its tenant three ways: the signed-in user's token (its tenant claim),
an `X-Tenant` header (slug or id) and the host's subdomain under TENANTRY_BASE_DOMAIN.
app/api/middleware.py compares them; this module resolves names and records mismatches.
"""

from __future__ import annotations

from uuid import UUID

from app.api.context import NamedTenant, Principal
from app.audit.models import AuditOutcome
from app.audit.service import record
from app.core import telemetry
from app.core.db import Database
from app.core.errors import Invalid, TenantMismatch
from app.core.request_meta import RequestMeta
from app.core.store import Store, StoreKey, platform_key
from app.tenants.service import (
    canonical_name,
    cors_origins,
    forget_access,
    forget_cors_origins,
    lookup_slug,
)

# Slugs never change, but a purged tenant's slug can be taken again: a short life. That a
# slug is unknown is kept shorter still: a tenant may be created with it any moment. Every
# creation drops the entry (`forget_slug`), but a CLI import reaches the servers' store only
# when it is Redis: in process memory the entry ends within this many seconds.
RESOLUTION_TTL_SECONDS = 60
UNKNOWN_TTL_SECONDS = 10


async def tenant_id_of(database: Database, store: Store, name: str) -> UUID | None:
    """The id a tenant name stands for: an id as given, a slug looked up (None: unknown)."""
    canonical = canonical_name(name)
    if isinstance(canonical, UUID):
        return canonical
    if len(canonical) > 63:
        return None
    key = _slug_key(canonical)
    cached = await store.get(key)
    telemetry.cache("tenant_slug", hit=cached is not None)
    if cached is None:
        ref = await lookup_slug(database, canonical)
        cached = "" if ref is None else str(ref.id)
        ttl = RESOLUTION_TTL_SECONDS if cached else UNKNOWN_TTL_SECONDS
        await store.put(key, cached, ttl_seconds=ttl)
    return UUID(cached) if cached else None


async def cors_origins_of(database: Database, store: Store, name: str) -> frozenset[str]:
    """The browser origins the tenant `name` (a slug, from the request's host) allows; none
    for an unknown name. Two cached reads: the name's id, the id's origins."""
    tenant_id = await tenant_id_of(database, store, name)
    if tenant_id is None:
        return frozenset()
    return await cors_origins(database, store, tenant_id)


def _slug_key(slug: str) -> StoreKey:
    return platform_key("tenant-slug", slug)


async def forget(store: Store, tenant_id: UUID, slug: str) -> None:
    """Drop what is cached of a purged tenant: its slug's id, its status and plan, and its
    allowed origins."""
    await forget_slug(store, slug)
    await forget_access(store, tenant_id)
    await forget_cors_origins(store, tenant_id)


async def forget_slug(store: Store, slug: str) -> None:
    """Drop what is cached of a slug: a new tenant took it, or a purged one freed it."""
    await store.delete(_slug_key(slug))


async def tenant_to_use(
    database: Database, store: Store, given: str | None, named: NamedTenant | None
) -> str:
    """The tenant name an anonymous operation (signIn, requestPasswordReset, exchangeToken)
    acts on: its `tenant` argument, else the one the request's subdomain or X-Tenant header
    names. When both are there they must name the same tenant."""
    if given is None or not given.strip():
        if named is None:
            raise Invalid(
                "Name the organisation: `tenant`, an X-Tenant header or its subdomain",
                field="tenant",
            )
        return named.name
    if named is not None and (
        named.id is None or await tenant_id_of(database, store, given) != named.id
    ):
        raise TenantMismatch("The request names more than one organisation", field="tenant")
    return given


async def record_mismatch(
    database: Database, principal: Principal, meta: RequestMeta, named: dict[str, str]
) -> None:
    """A signed-in user's request named another tenant: one entry in their tenant's log
    (naming the platform administrator too when one is acting as the user)."""
    acting = principal.claims.impersonator
    async with database.transaction(
        principal.tenant_id, impersonator_id=None if acting is None else acting.admin_id
    ) as session:
        await record(
            session,
            meta,
            action="tenant.mismatch",
            outcome=AuditOutcome.DENIED,
            actor_id=principal.user_id,
            target_type="tenant",
            target_id=principal.tenant_id,
            metadata={"named": {k: v[:100] for k, v in named.items()}},
        )
