"""Project rules: validation, archiving, and what a project must be to take new tasks."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from app.core import validation
from app.core.actor import Actor
from app.core.db import Session
from app.core.errors import Conflict, NotFound
from app.core.tables import delete_row, fetch_by_ids, insert_row, lock_row, update_row
from app.core.validation import MISSING, Patch
from app.projects import queries
from app.projects.models import PROJECTS, Project, ProjectStatus
from app.rbac.permissions import Permission
from app.tenants.quotas import Quota, require_room

NAME_MAX = 200
DESCRIPTION_MAX = 10_000


def _name(value: str) -> str:
    return validation.text(value, field="name", max_length=NAME_MAX)


def _description(value: str) -> str:
    return validation.text(value, field="description", max_length=DESCRIPTION_MAX, min_length=0)


async def get_project(session: Session, project_id: UUID, *, field: str = "id") -> Project:
    """The project, or NotFound (also when it belongs to another tenant)."""
    found = await fetch_by_ids(session, PROJECTS, [project_id])
    if project_id not in found:
        raise NotFound("Project not found", field=field)
    return found[project_id]


async def require_active(session: Session, project_id: UUID, *, field: str) -> Project:
    """A project that may take new or moved tasks: existing and not archived."""
    project = await get_project(session, project_id, field=field)
    if project.status is ProjectStatus.ARCHIVED:
        raise Conflict("The project is archived; unarchive it first", field=field)
    return project


async def create_project(session: Session, *, name: str, description: str, actor: Actor) -> Project:
    actor.require(Permission.PROJECT_WRITE)
    values = {"name": _name(name), "description": _description(description)}
    await require_room(session, Quota.PROJECTS, queries.counted)
    return await insert_row(session, PROJECTS, {**values, "created_by": actor.user_id})


async def update_project(
    session: Session, project_id: UUID, *, name: Patch[str], description: Patch[str], actor: Actor
) -> Project:
    actor.require(Permission.PROJECT_WRITE)
    changes = validation.given(
        {
            "name": name if name is MISSING else _name(name),
            "description": description if description is MISSING else _description(description),
        }
    )
    if not changes:
        return await get_project(session, project_id)
    updated = await update_row(session, PROJECTS, project_id, changes)
    if updated is None:
        raise NotFound("Project not found", field="id")
    return updated


async def set_archived(
    session: Session, project_id: UUID, *, archived: bool, actor: Actor
) -> Project:
    """Archive or unarchive; doing it twice is harmless (the timestamp is kept)."""
    actor.require(Permission.PROJECT_WRITE)
    project = await lock_row(session, PROJECTS, project_id)
    if project is None:
        raise NotFound("Project not found", field="id")
    wanted = ProjectStatus.ARCHIVED if archived else ProjectStatus.ACTIVE
    if project.status is wanted:
        return project
    if not archived:
        await require_room(session, Quota.PROJECTS, queries.counted)
    changes: dict[str, object] = {
        "status": wanted.value,
        "archived_at": datetime.now(UTC) if archived else None,
    }
    updated = await update_row(session, PROJECTS, project_id, changes)
    assert updated is not None
    return updated


async def delete_project(session: Session, project_id: UUID, *, actor: Actor) -> None:
    """Delete the project with its tasks and their comments (foreign-key cascade)."""
    actor.require(Permission.PROJECT_WRITE)
    if not await delete_row(session, PROJECTS, project_id):
        raise NotFound("Project not found", field="id")


async def counted(session: Session) -> int:
    """Projects counted against the tenant's quota: the active ones."""
    return await queries.counted(session)
