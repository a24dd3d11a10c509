"""User queries."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.api.context import Info
from app.api.relay import After, Connection, First, load_node, ordering, table_connection
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
