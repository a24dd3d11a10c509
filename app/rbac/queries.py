"""SQL for roles, role permissions and role assignments (the tenant comes from RLS)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from uuid import UUID

from app.core.db import Session
from app.rbac.models import ROLES, Grant, Role

# System roles first, in their fixed order, then custom roles by name.
_ROLE_ORDER = (
    "array_position(ARRAY['owner', 'admin', 'member', 'viewer'], t.key) NULLS LAST,"
    " lower(t.name), t.id"
)


async def insert_system_roles(session: Session, roles: Iterable[tuple[str, str, str]]) -> None:
    """(key, name, description) rows for the bound tenant."""
    await session.executemany(
        "INSERT INTO roles (tenant_id, key, name, description)"
        " VALUES (app.current_tenant_id(), $1, $2, $3)",
        [list(r) for r in roles],
    )


async def grants(session: Session, user_ids: Sequence[UUID]) -> dict[UUID, list[Grant]]:
    """The roles *active* users hold, with their stored permissions (nothing for others)."""
    rows = await session.fetch(
        "SELECT ur.user_id, r.key, coalesce(array_agg(rp.permission)"
        "   FILTER (WHERE rp.permission IS NOT NULL), '{}') AS permissions"
        " FROM user_roles ur"
        " JOIN users u ON u.id = ur.user_id AND u.status = 'active'"
        " JOIN roles r ON r.id = ur.role_id"
        " LEFT JOIN role_permissions rp ON rp.role_id = r.id"
        " WHERE ur.user_id = ANY($1::uuid[])"
        " GROUP BY ur.user_id, r.id, r.key",
        list(user_ids),
    )
    found: dict[UUID, list[Grant]] = {}
    for row in rows:
        found.setdefault(row["user_id"], []).append(
            Grant(row["key"], frozenset(row["permissions"]))
        )
    return found


async def all_roles(session: Session) -> list[Role]:
    rows = await session.fetch(f"SELECT {ROLES.select_list()} FROM roles t ORDER BY {_ROLE_ORDER}")
    return [ROLES.to_model(r) for r in rows]


async def roles_of_users(session: Session, user_ids: Sequence[UUID]) -> dict[UUID, list[Role]]:
    rows = await session.fetch(
        f"SELECT ur.user_id, {ROLES.select_list()} FROM user_roles ur"
        " JOIN roles t ON t.id = ur.role_id"
        f" WHERE ur.user_id = ANY($1::uuid[]) ORDER BY {_ROLE_ORDER}",
        list(user_ids),
    )
    found: dict[UUID, list[Role]] = {}
    for row in rows:
        found.setdefault(row["user_id"], []).append(ROLES.to_model(row))
    return found


async def role_by_key(session: Session, key: str, *, lock: bool = False) -> Role | None:
    row = await session.fetchrow(
        f"SELECT {ROLES.select_list()} FROM roles t WHERE t.key = $1"
        + (" FOR UPDATE" if lock else ""),
        key,
    )
    return None if row is None else ROLES.to_model(row)


async def stored_permissions(
    session: Session, role_ids: Sequence[UUID]
) -> dict[UUID, frozenset[str]]:
    rows = await session.fetch(
        "SELECT role_id, array_agg(permission ORDER BY permission) AS permissions"
        " FROM role_permissions WHERE role_id = ANY($1::uuid[]) GROUP BY role_id",
        list(role_ids),
    )
    return {row["role_id"]: frozenset(row["permissions"]) for row in rows}


async def set_permissions(session: Session, role_id: UUID, permissions: Iterable[str]) -> None:
    """Replace the role's stored permissions with `permissions`."""
    wanted = sorted(set(permissions))
    await session.execute(
        "DELETE FROM role_permissions WHERE role_id = $1 AND NOT (permission = ANY($2::text[]))",
        role_id,
        wanted,
    )
    await session.execute(
        "INSERT INTO role_permissions (tenant_id, role_id, permission)"
        " SELECT app.current_tenant_id(), $1, p FROM unnest($2::text[]) AS p"
        " ON CONFLICT (tenant_id, role_id, permission) DO NOTHING",
        role_id,
        wanted,
    )


async def count_custom_roles(session: Session) -> int:
    return int(await session.fetchval("SELECT count(*) FROM roles WHERE key IS NULL"))


async def holder_counts(session: Session, role_ids: Sequence[UUID]) -> dict[UUID, int]:
    rows = await session.fetch(
        "SELECT role_id, count(*) AS n FROM user_roles"
        " WHERE role_id = ANY($1::uuid[]) GROUP BY role_id",
        list(role_ids),
    )
    return {row["role_id"]: int(row["n"]) for row in rows}


async def assign(session: Session, user_id: UUID, role_id: UUID, granted_by: UUID | None) -> bool:
    """True when the user did not hold the role before."""
    inserted = await session.fetchval(
        "WITH i AS (INSERT INTO user_roles (tenant_id, user_id, role_id, granted_by)"
        " VALUES (app.current_tenant_id(), $1, $2, $3)"
        " ON CONFLICT (tenant_id, user_id, role_id) DO NOTHING RETURNING 1)"
        " SELECT count(*) FROM i",
        user_id,
        role_id,
        granted_by,
    )
    return bool(inserted)


async def unassign(session: Session, user_id: UUID, role_id: UUID) -> bool:
    """True when the user held the role."""
    deleted = await session.fetchval(
        "WITH d AS (DELETE FROM user_roles WHERE user_id = $1 AND role_id = $2 RETURNING 1)"
        " SELECT count(*) FROM d",
        user_id,
        role_id,
    )
    return bool(deleted)


async def active_holders(session: Session, role_id: UUID, *, excluding: UUID) -> int:
    """Active users other than `excluding` who hold the role."""
    return int(
        await session.fetchval(
            "SELECT count(*) FROM user_roles ur JOIN users u ON u.id = ur.user_id"
            " WHERE ur.role_id = $1 AND u.status = 'active' AND ur.user_id <> $2",
            role_id,
            excluding,
        )
    )


async def unassign_all(session: Session, user_id: UUID) -> None:
    await session.execute("DELETE FROM user_roles WHERE user_id = $1", user_id)
