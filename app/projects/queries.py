"""SQL for projects beyond the generic row operations (app/core/tables.py). The tenant
comes from the bound transaction (RLS), never from input."""

from __future__ import annotations

from app.core.db import Session


async def counted(session: Session) -> int:
    """Active projects (what the plan's project quota counts)."""
    return int(await session.fetchval("SELECT count(*) FROM projects WHERE status = 'active'"))
