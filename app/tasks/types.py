"""GraphQL types for tasks, and the task connection shared by every field that lists tasks.

Other domains' types are referenced lazily here: users, projects and comments import this
module, never the reverse at import time.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar
from uuid import UUID

import strawberry

from app.api.context import Info
from app.api.relay import (
    After,
    Connection,
    First,
    Node,
    OrderDirection,
    load_node,
    ordering,
    parse_id,
    table_connection,
)
from app.comments.models import COMMENT_ORDERINGS
from app.core.tables import Filter, Table
from app.rbac.permissions import Permission
from app.tasks.models import TASK_ORDERINGS, TASKS, TaskPriority, TaskStatus

if TYPE_CHECKING:
    from app.comments.types import Comment
    from app.projects.types import Project
    from app.users.types import User

strawberry.enum(TaskStatus, description="Where a task is in its workflow.")
strawberry.enum(TaskPriority, description="How urgent a task is.")


@strawberry.enum(description="Fields tasks can be ordered by.")
class TaskOrderField(enum.Enum):
    POSITION = "POSITION"
    CREATED_AT = "CREATED_AT"
    UPDATED_AT = "UPDATED_AT"
    DUE_DATE = "DUE_DATE"
    PRIORITY = "PRIORITY"


@strawberry.input(description="How to order tasks.")
class TaskOrder:
    field: TaskOrderField = strawberry.field(
        default=TaskOrderField.POSITION, description="The field to sort by."
    )
    direction: OrderDirection = strawberry.field(
        default=OrderDirection.ASC, description="The sort direction."
    )


@strawberry.input(description="Conditions a task must meet; all given conditions apply.")
class TaskFilter:
    status: list[TaskStatus] | None = strawberry.field(
        default=None, description="Any of these statuses."
    )
    priority: list[TaskPriority] | None = strawberry.field(
        default=None, description="Any of these priorities."
    )
    project_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only tasks of this project."
    )
    assignee_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET,
        description="Only tasks assigned to this user; `null` for unassigned tasks.",
    )


def task_filters(filter: TaskFilter | None) -> tuple[Filter, ...]:
    """The declarative equality filters a TaskFilter stands for."""
    from app.projects.types import Project
    from app.users.types import User

    if filter is None:
        return ()
    filters: list[Filter] = []
    if filter.status is not None:
        filters.append(("status", tuple(sorted(s.value for s in filter.status))))
    if filter.priority is not None:
        filters.append(("priority", tuple(sorted(p.value for p in filter.priority))))
    if filter.project_id is not None:
        filters.append(("project_id", parse_id(filter.project_id, Project, field="projectId")))
    if filter.assignee_id is not strawberry.UNSET:
        assignee = filter.assignee_id
        filters.append(
            (
                "assignee_id",
                None if assignee is None else parse_id(assignee, User, field="assigneeId"),
            )
        )
    return tuple(filters)


async def task_connection(
    info: Info,
    *,
    first: int | None,
    after: str | None,
    filter: TaskFilter | None,
    order_by: TaskOrder | None,
    partition: str | None = None,
    parent: UUID | None = None,
) -> Connection[Task]:
    order = order_by or TaskOrder()
    return await table_connection(
        info,
        Task,
        ordering=ordering(TASK_ORDERINGS, order.field, order.direction),
        first=first,
        after=after,
        filters=task_filters(filter),
        partition=partition,
        parent=parent,
    )


@strawberry.type(description="A unit of work in a project.")
class Task(Node):
    table: ClassVar[Table[Any]] = TASKS
    read_permission: ClassVar[str | None] = Permission.PROJECT_READ
    title: str = strawberry.field(description="Short summary of the work.")
    description: str = strawberry.field(description="Details, possibly empty.")
    status: TaskStatus = strawberry.field(description="Where the task is in its workflow.")
    priority: TaskPriority = strawberry.field(description="How urgent the task is.")
    due_date: date | None = strawberry.field(description="When the task is due, if ever.")
    position: float = strawberry.field(
        description="Sort key within the project; change it with `moveTask`."
    )
    created_at: datetime = strawberry.field(description="When the task was created.")
    updated_at: datetime = strawberry.field(description="When the task last changed.")
    project_id: strawberry.Private[UUID]
    assignee_id: strawberry.Private[UUID | None]
    created_by: strawberry.Private[UUID | None]

    @strawberry.field(description="The project this task belongs to.")
    async def project(
        self, info: Info
    ) -> Annotated[Project, strawberry.lazy("app.projects.types")]:
        from app.projects.types import Project

        project = await load_node(info, Project, self.project_id)
        assert project is not None  # a composite foreign key guarantees it
        return project  # type: ignore[no-any-return]

    @strawberry.field(description="Who the task is assigned to, if anyone.")
    async def assignee(
        self, info: Info
    ) -> Annotated[User, strawberry.lazy("app.users.types")] | None:
        from app.users.types import User

        if self.assignee_id is None:
            return None
        return await load_node(info, User, self.assignee_id)

    @strawberry.field(
        name="createdBy", description="Who created the task (null if that user was deleted)."
    )
    async def creator(
        self, info: Info
    ) -> Annotated[User, strawberry.lazy("app.users.types")] | None:
        from app.users.types import User

        if self.created_by is None:
            return None
        return await load_node(info, User, self.created_by)

    @strawberry.field(description="Comments on this task, oldest first.")
    async def comments(
        self,
        info: Info,
        first: First = None,
        after: After = None,
    ) -> Connection[Annotated[Comment, strawberry.lazy("app.comments.types")]]:
        from app.comments.types import Comment

        return await table_connection(
            info,
            Comment,
            ordering=COMMENT_ORDERINGS["CREATED_AT"],
            first=first,
            after=after,
            partition="task_id",
            parent=self.pk,
        )
