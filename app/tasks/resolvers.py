"""Task queries and mutations: read arguments, call one service function, map the result."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from uuid import UUID

import strawberry

from app.api.context import Info
from app.api.mutations import DeletePayload, UserError, attempt, patch, patch_nullable
from app.api.permissions import requires
from app.api.relations import connection, result
from app.api.relay import ObjectId, parse_id
from app.projects.types import Project
from app.rbac.permissions import Permission
from app.tasks import service
from app.tasks.models import TaskPriority, TaskStatus
from app.tasks.types import TASK_LISTING, Task
from app.users.types import User


@strawberry.input(description="A new task, appended at the end of its project.")
class CreateTaskInput:
    project_id: strawberry.ID = strawberry.field(description="An active project.")
    title: str = strawberry.field(description="1-500 characters.")
    description: str = strawberry.field(default="", description="Up to 20000 characters.")
    status: TaskStatus | None = strawberry.field(
        default=None,
        description="Initial status; absent or null: the tenant's `defaultTaskStatus`.",
    )
    priority: TaskPriority = strawberry.field(
        default=TaskPriority.MEDIUM, description="Initial priority."
    )
    assignee_id: strawberry.ID | None = strawberry.field(
        default=None, description="A user of this tenant to assign."
    )
    due_date: date | None = strawberry.field(default=None, description="When it is due.")


@strawberry.input(description="Changes to a task; omitted fields are kept.")
class UpdateTaskInput:
    id: strawberry.ID = strawberry.field(description="The task to change.")
    title: str | None = strawberry.field(default=strawberry.UNSET, description="New title.")
    description: str | None = strawberry.field(
        default=strawberry.UNSET, description="New description."
    )
    status: TaskStatus | None = strawberry.field(
        default=strawberry.UNSET, description="New status."
    )
    priority: TaskPriority | None = strawberry.field(
        default=strawberry.UNSET, description="New priority."
    )
    due_date: date | None = strawberry.field(
        default=strawberry.UNSET, description="New due date; null clears it."
    )


@strawberry.input(description="Who should work on a task.")
class AssignTaskInput:
    id: strawberry.ID = strawberry.field(description="The task.")
    assignee_id: strawberry.ID | None = strawberry.field(
        description="A user of this tenant; null unassigns."
    )


@strawberry.input(description="Where a task should go.")
class MoveTaskInput:
    id: strawberry.ID = strawberry.field(description="The task to move.")
    project_id: strawberry.ID | None = strawberry.field(
        default=None, description="Another active project to move it to; omit to stay."
    )
    after_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="The task it should follow in the target project; null puts it first.",
    )


@strawberry.type(description="The result of a task mutation.")
class TaskPayload:
    task: Task | None = result(
        Task, description="The task as it is now; null when `errors` is not empty."
    )
    errors: list[UserError] = strawberry.field(description="Why nothing was changed.")


def _assignee(value: strawberry.ID | None) -> UUID | None:
    return None if value is None else parse_id(value, User, field="assigneeId")


@strawberry.type
class TaskQueries:
    tasks = connection(
        TASK_LISTING, nullable=True, description="Tasks of the current tenant, across projects."
    )


@strawberry.type
class TaskMutations:
    @strawberry.mutation(
        description="Create a task at the end of a project.",
        extensions=requires(Permission.TASK_WRITE_OWN),
    )
    async def create_task(
        self,
        info: Info,
        input: Annotated[CreateTaskInput, strawberry.argument(description="The new task.")],
    ) -> TaskPayload:
        def new() -> service.NewTask:
            return service.NewTask(
                project_id=parse_id(input.project_id, Project, field="projectId"),
                title=input.title,
                description=input.description,
                status=input.status,
                priority=input.priority,
                assignee_id=_assignee(input.assignee_id),
                due_date=input.due_date,
            )

        outcome = await attempt(info, lambda s, actor: service.create_task(s, new(), actor=actor))
        return TaskPayload(task=Task.maybe(outcome.value), errors=outcome.errors)

    @strawberry.mutation(
        description="Change a task's title, description, status, priority or due date "
        "(with `task:write:own`: only a task assigned to you).",
        extensions=requires(Permission.TASK_WRITE_OWN),
    )
    async def update_task(
        self,
        info: Info,
        input: Annotated[
            UpdateTaskInput, strawberry.argument(description="The task and its changes.")
        ],
    ) -> TaskPayload:
        def changes() -> service.TaskChanges:
            return service.TaskChanges(
                title=patch(input.title, field="title"),
                description=patch(input.description, field="description"),
                status=patch(input.status, field="status"),
                priority=patch(input.priority, field="priority"),
                due_date=patch_nullable(input.due_date),
            )

        outcome = await attempt(
            info,
            lambda s, actor: service.update_task(
                s, parse_id(input.id, Task), changes(), actor=actor
            ),
        )
        return TaskPayload(task=Task.maybe(outcome.value), errors=outcome.errors)

    @strawberry.mutation(
        description="Assign a task to a user, or unassign it (with `task:write:own`: only a "
        "task assigned to you).",
        extensions=requires(Permission.TASK_WRITE_OWN),
    )
    async def assign_task(
        self,
        info: Info,
        input: Annotated[
            AssignTaskInput, strawberry.argument(description="The task and its new assignee.")
        ],
    ) -> TaskPayload:
        outcome = await attempt(
            info,
            lambda s, actor: service.assign_task(
                s, parse_id(input.id, Task), _assignee(input.assignee_id), actor=actor
            ),
        )
        return TaskPayload(task=Task.maybe(outcome.value), errors=outcome.errors)

    @strawberry.mutation(
        description="Reorder a task within its project or move it to another (with "
        "`task:write:own`: only a task assigned to you).",
        extensions=requires(Permission.TASK_WRITE_OWN),
    )
    async def move_task(
        self,
        info: Info,
        input: Annotated[
            MoveTaskInput, strawberry.argument(description="The task and where it goes.")
        ],
    ) -> TaskPayload:
        outcome = await attempt(
            info,
            lambda s, actor: service.move_task(
                s,
                parse_id(input.id, Task),
                actor=actor,
                project_id=None
                if input.project_id is None
                else parse_id(input.project_id, Project, field="projectId"),
                after_id=None
                if input.after_id is None
                else parse_id(input.after_id, Task, field="afterId"),
            ),
        )
        return TaskPayload(task=Task.maybe(outcome.value), errors=outcome.errors)

    @strawberry.mutation(
        description="Delete a task with its comments (with `task:write:own`: only a task "
        "assigned to you).",
        extensions=requires(Permission.TASK_WRITE_OWN),
    )
    async def delete_task(self, info: Info, id: ObjectId) -> DeletePayload:
        outcome = await attempt(
            info, lambda s, actor: service.delete_task(s, parse_id(id, Task), actor=actor)
        )
        return DeletePayload.of(outcome, id)
