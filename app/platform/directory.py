"""What platform administrators see of tenants (tenant:read): the registry, and usage.

Read in the platform scope, where the tenants table (only it) is readable; usage comes from
app.tenant_usage(), which counts a tenant's rows without returning any of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from app.core import validation
from app.core.db import Session
from app.core.tables import Contains, Filter, fetch_by_ids
from app.platform import queries
from app.tenants.features import FeatureFlag
from app.tenants.models import TENANTS, Tenant, TenantStatus
from app.tenants.plans import check_plan


@dataclass(frozen=True)
class Usage:
    users: int
    projects: int
    tasks: int
    # The size of the tenant's rows in the content tables and its audit log (an estimate:
    # indexes and free space are not counted).
    storage_bytes: int
    # The latest sign-in activity or audited action; None when there has been none.
    last_activity_at: datetime | None


def filters(
    *, status: TenantStatus | None, plan: str | None, search: str | None
) -> tuple[Filter, ...]:
    """The listing's filters from an administrator's input (Invalid names the field)."""
    found: list[Filter] = []
    if status is not None:
        found.append(("status", status.value))
    if plan is not None:
        found.append(("plan", check_plan(plan).key))
    if search is not None:
        text = validation.text(search, field="search", max_length=200)
        found.append(("search", Contains(("name", "slug"), text)))
    return tuple(found)


async def get_tenant(session: Session, tenant_id: UUID) -> Tenant | None:
    return (await fetch_by_ids(session, TENANTS, [tenant_id])).get(tenant_id)


async def usage(session: Session, tenant_ids: Sequence[UUID]) -> dict[UUID, Usage]:
    return {
        r["tenant_id"]: Usage(
            users=r["users"],
            projects=r["projects"],
            tasks=r["tasks"],
            storage_bytes=r["storage_bytes"],
            last_activity_at=r["last_activity_at"],
        )
        for r in await queries.tenant_usage(session, tenant_ids)
    }


async def feature_flags(
    session: Session, tenant_ids: Sequence[UUID]
) -> dict[UUID, list[FeatureFlag]]:
    """Each tenant's flags, by key (an empty list: none set)."""
    found: dict[UUID, list[FeatureFlag]] = {tenant_id: [] for tenant_id in tenant_ids}
    for r in await queries.tenant_feature_flags(session, tenant_ids):
        found[r["tenant_id"]].append(FeatureFlag(r["key"], r["enabled"]))
    return found
