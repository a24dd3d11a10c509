"""GraphQL types for tasks, and the task listing every connection to tasks uses.

Other domains' types are referenced lazily here: users, projects and comments import this
module, never the reverse at import time.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar
from uuid import UUID

import strawberry

from app.api.permissions import Rule, needs
from app.api.relations import Argument, TypeRef, connection, listing, order_by, to_one
from app.api.relay import Node, parse_id
from app.comments.models import OLDEST_FIRST
from app.core.tables import Filter, Table
from app.rbac.permissions import Permission
from app.tasks.models import TASKS, TaskOrderField, TaskPriority, TaskStatus

strawberry.enum(TaskStatus, description="Where a task is in its workflow.")
strawberry.enum(TaskPriority, description="How urgent a task is.")

USER = TypeRef("app.users.types", "User")


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


# Every connection to tasks (a project's, a user's, the tenant's) lists them so.
TASK_LISTING = listing(
    TypeRef(__name__, "Task"),
    order=order_by(
        TaskOrderField,
        default=TaskOrderField.POSITION,
        plural="tasks",
        argument="Order of the tasks (default: position).",
    ),
    arguments=[Argument("filter", TaskFilter, "Only tasks matching this filter.")],
    filters=task_filters,
)


@strawberry.type(description="A unit of work in a project.")
class Task(Node):
    table: ClassVar[Table[Any]] = TASKS
    read_rule: ClassVar[Rule | None] = needs(Permission.PROJECT_READ)
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

    project = to_one(
        TypeRef("app.projects.types", "Project"),
        key="project_id",
        nullable=False,
        description="The project this task belongs to.",
    )
    assignee = to_one(
        USER,
        key="assignee_id",
        nullable=True,
        description="Who the task is assigned to, if anyone.",
    )
    creator = to_one(
        USER,
        key="created_by",
        nullable=True,
        name="createdBy",
        description="Who created the task (null if that user was deleted).",
    )
    comments = connection(
        listing(TypeRef("app.comments.types", "Comment"), order=OLDEST_FIRST),
        partition="task_id",
        description="Comments on this task, oldest first.",
    )
