"""User queries."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.api.context import Info
from app.api.mutations import UserError, attempt
from app.api.permissions import not_while_impersonating, own_record, requires
from app.api.relations import connection, result
from app.api.relay import ObjectId, load_node, parse_id
from app.rbac.permissions import Permission
from app.rbac.types import Role
from app.users import service
from app.users.types import USER_LISTING, User


@strawberry.type
class UserQueries:
    @strawberry.field(description="The signed-in user.", extensions=own_record())
    async def viewer(self, info: Info) -> User | None:
        principal = info.context.require_principal()
        return await load_node(info, User, principal.user_id)

    users = connection(USER_LISTING, nullable=True, description="Users of the current tenant.")


@strawberry.input(description="A user and one of the tenant's roles.")
class RoleAssignmentInput:
    user_id: strawberry.ID = strawberry.field(description="The user.")
    role_id: strawberry.ID = strawberry.field(description="The role (see `roles`).")


@strawberry.type(description="The result of a user mutation.")
class UserPayload:
    user: User | None = result(
        User, description="The user as they are now; null when `errors` is not empty."
    )
    errors: list[UserError] = strawberry.field(description="Why nothing was changed.")


@strawberry.type
class UserMutations:
    @strawberry.mutation(
        description="Disable a user: they cannot sign in, and every session of theirs ends "
        "at once. Acting on a user needs every permission of each role they hold, and only "
        "owners act on owners; the tenant's last active owner cannot be disabled.",
        extensions=not_while_impersonating(requires(Permission.USER_MANAGE)),
    )
    async def disable_user(self, info: Info, id: ObjectId) -> UserPayload:
        return await _set_disabled(info, id, disabled=True)

    @strawberry.mutation(
        description="Let a disabled user sign in again. Acting on a user needs every "
        "permission of each role they hold, and only owners act on owners.",
        extensions=not_while_impersonating(requires(Permission.USER_MANAGE)),
    )
    async def enable_user(self, info: Info, id: ObjectId) -> UserPayload:
        return await _set_disabled(info, id, disabled=False)

    @strawberry.mutation(
        description="Give a user a role; it applies to their next request. You must hold "
        "every permission of the role and of each role the user holds already, and only owners "
        "assign the owner role or change an owner's roles.",
        extensions=not_while_impersonating(requires(Permission.ROLE_MANAGE)),
    )
    async def assign_role(
        self,
        info: Info,
        input: Annotated[RoleAssignmentInput, strawberry.argument(description="Who and what.")],
    ) -> UserPayload:
        return await _change_role(info, input, assign=True)

    @strawberry.mutation(
        description="Take a role from a user; it applies to their next request. You must hold "
        "every permission of each role the user holds, and only owners change an owner's roles; "
        "the tenant's last active owner keeps the owner role.",
        extensions=not_while_impersonating(requires(Permission.ROLE_MANAGE)),
    )
    async def unassign_role(
        self,
        info: Info,
        input: Annotated[RoleAssignmentInput, strawberry.argument(description="Who and what.")],
    ) -> UserPayload:
        return await _change_role(info, input, assign=False)


async def _change_role(info: Info, input: RoleAssignmentInput, *, assign: bool) -> UserPayload:
    ctx = info.context
    outcome = await attempt(
        info,
        lambda s, actor: service.change_role(
            s,
            ctx.store,
            ctx.request_meta,
            actor=actor,
            user_id=parse_id(input.user_id, User, field="userId"),
            role_id=parse_id(input.role_id, Role, field="roleId"),
            assign=assign,
        ),
    )
    return UserPayload(user=User.maybe(outcome.value), errors=outcome.errors)


async def _set_disabled(info: Info, id: strawberry.ID, *, disabled: bool) -> UserPayload:
    ctx = info.context
    outcome = await attempt(
        info,
        lambda s, actor: service.set_disabled(
            s,
            ctx.tokens,
            ctx.store,
            ctx.request_meta,
            actor=actor,
            user_id=parse_id(id, User),
            disabled=disabled,
        ),
    )
    return UserPayload(user=User.maybe(outcome.value), errors=outcome.errors)
