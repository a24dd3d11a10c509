"""User queries."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.api.context import Info
from app.api.mutations import UserError, attempt
from app.api.relay import (
    After,
    Connection,
    First,
    ObjectId,
    load_node,
    ordering,
    parse_id,
    table_connection,
)
from app.users import service
from app.users.models import USER_ORDERINGS
from app.users.types import User, UserOrder


@strawberry.type
class UserQueries:
    @strawberry.field(description="The signed-in user; null when not signed in.")
    async def viewer(self, info: Info) -> User | None:
        principal = info.context.principal
        if principal is None:
            return None
        return await load_node(info, User, principal.user_id)

    @strawberry.field(description="Users of the current tenant.")
    async def users(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        order_by: Annotated[
            UserOrder | None,
            strawberry.argument(description="Order of the users (default: oldest first)."),
        ] = None,
    ) -> Connection[User]:
        info.context.require_principal()
        order = order_by or UserOrder()
        return await table_connection(
            info,
            User,
            ordering=ordering(USER_ORDERINGS, order.field, order.direction),
            first=first,
            after=after,
        )


@strawberry.type(description="The result of a user mutation.")
class UserPayload:
    user: User | None = strawberry.field(
        description="The user as they are now; null when `errors` is not empty."
    )
    errors: list[UserError] = strawberry.field(description="Why nothing was changed.")


@strawberry.type
class UserMutations:
    @strawberry.mutation(
        description="Disable a user: they cannot sign in, and every session of theirs ends "
        "at once. Administrators only."
    )
    async def disable_user(self, info: Info, id: ObjectId) -> UserPayload:
        return await _set_disabled(info, id, disabled=True)

    @strawberry.mutation(description="Let a disabled user sign in again. Administrators only.")
    async def enable_user(self, info: Info, id: ObjectId) -> UserPayload:
        return await _set_disabled(info, id, disabled=False)


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
