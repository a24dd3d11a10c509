"""Effective permissions, resolved per request from the user's roles (never from the token,
so a role change takes effect on the next request)."""

from __future__ import annotations

from uuid import UUID

from app.core.db import Session
from app.core.errors import Forbidden
from app.rbac import queries
from app.rbac.permissions import SYSTEM_ROLES, Permission


async def roles_of(session: Session, user_id: UUID) -> list[str]:
    role = await queries.active_role(session, user_id)
    return [] if role is None else [role]


async def permissions_of(session: Session, user_id: UUID) -> frozenset[Permission]:
    """Everything the user may do in the session's tenant (nothing if not an active user)."""
    granted: set[Permission] = set()
    for role in await roles_of(session, user_id):
        granted |= SYSTEM_ROLES.get(role, frozenset())
    return frozenset(granted)


async def require_permission(session: Session, user_id: UUID, permission: Permission) -> None:
    """Forbidden unless the user holds `permission` in the session's tenant."""
    if permission not in await permissions_of(session, user_id):
        raise Forbidden(f"This needs the {permission.value} permission")
