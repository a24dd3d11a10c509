"""Comments on tasks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from app.core.tables import Ordering, Table


@dataclass(frozen=True)
class Comment:
    id: UUID
    task_id: UUID
    author_id: UUID | None
    body: str
    created_at: datetime
    updated_at: datetime
    edited_at: datetime | None


COMMENTS = Table("comments", Comment)

# A task's comments read oldest first, as a conversation does.
OLDEST_FIRST = Ordering("t.created_at", "timestamptz")
