"""GraphQL types of roles."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import strawberry

from app.api.context import Info
from app.api.mutations import UserError
from app.api.permissions import Rule, needs
from app.api.relations import result
from app.api.relay import Node
from app.core.tables import Table
from app.rbac import service
from app.rbac.models import ROLES
from app.rbac.permissions import SYSTEM_ROLES, Permission


@strawberry.type(
    description="A named set of permissions. Every tenant has the system roles owner, admin, "
    "member and viewer (fixed sets) and may define custom roles."
)
class Role(Node):
    table: ClassVar[Table[Any]] = ROLES
    read_rule: ClassVar[Rule | None] = needs(Permission.USER_READ)
    key: str | None = strawberry.field(
        description="`owner`, `admin`, `member` or `viewer` for system roles; null for custom."
    )
    name: str = strawberry.field(description="Display name, unique within the tenant.")
    description: str = strawberry.field(description="What the role is for.")
    created_at: datetime = strawberry.field(description="When the role was created.")
    updated_at: datetime = strawberry.field(description="When the role last changed.")

    @strawberry.field(description="Whether this is a system role (it cannot be changed).")
    def system(self) -> bool:
        return self.key is not None

    @strawberry.field(
        description="The permissions the role grants, e.g. `task:write` (docs/permissions.md)."
    )
    async def permissions(self, info: Info) -> list[str]:
        if self.key is not None:
            granted = SYSTEM_ROLES[self.key]
        else:
            loader = info.context.loaders.batch("role_permissions", service.stored_permissions)
            granted = await loader.load(self.pk) or frozenset()
        return sorted(p.value for p in granted)

    @strawberry.field(description="How many users hold the role.")
    async def user_count(self, info: Info) -> int:
        count = await info.context.loaders.batch("role_holders", service.holder_counts).load(
            self.pk
        )
        return count or 0


@strawberry.type(description="The result of creating or changing a role.")
class RolePayload:
    role: Role | None = result(
        Role, description="The role as it is now; null when `errors` is not empty."
    )
    errors: list[UserError] = strawberry.field(description="Why nothing was changed.")
