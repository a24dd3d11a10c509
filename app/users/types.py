"""GraphQL types for users."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any, ClassVar
from uuid import UUID

import strawberry

from app.api.context import Info
from app.api.relay import After, Connection, First, Node, OrderDirection
from app.auth.sessions import active_sessions
from app.auth.types import Session
from app.core.tables import Table
from app.rbac import service as rbac
from app.rbac.permissions import Permission
from app.rbac.types import Role
from app.tasks.types import Task, TaskFilter, TaskOrder, task_connection
from app.users.models import USERS, UserStatus

strawberry.enum(UserStatus, description="Whether a user can sign in.")


@strawberry.enum(description="Fields users can be ordered by.")
class UserOrderField(enum.Enum):
    CREATED_AT = "CREATED_AT"
    EMAIL = "EMAIL"
    DISPLAY_NAME = "DISPLAY_NAME"


@strawberry.input(description="How to order users.")
class UserOrder:
    field: UserOrderField = strawberry.field(
        default=UserOrderField.CREATED_AT, description="The field to sort by."
    )
    direction: OrderDirection = strawberry.field(
        default=OrderDirection.ASC, description="The sort direction."
    )


@strawberry.type(description="A person who belongs to the current tenant.")
class User(Node):
    table: ClassVar[Table[Any]] = USERS
    read_permission: ClassVar[str | None] = Permission.USER_READ
    email: str = strawberry.field(description="Email address, unique within the tenant.")
    display_name: str = strawberry.field(description="Name shown to other users.")
    status: UserStatus = strawberry.field(description="Whether the user can sign in.")
    created_at: datetime = strawberry.field(description="When the user was created.")
    updated_at: datetime = strawberry.field(description="When the user last changed.")
    email_verified_at: datetime | None = strawberry.field(
        description="When the email address was confirmed (an invitation or a verification "
        "link followed); null: not yet."
    )

    @strawberry.field(
        description="The user's active sessions, newest first: only for the signed-in user "
        "themself, null for anyone else."
    )
    async def sessions(self, info: Info) -> list[Session] | None:
        principal = info.context.principal
        if principal is None or not _is_viewer(info, self.pk):
            return None
        found = await active_sessions(info.context.session, self.pk)
        return [Session.of(s, current_id=principal.session_id) for s in found]

    @strawberry.field(
        description="The user's roles: for the signed-in user themself and for holders of "
        "`role:manage`; null for anyone else."
    )
    async def roles(self, info: Info) -> list[Role] | None:
        if not await _may_see_grants(info, self.pk):
            return None
        found = await info.context.loaders.batch("user_roles", rbac.roles_of).load(self.pk)
        return [Role.from_model(r) for r in found or []]

    @strawberry.field(
        description="What the user may do, e.g. `project:write` (docs/permissions.md), read "
        "fresh on every request so front ends can adapt their UI: for the signed-in user "
        "themself (every permission, implied ones included) and for holders of `role:manage`; "
        "null for anyone else."
    )
    async def permissions(self, info: Info) -> list[str] | None:
        if not await _may_see_grants(info, self.pk):
            return None
        if _is_viewer(info, self.pk):
            return sorted((await info.context.actor()).permissions)
        # One query for every user of the page (a role manager's user list).
        other = await info.context.loaders.batch("permissions", rbac.resolve_many).load(self.pk)
        return sorted(other.permissions) if other is not None else []

    @strawberry.field(description="Tasks assigned to this user, across projects.")
    async def assigned_tasks(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        filter: Annotated[
            TaskFilter | None, strawberry.argument(description="Only tasks matching this filter.")
        ] = None,
        order_by: Annotated[
            TaskOrder | None,
            strawberry.argument(description="Order of the tasks (default: position)."),
        ] = None,
    ) -> Connection[Task]:
        return await task_connection(
            info,
            first=first,
            after=after,
            filter=filter,
            order_by=order_by,
            partition="assignee_id",
            parent=self.pk,
        )


async def _may_see_grants(info: Info, user_id: UUID) -> bool:
    if info.context.principal is None:
        return False
    return _is_viewer(info, user_id) or (await info.context.actor()).can(Permission.ROLE_MANAGE)


def _is_viewer(info: Info, user_id: UUID) -> bool:
    principal = info.context.principal
    return principal is not None and principal.user_id == user_id
