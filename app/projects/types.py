"""GraphQL types for projects."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any, ClassVar
from uuid import UUID

import strawberry

from app.api.context import Info
from app.api.relay import After, Connection, First, Node, OrderDirection, load_node
from app.core.tables import Table
from app.projects.models import PROJECTS, ProjectStatus
from app.rbac.permissions import Permission
from app.tasks.types import Task, TaskFilter, TaskOrder, task_connection
from app.users.types import User

strawberry.enum(ProjectStatus, description="Whether a project takes new work.")


@strawberry.enum(description="Fields projects can be ordered by.")
class ProjectOrderField(enum.Enum):
    CREATED_AT = "CREATED_AT"
    UPDATED_AT = "UPDATED_AT"
    NAME = "NAME"


@strawberry.input(description="How to order projects.")
class ProjectOrder:
    field: ProjectOrderField = strawberry.field(
        default=ProjectOrderField.CREATED_AT, description="The field to sort by."
    )
    direction: OrderDirection = strawberry.field(
        default=OrderDirection.ASC, description="The sort direction."
    )


@strawberry.type(description="A container of tasks.")
class Project(Node):
    table: ClassVar[Table[Any]] = PROJECTS
    read_permission: ClassVar[str | None] = Permission.PROJECT_READ
    name: str = strawberry.field(description="Name of the project.")
    description: str = strawberry.field(description="What the project is about, possibly empty.")
    status: ProjectStatus = strawberry.field(
        description="ACTIVE, or ARCHIVED (read-only for new tasks)."
    )
    created_at: datetime = strawberry.field(description="When the project was created.")
    updated_at: datetime = strawberry.field(description="When the project last changed.")
    archived_at: datetime | None = strawberry.field(
        description="When the project was archived, if it is."
    )
    created_by: strawberry.Private[UUID | None]

    @strawberry.field(
        name="createdBy", description="Who created the project (null if that user was deleted)."
    )
    async def creator(self, info: Info) -> User | None:
        if self.created_by is None:
            return None
        return await load_node(info, User, self.created_by)

    @strawberry.field(description="Tasks of this project; by position unless ordered otherwise.")
    async def tasks(
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
            partition="project_id",
            parent=self.pk,
        )
