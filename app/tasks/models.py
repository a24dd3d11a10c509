"""Tasks: units of work in a project, ordered by a fractional `position`."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

from app.core.tables import Ordering, Table


class TaskStatus(enum.Enum):
    TODO = "todo"
    IN_PROGRESS = "in_progress"
    BLOCKED = "blocked"
    DONE = "done"
    CANCELLED = "cancelled"


class TaskPriority(enum.Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"


@dataclass(frozen=True)
class Task:
    id: UUID
    project_id: UUID
    title: str
    description: str
    status: TaskStatus
    priority: TaskPriority
    assignee_id: UUID | None
    due_date: date | None
    position: float
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime


TASKS = Table("tasks", Task)

_PRIORITY_RANK = "array_position(ARRAY['low','medium','high','urgent']::text[], t.priority)"


class TaskOrderField(enum.Enum):
    """Every order a client may ask for, each member's value its SQL ordering. The GraphQL
    enum of the same name is this one."""

    POSITION = Ordering("t.position", "double precision")
    CREATED_AT = Ordering("t.created_at", "timestamptz")
    UPDATED_AT = Ordering("t.updated_at", "timestamptz")
    # Tasks without a due date sort after every dated one, in both directions.
    DUE_DATE = Ordering(
        "COALESCE(t.due_date, 'infinity'::date)",
        "date",
        descending_expression="COALESCE(t.due_date, '-infinity'::date)",
    )
    PRIORITY = Ordering(_PRIORITY_RANK, "integer")
