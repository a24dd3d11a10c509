"""GraphQL types for projects, and the project listing."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

import strawberry

from app.api.permissions import Rule, needs
from app.api.relations import Argument, TypeRef, connection, listing, order_by, to_one
from app.api.relay import Node
from app.core.tables import Filter, Table
from app.projects.models import PROJECTS, ProjectOrderField, ProjectStatus
from app.rbac.permissions import Permission
from app.tasks.types import TASK_LISTING
from app.users.types import User

strawberry.enum(ProjectStatus, description="Whether a project takes new work.")


@strawberry.input(description="Conditions a project must meet.")
class ProjectFilter:
    status: ProjectStatus | None = strawberry.field(
        default=None, description="Only projects in this status."
    )


def project_filters(filter: ProjectFilter | None) -> tuple[Filter, ...]:
    """The declarative equality filters a ProjectFilter stands for."""
    if filter is None or filter.status is None:
        return ()
    return (("status", filter.status.value),)


PROJECT_LISTING = listing(
    TypeRef(__name__, "Project"),
    order=order_by(
        ProjectOrderField,
        default=ProjectOrderField.CREATED_AT,
        plural="projects",
        argument="Order of the projects (default: oldest first).",
    ),
    arguments=[Argument("filter", ProjectFilter, "Only matching projects.")],
    filters=project_filters,
)


@strawberry.type(description="A container of tasks.")
class Project(Node):
    table: ClassVar[Table[Any]] = PROJECTS
    read_rule: ClassVar[Rule | None] = needs(Permission.PROJECT_READ)
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

    creator = to_one(
        User,
        key="created_by",
        nullable=True,
        name="createdBy",
        description="Who created the project (null if that user was deleted).",
    )
    tasks = connection(
        TASK_LISTING,
        partition="project_id",
        description="Tasks of this project; by position unless ordered otherwise.",
    )
