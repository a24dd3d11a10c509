"""Plan quotas: how many users and projects a tenant may have, checked where they are added.

What counts: users who can sign in or are invited (a disabled user frees a seat, and
re-enabling takes one), and active projects (archiving frees one, unarchiving takes one).
The check locks the tenant row, so two concurrent additions cannot both take the last
place, and a plan change waits for them (or they for it). A tenant moved to a smaller plan
keeps what it has; it just cannot add more until it is under the limit.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from app.core.db import Session
from app.core.errors import NotFound, QuotaExceeded
from app.tenants import queries
from app.tenants.plans import plan_of

# What takes room in a quota, counted by the domain that owns the counted rows (the users
# and projects services), so this module names no table of theirs.
Counter = Callable[[Session], Awaitable[int]]


class Quota(enum.Enum):
    # (the plan's attribute, the limit's client-facing name, a noun)
    USERS = ("max_users", "maxUsers", "users")
    PROJECTS = ("max_projects", "maxProjects", "active projects")

    def __init__(self, attribute: str, limit: str, noun: str) -> None:
        self.attribute = attribute
        self.limit = limit
        self.noun = noun


@dataclass(frozen=True)
class QuotaUse:
    limit: str  # the client-facing name, e.g. maxUsers
    maximum: int | None  # None: unlimited
    used: int


async def quota_use(
    session: Session, plan_key: str, counters: Mapping[Quota, Counter]
) -> list[QuotaUse]:
    """What the bound tenant's plan allows and how much of it is taken, per quota (counted
    by `counters`, as the checks count)."""
    plan = plan_of(plan_key)
    return [
        QuotaUse(q.limit, getattr(plan, q.attribute), await counters[q](session)) for q in Quota
    ]


async def require_room(session: Session, quota: Quota, count: Counter) -> None:
    """QuotaExceeded unless the bound tenant's plan allows one more of `quota`, of which
    `count` counts the rows taken (after the plan's row is locked, so concurrent additions
    are counted one after the other)."""
    plan_key = await queries.lock_plan(session)
    if plan_key is None:
        raise NotFound("Tenant not found")
    plan = plan_of(plan_key)
    maximum: int | None = getattr(plan, quota.attribute)
    if maximum is None:
        return
    used = await count(session)
    if used >= maximum:
        raise QuotaExceeded(
            f"The {plan.name} plan allows at most {maximum} {quota.noun}"
            f" ({quota.limit}); upgrade the plan, or make room first",
            limit=quota.limit,
            maximum=maximum,
        )
