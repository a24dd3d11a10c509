"""GraphQL types for users, and the user listing."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import strawberry

from app.api.context import Info
from app.api.permissions import Rule, needs, own_record, own_record_or, self_or
from app.api.relations import TypeRef, connection, listing, order_by, to_many
from app.api.relay import Node
from app.auth.sessions import active_sessions
from app.auth.types import DeviceSession
from app.core.tables import Table
from app.rbac import service as rbac
from app.rbac.permissions import Permission
from app.rbac.types import Role
from app.tasks.types import TASK_LISTING
from app.users.models import USERS, UserOrderField, UserStatus

strawberry.enum(UserStatus, description="Whether a user can sign in.")

USER_LISTING = listing(
    TypeRef(__name__, "User"),
    order=order_by(
        UserOrderField,
        default=UserOrderField.CREATED_AT,
        plural="users",
        argument="Order of the users (default: oldest first).",
    ),
)


@strawberry.type(description="A person who belongs to the current tenant.")
class User(Node):
    table: ClassVar[Table[Any]] = USERS
    read_rule: ClassVar[Rule | None] = needs(Permission.USER_READ)
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
        description="The user's active sessions, newest first.", extensions=own_record()
    )
    async def sessions(self, info: Info) -> list[DeviceSession] | None:
        principal = info.context.require_principal()
        found = await active_sessions(info.context.session, self.pk)
        return [DeviceSession.of(s, current_id=principal.session_id) for s in found]

    roles = to_many(
        Role,
        load=rbac.roles_of,
        nullable=True,
        rule=self_or(Permission.ROLE_MANAGE),
        description="The user's roles.",
    )

    @strawberry.field(
        description="What the user may do, e.g. `project:write` (docs/permissions.md), read "
        "fresh on every request so front ends can adapt their UI: every permission, implied "
        "ones included.",
        extensions=own_record_or(Permission.ROLE_MANAGE),
    )
    async def permissions(self, info: Info) -> list[str] | None:
        actor = await info.context.actor()
        if actor.user_id == self.pk:
            return sorted(actor.permissions)
        # One query for every user of the page (a role manager's user list).
        other = await info.context.loaders.batch("permissions", rbac.resolve_many).load(self.pk)
        return sorted(other.permissions) if other is not None else []

    assigned_tasks = connection(
        TASK_LISTING,
        partition="assignee_id",
        # A reader of users may not read tasks: a refusal must keep the user.
        nullable=True,
        description="Tasks assigned to this user, across projects.",
    )
