"""The subscription plans a tenant can be on, with their quotas.

Plans live in code, like the permission catalog: a tenant row names its plan, and a release
can change a plan's limits without a data migration. `None` means unlimited.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core.errors import Invalid
from app.core.ratelimit import PlanRates, Rate


@dataclass(frozen=True)
class Plan:
    key: str
    name: str
    max_users: int | None
    max_projects: int | None
    # Signed-in requests of the whole tenant, and of each of its users (so one user's script
    # cannot spend their colleagues' share), per minute; each may come as one burst.
    requests_per_minute: int | None
    user_requests_per_minute: int | None = None
    # The summed static cost of the tenant's operations per minute (app/api/limits.py: one
    # per operation plus the most objects its connections could return).
    cost_per_minute: int | None = None

    @property
    def rates(self) -> PlanRates:
        """The plan's limits as token buckets holding a minute's worth (app/core/ratelimit.py)."""
        return PlanRates(
            tenant=_per_minute(self.requests_per_minute),
            user=_per_minute(self.user_requests_per_minute),
            cost=_per_minute(self.cost_per_minute),
        )


def _per_minute(value: int | None) -> Rate | None:
    return None if value is None else Rate(burst=value, per_minute=value)


PLANS: dict[str, Plan] = {
    plan.key: plan
    for plan in (
        Plan(
            "free",
            "Free",
            max_users=5,
            max_projects=3,
            requests_per_minute=120,
            user_requests_per_minute=60,
            cost_per_minute=20_000,
        ),
        Plan(
            "team",
            "Team",
            max_users=50,
            max_projects=100,
            requests_per_minute=1200,
            user_requests_per_minute=300,
            cost_per_minute=200_000,
        ),
        Plan("enterprise", "Enterprise", None, None, None),
    )
}
DEFAULT_PLAN = "free"


def plan_of(key: str | None) -> Plan:
    """The plan a tenant row names. One no longer in the catalog gets the default plan's
    limits, never none (a release that drops a plan must not lift its tenants' quotas)."""
    return PLANS.get(key or "") or PLANS[DEFAULT_PLAN]


def check_plan(key: str, *, field: str = "plan") -> Plan:
    plan = PLANS.get(key.strip().lower())
    if plan is None:
        raise Invalid(f"Unknown plan {key!r}; plans: {', '.join(PLANS)}", field=field)
    return plan
