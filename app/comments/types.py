"""GraphQL types for comments."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

import strawberry

from app.api.permissions import Rule, needs
from app.api.relations import to_one
from app.api.relay import Node
from app.comments.models import COMMENTS
from app.core.tables import Table
from app.rbac.permissions import Permission
from app.tasks.types import Task
from app.users.types import User


@strawberry.type(description="A comment on a task.")
class Comment(Node):
    table: ClassVar[Table[Any]] = COMMENTS
    read_rule: ClassVar[Rule | None] = needs(Permission.PROJECT_READ)
    body: str = strawberry.field(description="The comment text.")
    created_at: datetime = strawberry.field(description="When the comment was written.")
    updated_at: datetime = strawberry.field(description="When the comment last changed.")
    edited_at: datetime | None = strawberry.field(
        description="When the author last edited the text, if ever."
    )
    task_id: strawberry.Private[UUID]
    author_id: strawberry.Private[UUID | None]

    task = to_one(Task, key="task_id", nullable=False, description="The task this comment is on.")
    author = to_one(
        User,
        key="author_id",
        nullable=True,
        description="Who wrote the comment (null if that user was deleted).",
    )
