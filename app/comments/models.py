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

COMMENT_ORDERINGS = {"CREATED_AT": Ordering("t.created_at", "timestamptz")}
