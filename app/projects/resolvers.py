"""Project queries and mutations: read arguments, call one service function, map the result."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.api.context import Info
from app.api.mutations import DeletePayload, UserError, attempt, patch
from app.api.permissions import requires
from app.api.relations import connection, result
from app.api.relay import ObjectId, load_node, parse_id
from app.projects import service
from app.projects.types import PROJECT_LISTING, Project
from app.rbac.permissions import Permission


@strawberry.input(description="A new project.")
class CreateProjectInput:
    name: str = strawberry.field(description="1-200 characters.")
    description: str = strawberry.field(default="", description="Up to 10000 characters.")


@strawberry.input(description="Changes to a project; omitted fields are kept.")
class UpdateProjectInput:
    id: strawberry.ID = strawberry.field(description="The project to change.")
    name: str | None = strawberry.field(default=strawberry.UNSET, description="New name.")
    description: str | None = strawberry.field(
        default=strawberry.UNSET, description="New description."
    )


@strawberry.type(description="The result of a project mutation.")
class ProjectPayload:
    project: Project | None = result(
        Project, description="The project as it is now; null when `errors` is not empty."
    )
    errors: list[UserError] = strawberry.field(description="Why nothing was changed.")


@strawberry.type
class ProjectQueries:
    projects = connection(
        PROJECT_LISTING, nullable=True, description="Projects of the current tenant."
    )

    @strawberry.field(
        description="A project by ID; null if there is none in this tenant.",
        extensions=requires(Permission.PROJECT_READ),
    )
    async def project(self, info: Info, id: ObjectId) -> Project | None:
        return await load_node(info, Project, parse_id(id, Project))


@strawberry.type
class ProjectMutations:
    @strawberry.mutation(
        description="Create a project.",
        extensions=requires(Permission.PROJECT_WRITE),
    )
    async def create_project(
        self,
        info: Info,
        input: Annotated[CreateProjectInput, strawberry.argument(description="The new project.")],
    ) -> ProjectPayload:
        outcome = await attempt(
            info,
            lambda s, actor: service.create_project(
                s, name=input.name, description=input.description, actor=actor
            ),
        )
        return ProjectPayload(project=Project.maybe(outcome.value), errors=outcome.errors)

    @strawberry.mutation(
        description="Rename a project or change its description.",
        extensions=requires(Permission.PROJECT_WRITE),
    )
    async def update_project(
        self,
        info: Info,
        input: Annotated[
            UpdateProjectInput, strawberry.argument(description="The project and its changes.")
        ],
    ) -> ProjectPayload:
        outcome = await attempt(
            info,
            lambda s, actor: service.update_project(
                s,
                parse_id(input.id, Project),
                actor=actor,
                name=patch(input.name, field="name"),
                description=patch(input.description, field="description"),
            ),
        )
        return ProjectPayload(project=Project.maybe(outcome.value), errors=outcome.errors)

    @strawberry.mutation(
        description="Archive a project: it keeps its tasks but takes no new ones.",
        extensions=requires(Permission.PROJECT_WRITE),
    )
    async def archive_project(self, info: Info, id: ObjectId) -> ProjectPayload:
        outcome = await attempt(
            info,
            lambda s, actor: service.set_archived(
                s, parse_id(id, Project), archived=True, actor=actor
            ),
        )
        return ProjectPayload(project=Project.maybe(outcome.value), errors=outcome.errors)

    @strawberry.mutation(
        description="Make an archived project active again.",
        extensions=requires(Permission.PROJECT_WRITE),
    )
    async def unarchive_project(self, info: Info, id: ObjectId) -> ProjectPayload:
        outcome = await attempt(
            info,
            lambda s, actor: service.set_archived(
                s, parse_id(id, Project), archived=False, actor=actor
            ),
        )
        return ProjectPayload(project=Project.maybe(outcome.value), errors=outcome.errors)

    @strawberry.mutation(
        description="Delete a project with all its tasks and comments.",
        extensions=requires(Permission.PROJECT_WRITE),
    )
    async def delete_project(self, info: Info, id: ObjectId) -> DeletePayload:
        outcome = await attempt(
            info, lambda s, actor: service.delete_project(s, parse_id(id, Project), actor=actor)
        )
        return DeletePayload.of(outcome, id)
