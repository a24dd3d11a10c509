"""The subscription plans a tenant can be on, with their quotas.

Plans live in code, like the permission catalog: a tenant row names its plan, and a release
can change a plan's limits without a data migration. `None` means unlimited.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core.errors import Invalid


@dataclass(frozen=True)
class Plan:
    key: str
    name: str
    max_users: int | None
    max_projects: int | None
    requests_per_minute: int | None


PLANS: dict[str, Plan] = {
    plan.key: plan
    for plan in (
        Plan("free", "Free", max_users=5, max_projects=3, requests_per_minute=120),
        Plan("team", "Team", max_users=50, max_projects=100, requests_per_minute=1200),
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
