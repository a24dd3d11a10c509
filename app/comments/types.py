"""GraphQL types for comments."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

import strawberry

from app.api.context import Info
from app.api.relay import Node, load_node
from app.comments.models import COMMENTS
from app.core.tables import Table
from app.rbac.permissions import Permission
from app.tasks.types import Task
from app.users.types import User


@strawberry.type(description="A comment on a task.")
class Comment(Node):
    table: ClassVar[Table[Any]] = COMMENTS
    read_permission: ClassVar[str | None] = Permission.PROJECT_READ
    body: str = strawberry.field(description="The comment text.")
    created_at: datetime = strawberry.field(description="When the comment was written.")
    updated_at: datetime = strawberry.field(description="When the comment last changed.")
    edited_at: datetime | None = strawberry.field(
        description="When the author last edited the text, if ever."
    )
    task_id: strawberry.Private[UUID]
    author_id: strawberry.Private[UUID | None]

    @strawberry.field(description="The task this comment is on.")
    async def task(self, info: Info) -> Task:
        task = await load_node(info, Task, self.task_id)
        assert task is not None  # a composite foreign key guarantees it
        return task  # type: ignore[no-any-return]

    @strawberry.field(description="Who wrote the comment (null if that user was deleted).")
    async def author(self, info: Info) -> User | None:
        if self.author_id is None:
            return None
        return await load_node(info, User, self.author_id)
