"""GraphQL types for tenants."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import strawberry

from app.api.context import Info
from app.api.permissions import Rule
from app.api.relay import Node
from app.core.tables import Table
from app.projects import service as projects
from app.tasks.models import TaskStatus
from app.tenants import features, quotas
from app.tenants.features import FeatureFlag
from app.tenants.models import TENANTS, TenantStatus
from app.tenants.plans import plan_of
from app.users import service as users

strawberry.enum(TenantStatus, description="Lifecycle state of a tenant.")


# The owners of the counted rows count them, as their quota checks do.
_COUNTERS: dict[quotas.Quota, quotas.Counter] = {
    quotas.Quota.USERS: users.counted,
    quotas.Quota.PROJECTS: projects.counted,
}


@strawberry.type(name="FeatureFlag", description="A feature switched on or off for one tenant.")
class FeatureFlagType:
    key: str = strawberry.field(description="The feature, e.g. `reports.beta`.")
    enabled: bool = strawberry.field(description="On or off for this tenant.")

    @classmethod
    def of(cls, flag: FeatureFlag) -> FeatureFlagType:
        return cls(key=flag.key, enabled=flag.enabled)


@strawberry.type(name="Quota", description="One limit of the tenant's plan and its use.")
class QuotaType:
    limit: str = strawberry.field(description="Which limit: `maxUsers` or `maxProjects`.")
    maximum: int | None = strawberry.field(description="How many the plan allows; null: no limit.")
    used: int = strawberry.field(description="How many the tenant has now.")


@strawberry.type(description="The organisation the caller belongs to.")
class Tenant(Node):
    table: ClassVar[Table[Any]] = TENANTS
    # Nothing beyond reaching it: every signed-in user reads their own tenant (and only that
    # one: RLS); platform administrators the one a platform mutation acted on.
    read_rule: ClassVar[Rule | None] = None
    slug: str = strawberry.field(description="URL-safe unique name, used to sign in.")
    name: str = strawberry.field(description="Display name of the organisation.")
    status: TenantStatus = strawberry.field(description="Lifecycle state.")
    plan: str = strawberry.field(description="The subscription plan.")
    mfa_required: bool = strawberry.field(
        description="Every user must use a second factor; those without one enrol at sign-in."
    )
    session_lifetime_hours: int | None = strawberry.field(
        description="How long a session lasts before its user signs in again; null: the "
        "server's default."
    )
    default_task_status: TaskStatus = strawberry.field(
        description="The status a new task gets when none is given."
    )
    cors_origins: list[str] = strawberry.field(
        description="Browser origins (besides the server's own list) whose pages may call the "
        "API on the tenant's own host, `<slug>.<the server's base domain>`: a browser names "
        "the tenant to the API only by the host it calls."
    )
    created_at: datetime = strawberry.field(description="When the tenant was created.")
    updated_at: datetime = strawberry.field(description="When the tenant last changed.")

    @strawberry.field(
        description="Feature flags the platform set for this tenant (unset ones are absent: "
        "the product's default applies)."
    )
    async def features(self, info: Info) -> list[FeatureFlagType]:
        return [FeatureFlagType.of(f) for f in await features.flags(info.context.session)]

    @strawberry.field(
        description="The plan's limits and how much of each is taken: users who can sign in "
        "or are invited, active projects. Adding beyond a limit is QUOTA_EXCEEDED."
    )
    async def quotas(self, info: Info) -> list[QuotaType]:
        found = await quotas.quota_use(info.context.session, self.plan, _COUNTERS)
        return [QuotaType(limit=q.limit, maximum=q.maximum, used=q.used) for q in found]

    @strawberry.field(description="Requests per minute the plan allows; null: unlimited.")
    def requests_per_minute(self) -> int | None:
        return plan_of(self.plan).requests_per_minute
