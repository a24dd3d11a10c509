"""The retention job (`tenantry tenant purge-expired`): deleted tenants whose retention period
(`TENANTRY_TENANT_RETENTION_DAYS`) is over are purged, as an operator's scheduled command.

It finds them in the tenants registry, read in the platform scope with no tenant bound, and
purges each with `lifecycle.purge_tenant`, the same purge as the `purgeTenant` mutation: the
same batches and the same `tenant.purged` entry in the platform audit log, recorded as the
system with the reason `RETENTION_REASON`.
"""

from __future__ import annotations

from app.core.actor import OPERATOR
from app.core.db import Database
from app.core.request_meta import RequestMeta
from app.core.store import Store
from app.platform import lifecycle, queries
from app.platform.models import ExpiredTenant

# The reason in the platform audit entry: what tells the job's purges from an administrator's.
RETENTION_REASON = "retention period over"


async def expired_tenants(
    database: Database, *, retention_days: int, limit: int | None
) -> list[ExpiredTenant]:
    """Deleted tenants whose retention period is over (at most `limit`, None: all), longest
    deleted first; a purge that began and stopped counts as over, so the job finishes it."""
    async with database.transaction(None, readonly=True, platform=True) as session:
        return await queries.expired_tenants(session, retention_days, limit)


async def purge_expired(
    database: Database, store: Store, meta: RequestMeta, tenant: ExpiredTenant
) -> lifecycle.Purged:
    """Purge one tenant `expired_tenants` found. No restore comes between the two: once the
    retention period is over it is refused (`lifecycle.change_status`, on servers configured
    with the same retention period)."""
    return await lifecycle.purge_tenant(
        database, store, meta, actor=OPERATOR, tenant_id=tenant.id, reason=RETENTION_REASON
    )
