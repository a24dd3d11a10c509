"""Role queries and mutations: read arguments, call one service function, map the result."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.api.context import Info
from app.api.mutations import DeletePayload, attempt, patch
from app.api.permissions import not_while_impersonating, requires
from app.api.relay import ObjectId, parse_id
from app.rbac import service
from app.rbac.permissions import Permission
from app.rbac.types import Role, RolePayload


@strawberry.input(description="A new custom role.")
class CreateRoleInput:
    name: str = strawberry.field(description="1-100 characters, unique in the tenant.")
    description: str = strawberry.field(default="", description="Up to 1000 characters.")
    permissions: list[str] = strawberry.field(
        description="Permissions it grants (docs/permissions.md); you must hold each one."
    )


@strawberry.input(description="Changes to a custom role; omitted fields are kept.")
class UpdateRoleInput:
    id: strawberry.ID = strawberry.field(description="The custom role to change.")
    name: str | None = strawberry.field(default=strawberry.UNSET, description="New name.")
    description: str | None = strawberry.field(
        default=strawberry.UNSET, description="New description."
    )
    permissions: list[str] | None = strawberry.field(
        default=strawberry.UNSET,
        description="The complete new set of permissions; holders get it on their next request.",
    )


@strawberry.type
class RoleQueries:
    @strawberry.field(
        description="The tenant's roles: system roles first, then custom roles by name.",
        extensions=requires(Permission.USER_READ),
    )
    async def roles(self, info: Info) -> list[Role] | None:
        return [Role.from_model(r) for r in await service.list_roles(info.context.session)]


@strawberry.type
class RoleMutations:
    @strawberry.mutation(
        description="Create a custom role. You can only grant permissions you hold.",
        extensions=not_while_impersonating(requires(Permission.ROLE_MANAGE)),
    )
    async def create_role(
        self,
        info: Info,
        input: Annotated[CreateRoleInput, strawberry.argument(description="The new role.")],
    ) -> RolePayload:
        ctx = info.context
        outcome = await attempt(
            info,
            lambda s, actor: service.create_role(
                s,
                ctx.store,
                ctx.request_meta,
                actor=actor,
                name=input.name,
                description=input.description,
                permissions=input.permissions,
            ),
        )
        return RolePayload(role=Role.maybe(outcome.value), errors=outcome.errors)

    @strawberry.mutation(
        description="Rename, describe or change the permissions of a custom role. System "
        "roles cannot be changed.",
        extensions=not_while_impersonating(requires(Permission.ROLE_MANAGE)),
    )
    async def update_role(
        self,
        info: Info,
        input: Annotated[UpdateRoleInput, strawberry.argument(description="The role and changes.")],
    ) -> RolePayload:
        ctx = info.context

        def changes() -> service.RoleChanges:
            return service.RoleChanges(
                name=patch(input.name, field="name"),
                description=patch(input.description, field="description"),
                permissions=patch(input.permissions, field="permissions"),
            )

        outcome = await attempt(
            info,
            lambda s, actor: service.update_role(
                s,
                ctx.store,
                ctx.request_meta,
                actor=actor,
                role_id=parse_id(input.id, Role),
                changes=changes(),
            ),
        )
        return RolePayload(role=Role.maybe(outcome.value), errors=outcome.errors)

    @strawberry.mutation(
        description="Delete a custom role that nobody holds.",
        extensions=not_while_impersonating(requires(Permission.ROLE_MANAGE)),
    )
    async def delete_role(self, info: Info, id: ObjectId) -> DeletePayload:
        ctx = info.context
        outcome = await attempt(
            info,
            lambda s, actor: service.delete_role(
                s, ctx.store, ctx.request_meta, actor=actor, role_id=parse_id(id, Role)
            ),
        )
        return DeletePayload.of(outcome, id)
