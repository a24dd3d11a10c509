"""SQL for tenants. Row-level security shows a session only its own tenant row."""

from __future__ import annotations

from uuid import UUID

from app.core.db import Session
from app.tenants.models import TENANTS, Tenant, TenantRef, TenantStatus


async def lookup_slug(session: Session, slug: str) -> TenantRef | None:
    # The one SECURITY DEFINER path to a tenant row the session is not bound to.
    row = await session.fetchrow("SELECT id, status FROM app.tenant_by_slug($1)", slug)
    return None if row is None else TenantRef(row["id"], TenantStatus(row["status"]))


async def ids(session: Session) -> list[UUID]:
    """Every tenant's id (in the platform scope with no tenant bound: app/core/db.py)."""
    return [r["id"] for r in await session.fetch("SELECT id FROM tenants ORDER BY id")]


async def insert(session: Session, tenant_id: UUID, slug: str, name: str, plan: str) -> Tenant:
    row = await session.fetchrow(
        f"INSERT INTO tenants AS t (id, slug, name, plan) VALUES ($1, $2, $3, $4) "
        f"RETURNING {TENANTS.select_list()}",
        tenant_id,
        slug,
        name,
        plan,
    )
    assert row is not None
    return TENANTS.to_model(row)


async def current(session: Session, *, lock: bool = False) -> Tenant | None:
    """The bound tenant; with `lock`, its row stays locked until the transaction ends (two
    lifecycle changes of one tenant then run one after the other)."""
    row = await session.fetchrow(
        f"SELECT {TENANTS.select_list()} FROM tenants t{' FOR UPDATE' if lock else ''}"
    )
    return None if row is None else TENANTS.to_model(row)


async def restorable(session: Session, retention_days: int) -> bool:
    """Whether the deleted tenant is still within its retention period (compared in SQL: a
    purge that has begun sets deleted_at to -infinity, which Python cannot represent)."""
    return bool(
        await session.fetchval(
            "SELECT deleted_at + make_interval(days => $1) >= statement_timestamp() FROM tenants",
            retention_days,
        )
    )


async def mfa_required(session: Session) -> bool:
    return bool(await session.fetchval("SELECT mfa_required FROM tenants"))


async def set_mfa_required(session: Session, required: bool) -> Tenant | None:
    row = await session.fetchrow(
        f"UPDATE tenants AS t SET mfa_required = $1, updated_at = statement_timestamp()"
        f" RETURNING {TENANTS.select_list()}",
        required,
    )
    return None if row is None else TENANTS.to_model(row)


async def status(session: Session) -> TenantStatus | None:
    value = await session.fetchval("SELECT status FROM tenants")
    return None if value is None else TenantStatus(value)


async def set_status(session: Session, status: TenantStatus) -> Tenant | None:
    row = await session.fetchrow(
        f"UPDATE tenants AS t SET status = $1, updated_at = statement_timestamp(),"
        f" deleted_at = CASE WHEN $1 = 'deleted' THEN statement_timestamp() END"
        f" RETURNING {TENANTS.select_list()}",
        status.value,
    )
    return None if row is None else TENANTS.to_model(row)


async def close_retention(session: Session) -> None:
    """A purge has begun: the deleted tenant can no longer be restored."""
    await session.execute("UPDATE tenants SET deleted_at = '-infinity' WHERE status = 'deleted'")


async def delete(session: Session) -> int:
    """Delete the bound tenant's row; what is left of its rows goes with it (cascade)."""
    status = await session.execute("DELETE FROM tenants")
    return int(status.split()[-1])


async def update(session: Session, *, name: str | None, plan: str | None) -> Tenant | None:
    """Change the bound tenant's name and/or plan (None keeps the value)."""
    row = await session.fetchrow(
        f"UPDATE tenants AS t SET name = coalesce($1, t.name), plan = coalesce($2, t.plan),"
        f" updated_at = statement_timestamp() RETURNING {TENANTS.select_list()}",
        name,
        plan,
    )
    return None if row is None else TENANTS.to_model(row)


async def feature_flags(session: Session) -> list[tuple[str, bool]]:
    rows = await session.fetch("SELECT key, enabled FROM tenant_features ORDER BY key")
    return [(r["key"], r["enabled"]) for r in rows]


async def feature_flag(session: Session, key: str) -> bool | None:
    """The flag's value, its row locked until the transaction ends; None when unset."""
    value: bool | None = await session.fetchval(
        "SELECT enabled FROM tenant_features WHERE key = $1 FOR UPDATE", key
    )
    return value


async def count_feature_flags(session: Session) -> int:
    return int(await session.fetchval("SELECT count(*) FROM tenant_features"))


async def upsert_feature_flag(session: Session, key: str, enabled: bool) -> None:
    await session.execute(
        "INSERT INTO tenant_features (tenant_id, key, enabled)"
        " VALUES (app.current_tenant_id(), $1, $2)"
        " ON CONFLICT (tenant_id, key) DO UPDATE"
        " SET enabled = excluded.enabled, updated_at = statement_timestamp()",
        key,
        enabled,
    )


async def delete_feature_flag(session: Session, key: str) -> bool | None:
    value: bool | None = await session.fetchval(
        "DELETE FROM tenant_features WHERE key = $1 RETURNING enabled", key
    )
    return value


async def update_settings(session: Session, values: dict[str, object]) -> Tenant | None:
    """Set the given settings columns (names from app/tenants/service.py, never input)."""
    assignments = ", ".join(f"{column} = ${i}" for i, column in enumerate(values, start=1))
    row = await session.fetchrow(
        f"UPDATE tenants AS t SET {assignments}, updated_at = statement_timestamp()"
        f" RETURNING {TENANTS.select_list()}",
        *values.values(),
    )
    return None if row is None else TENANTS.to_model(row)


async def session_lifetime_hours(session: Session) -> int | None:
    value: int | None = await session.fetchval("SELECT session_lifetime_hours FROM tenants")
    return value


async def default_task_status(session: Session) -> str | None:
    value: str | None = await session.fetchval("SELECT default_task_status FROM tenants")
    return value


async def cors_origins(session: Session) -> list[str] | None:
    value: list[str] | None = await session.fetchval("SELECT cors_origins FROM tenants")
    return value


async def lock_plan(session: Session) -> str | None:
    """The bound tenant's plan, its row locked (against concurrent additions and plan
    changes) until the transaction ends."""
    value: str | None = await session.fetchval("SELECT plan FROM tenants FOR NO KEY UPDATE")
    return value
