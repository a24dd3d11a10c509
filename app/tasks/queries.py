"""SQL for task ordering: fractional positions within a project."""

from __future__ import annotations

from uuid import UUID

from app.core.db import Session

# Gap between neighbours when appending or renumbering: ~50 halvings fit before a renumber.
POSITION_STEP = 1024.0


async def last_position(session: Session, project_id: UUID) -> float | None:
    value = await session.fetchval(
        "SELECT max(position) FROM tasks WHERE project_id = $1", project_id
    )
    return None if value is None else float(value)


async def next_position(
    session: Session, project_id: UUID, *, after: float | None, exclude: UUID
) -> float | None:
    """The smallest position after `after` (None: from the start), ignoring task `exclude`."""
    value = await session.fetchval(
        "SELECT min(position) FROM tasks WHERE project_id = $1 AND id <> $2 "
        "AND ($3::double precision IS NULL OR position > $3)",
        project_id,
        exclude,
        after,
    )
    return None if value is None else float(value)


async def renumber(session: Session, project_id: UUID) -> None:
    """Spread the project's positions evenly again, keeping their order."""
    await session.execute(
        "UPDATE tasks t SET position = s.rn * $2::double precision FROM ("
        "  SELECT id, row_number() OVER (ORDER BY position, id) AS rn"
        "  FROM tasks WHERE project_id = $1) s "
        "WHERE t.id = s.id",
        project_id,
        POSITION_STEP,
    )
