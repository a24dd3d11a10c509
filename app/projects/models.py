"""Projects: the containers of tasks."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from app.core.tables import Ordering, Table


class ProjectStatus(enum.Enum):
    ACTIVE = "active"
    ARCHIVED = "archived"


@dataclass(frozen=True)
class Project:
    id: UUID
    name: str
    description: str
    status: ProjectStatus
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None


PROJECTS = Table("projects", Project)


class ProjectOrderField(enum.Enum):
    """Every order a client may ask for, each member's value its SQL ordering (expressions
    NOT NULL, for keyset pagination). The GraphQL enum of the same name is this one."""

    CREATED_AT = Ordering("t.created_at", "timestamptz")
    UPDATED_AT = Ordering("t.updated_at", "timestamptz")
    NAME = Ordering("t.name", "text")
