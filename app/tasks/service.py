"""Task rules: validation, assignment, ordering within and across projects, and who may
change a task: holders of `task:write` any task, holders of `task:write:own` only the
tasks assigned to them (and they may create tasks)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from uuid import UUID

from app.core import validation
from app.core.actor import Actor
from app.core.db import Session
from app.core.errors import Forbidden, Invalid, NotFound
from app.core.tables import delete_row, fetch_by_ids, insert_row, lock_row, update_row
from app.core.validation import MISSING, Patch
from app.projects.service import require_active
from app.rbac.permissions import Permission
from app.tasks import queries
from app.tasks.models import TASKS, Task, TaskPriority, TaskStatus
from app.tenants.service import default_task_status
from app.users.service import get_user

TITLE_MAX = 500
DESCRIPTION_MAX = 20_000


def _title(value: str) -> str:
    return validation.text(value, field="title", max_length=TITLE_MAX)


def _description(value: str) -> str:
    return validation.text(value, field="description", max_length=DESCRIPTION_MAX, min_length=0)


def _due_date(value: date | None) -> date | None:
    # Dates far outside any plan are almost always client bugs (epoch 0, year 9999).
    if value is not None and not date(1970, 1, 1) <= value <= date(2999, 12, 31):
        raise Invalid("`dueDate` must be between 1970-01-01 and 2999-12-31", field="dueDate")
    return value


@dataclass(frozen=True)
class NewTask:
    project_id: UUID
    title: str
    description: str = ""
    # None: the tenant's default task status (tenant.defaultTaskStatus).
    status: TaskStatus | None = None
    priority: TaskPriority = TaskPriority.MEDIUM
    assignee_id: UUID | None = None
    due_date: date | None = None


@dataclass(frozen=True)
class TaskChanges:
    title: Patch[str] = MISSING
    description: Patch[str] = MISSING
    status: Patch[TaskStatus] = MISSING
    priority: Patch[TaskPriority] = MISSING
    due_date: Patch[date | None] = MISSING


async def get_task(session: Session, task_id: UUID, *, field: str = "id") -> Task:
    """The task, or NotFound (also when it belongs to another tenant)."""
    found = await fetch_by_ids(session, TASKS, [task_id])
    if task_id not in found:
        raise NotFound("Task not found", field=field)
    return found[task_id]


async def _locked(session: Session, task_id: UUID, actor: Actor) -> Task:
    """The task, locked for the change `actor` is about to make to it."""
    task = await lock_row(session, TASKS, task_id)
    if task is None:
        raise NotFound("Task not found", field="id")
    if not actor.can(Permission.TASK_WRITE):
        actor.require(Permission.TASK_WRITE_OWN)
        if task.assignee_id != actor.user_id:
            raise Forbidden("You can only change tasks assigned to you", field="id")
    return task


async def create_task(session: Session, new: NewTask, *, actor: Actor) -> Task:
    """Append a task to an active project."""
    actor.require(Permission.TASK_WRITE_OWN)
    values: dict[str, object] = {
        "title": _title(new.title),
        "description": _description(new.description),
        "status": (new.status or await default_task_status(session)).value,
        "priority": new.priority.value,
        "due_date": _due_date(new.due_date),
        "created_by": actor.user_id,
    }
    await require_active(session, new.project_id, field="projectId")
    if new.assignee_id is not None:
        await get_user(session, new.assignee_id, field="assigneeId")
    last = await queries.last_position(session, new.project_id)
    values |= {
        "project_id": new.project_id,
        "assignee_id": new.assignee_id,
        "position": queries.POSITION_STEP if last is None else last + queries.POSITION_STEP,
    }
    return await insert_row(session, TASKS, values)


async def update_task(
    session: Session, task_id: UUID, changes: TaskChanges, *, actor: Actor
) -> Task:
    c = changes
    values = validation.given(
        {
            "title": c.title if c.title is MISSING else _title(c.title),
            "description": c.description
            if c.description is MISSING
            else _description(c.description),
            "status": c.status if c.status is MISSING else c.status.value,
            "priority": c.priority if c.priority is MISSING else c.priority.value,
            "due_date": c.due_date if c.due_date is MISSING else _due_date(c.due_date),
        }
    )
    task = await _locked(session, task_id, actor)
    if not values:
        return task
    updated = await update_row(session, TASKS, task_id, values)
    assert updated is not None  # locked above
    return updated


async def assign_task(
    session: Session, task_id: UUID, assignee_id: UUID | None, *, actor: Actor
) -> Task:
    """Assign to a user of this tenant, or unassign with None (with `task:write:own`, one's
    own tasks can be handed to someone else, after which they are no longer one's own)."""
    await _locked(session, task_id, actor)
    if assignee_id is not None:
        await get_user(session, assignee_id, field="assigneeId")
    updated = await update_row(session, TASKS, task_id, {"assignee_id": assignee_id})
    assert updated is not None  # locked above
    return updated


async def move_task(
    session: Session,
    task_id: UUID,
    *,
    project_id: UUID | None,
    after_id: UUID | None,
    actor: Actor,
) -> Task:
    """Place the task right after `after_id` (None: first) in `project_id` (None: its own).

    Positions are fractional: the task takes the midpoint of its new neighbours. When
    repeated moves exhaust the float gap, the project is renumbered once and retried.
    """
    task = await _locked(session, task_id, actor)
    target = task.project_id if project_id is None else project_id
    if target != task.project_id:
        await require_active(session, target, field="projectId")
    after: Task | None = None
    if after_id is not None:
        if after_id == task_id:
            raise Invalid("A task cannot be moved after itself", field="afterId")
        after = await get_task(session, after_id, field="afterId")
        if after.project_id != target:
            raise Invalid("`afterId` must be a task of the target project", field="afterId")
    for attempt in range(2):
        position = await _position_between(session, target, after, task_id)
        if position is not None:
            break
        if attempt == 0:
            await queries.renumber(session, target)
            if after is not None:
                after = await get_task(session, after.id)
    assert position is not None
    updated = await update_row(
        session, TASKS, task_id, {"project_id": target, "position": position}
    )
    assert updated is not None
    return updated


async def _position_between(
    session: Session, project_id: UUID, after: Task | None, moving: UUID
) -> float | None:
    low = None if after is None else after.position
    high = await queries.next_position(session, project_id, after=low, exclude=moving)
    if low is None and high is None:
        return queries.POSITION_STEP
    if low is None:
        assert high is not None
        return high - queries.POSITION_STEP
    if high is None:
        return low + queries.POSITION_STEP
    middle = (low + high) / 2
    # No representable float strictly between the neighbours any more.
    return middle if low < middle < high else None


async def delete_task(session: Session, task_id: UUID, *, actor: Actor) -> None:
    """Delete the task and its comments (foreign-key cascade)."""
    await _locked(session, task_id, actor)
    await delete_row(session, TASKS, task_id)
