"""SQL for authorization. Interim: a user's one role is `users.role`, until role tables."""

from __future__ import annotations

from uuid import UUID

from app.core.db import Session


async def active_role(session: Session, user_id: UUID) -> str | None:
    """The role of an active user of the session's tenant; None for anyone else."""
    role: str | None = await session.fetchval(
        "SELECT role FROM users WHERE id = $1 AND status = 'active'", user_id
    )
    return role
