"""Plan quotas: how many users and projects a tenant may have, checked where they are added.

What counts: users who can sign in or are invited (a disabled user frees a seat, and
re-enabling takes one), and active projects (archiving frees one, unarchiving takes one).
The check locks the tenant row, so two concurrent additions cannot both take the last
place, and a plan change waits for them (or they for it). A tenant moved to a smaller plan
keeps what it has; it just cannot add more until it is under the limit.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from app.core.db import Session
from app.core.errors import NotFound, QuotaExceeded
from app.tenants import queries
from app.tenants.plans import plan_of


class Quota(enum.Enum):
    # (counted table, the plan's attribute, the limit's client-facing name, a noun)
    USERS = ("users", "max_users", "maxUsers", "users")
    PROJECTS = ("projects", "max_projects", "maxProjects", "active projects")

    def __init__(self, table: str, attribute: str, limit: str, noun: str) -> None:
        self.table = table
        self.attribute = attribute
        self.limit = limit
        self.noun = noun


@dataclass(frozen=True)
class QuotaUse:
    limit: str  # the client-facing name, e.g. maxUsers
    maximum: int | None  # None: unlimited
    used: int


async def quota_use(session: Session, plan_key: str) -> list[QuotaUse]:
    """What the bound tenant's plan allows and how much of it is taken, per quota (counted
    as the checks count)."""
    plan = plan_of(plan_key)
    return [
        QuotaUse(q.limit, getattr(plan, q.attribute), await queries.counted(session, q.table))
        for q in Quota
    ]


async def require_room(session: Session, quota: Quota) -> None:
    """QuotaExceeded unless the bound tenant's plan allows one more of `quota`."""
    plan_key = await queries.lock_plan(session)
    if plan_key is None:
        raise NotFound("Tenant not found")
    plan = plan_of(plan_key)
    maximum: int | None = getattr(plan, quota.attribute)
    if maximum is None:
        return
    used = await queries.counted(session, quota.table)
    if used >= maximum:
        raise QuotaExceeded(
            f"The {plan.name} plan allows at most {maximum} {quota.noun}"
            f" ({quota.limit}); upgrade the plan, or make room first",
            limit=quota.limit,
            maximum=maximum,
        )
