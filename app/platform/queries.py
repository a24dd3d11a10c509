"""SQL for platform administrators and their sessions.

Every statement here runs in a platform-scoped session (app/core/db.py); anywhere else the
row-level-security policies of these tables match no row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import asyncpg

from app.core.db import Session
from app.platform.models import (
    PLATFORM_ADMINS,
    AdminCredentials,
    AdminStatus,
    ExpiredTenant,
    PlatformAdmin,
)

_ADMIN = PLATFORM_ADMINS.select_list()


def _admin(row: asyncpg.Record | None) -> PlatformAdmin:
    assert row is not None
    return PLATFORM_ADMINS.to_model(row)


async def insert_admin(
    session: Session,
    *,
    email: str,
    name: str,
    password_hash: str,
    totp_secret: bytes,
    totp_key_version: int,
    permissions: list[str],
    admin_id: UUID,
) -> PlatformAdmin:
    row = await session.fetchrow(
        "INSERT INTO platform_admins AS t (id, email, name, password_hash, totp_secret,"
        " totp_key_version, permissions) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        f" RETURNING {_ADMIN}",
        admin_id,
        email,
        name,
        password_hash,
        totp_secret,
        totp_key_version,
        permissions,
    )
    return _admin(row)


async def by_email(session: Session, email: str) -> PlatformAdmin | None:
    row = await session.fetchrow(
        f"SELECT {_ADMIN} FROM platform_admins t WHERE lower(t.email) = lower($1)", email
    )
    return None if row is None else _admin(row)


async def by_id(session: Session, admin_id: UUID) -> PlatformAdmin | None:
    row = await session.fetchrow(
        f"SELECT {_ADMIN} FROM platform_admins t WHERE t.id = $1", admin_id
    )
    return None if row is None else _admin(row)


async def all_admins(session: Session) -> list[PlatformAdmin]:
    rows = await session.fetch(f"SELECT {_ADMIN} FROM platform_admins t ORDER BY lower(t.email)")
    return [_admin(r) for r in rows]


async def credentials(session: Session, email: str) -> tuple[str, AdminCredentials | None]:
    """The administrator with this email (any case), if any, and the email as the lookup
    compares it (what sign-in throttling keys the account on, known or not)."""
    # From the given email outwards: one row whether or not an administrator has it.
    row = await session.fetchrow(
        "SELECT lower(given.email) AS compared_as, a.id, a.status, a.password_hash,"
        " a.totp_secret, a.totp_key_version, a.totp_last_used_step"
        " FROM (SELECT $1::text AS email) AS given"
        " LEFT JOIN platform_admins a ON lower(a.email) = lower(given.email)",
        email,
    )
    assert row is not None
    if row["id"] is None:
        return row["compared_as"], None
    return row["compared_as"], AdminCredentials(
        id=row["id"],
        status=AdminStatus(row["status"]),
        password_hash=row["password_hash"],
        totp_secret=row["totp_secret"],
        totp_key_version=row["totp_key_version"],
        totp_last_used_step=row["totp_last_used_step"],
    )


async def use_totp_step(session: Session, admin_id: UUID, step: int) -> bool:
    """Record `step` as used; False when it (or a later one) already was: a concurrent
    sign-in with the same code loses here, so a code works once."""
    updated = await session.fetchval(
        "UPDATE platform_admins SET totp_last_used_step = $2, last_sign_in_at = now()"
        " WHERE id = $1 AND (totp_last_used_step IS NULL OR totp_last_used_step < $2)"
        " RETURNING id",
        admin_id,
        step,
    )
    return updated is not None


async def set_password_hash(session: Session, admin_id: UUID, password_hash: str) -> None:
    await session.execute(
        "UPDATE platform_admins SET password_hash = $2 WHERE id = $1", admin_id, password_hash
    )


async def set_status(session: Session, admin_id: UUID, status: AdminStatus) -> PlatformAdmin:
    row = await session.fetchrow(
        "UPDATE platform_admins AS t SET status = $2, updated_at = statement_timestamp()"
        f" WHERE t.id = $1 RETURNING {_ADMIN}",
        admin_id,
        status.value,
    )
    return _admin(row)


async def set_permissions(
    session: Session, admin_id: UUID, permissions: list[str]
) -> PlatformAdmin:
    row = await session.fetchrow(
        "UPDATE platform_admins AS t SET permissions = $2, updated_at = statement_timestamp()"
        f" WHERE t.id = $1 RETURNING {_ADMIN}",
        admin_id,
        permissions,
    )
    return _admin(row)


async def reset_credentials(
    session: Session,
    admin_id: UUID,
    *,
    password_hash: str | None,
    totp_secret: bytes,
    totp_key_version: int,
) -> PlatformAdmin:
    """A new TOTP secret (its step history restarts) and, when given, a new password."""
    row = await session.fetchrow(
        "UPDATE platform_admins AS t SET password_hash = coalesce($2, t.password_hash),"
        " totp_secret = $3, totp_key_version = $4, totp_last_used_step = NULL,"
        f" updated_at = statement_timestamp() WHERE t.id = $1 RETURNING {_ADMIN}",
        admin_id,
        password_hash,
        totp_secret,
        totp_key_version,
    )
    return _admin(row)


async def insert_session(
    session: Session,
    *,
    admin_id: UUID,
    amr: tuple[str, ...],
    user_agent: str,
    ip: str | None,
    expires_at: datetime,
) -> tuple[UUID, datetime]:
    """A new platform session: its id and when it was opened (the token's auth_time)."""
    row = await session.fetchrow(
        "INSERT INTO platform_sessions (admin_id, amr, user_agent, ip, expires_at)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING id, created_at",
        admin_id,
        list(amr),
        user_agent,
        ip,
        expires_at,
    )
    assert row is not None
    return row["id"], row["created_at"]


async def live_session_permissions(
    session: Session, session_id: UUID, admin_id: UUID
) -> list[str] | None:
    """The permissions of an active administrator in a live session; None when the session
    was ended, has expired, or its administrator was disabled."""
    row = await session.fetchrow(
        "SELECT a.permissions FROM platform_sessions s"
        " JOIN platform_admins a ON a.id = s.admin_id"
        " WHERE s.id = $1 AND s.admin_id = $2 AND s.revoked_at IS NULL"
        " AND s.expires_at > now() AND a.status = 'active'",
        session_id,
        admin_id,
    )
    return None if row is None else list(row["permissions"])


async def session_expires_at(session: Session, session_id: UUID) -> datetime | None:
    """When a live platform session ends; None once it has been ended."""
    expires: datetime | None = await session.fetchval(
        "SELECT expires_at FROM platform_sessions WHERE id = $1 AND revoked_at IS NULL",
        session_id,
    )
    return expires


async def revoke_sessions(
    session: Session, *, reason: str, admin_id: UUID, session_id: UUID | None = None
) -> int:
    """End one session of the administrator, or (without `session_id`) all of them."""
    status = await session.execute(
        "UPDATE platform_sessions SET revoked_at = now(), revoked_reason = $3"
        " WHERE admin_id = $1 AND ($2::uuid IS NULL OR id = $2) AND revoked_at IS NULL"
        " AND expires_at > now()",
        admin_id,
        session_id,
        reason,
    )
    return int(status.split()[-1])


async def provisioned(
    session: Session, admin_id: UUID, idempotency_key: str
) -> tuple[bytes, UUID] | None:
    """The request digest and tenant of an earlier createTenant with this key."""
    row = await session.fetchrow(
        "SELECT request_digest, created_tenant_id FROM tenant_provisioning"
        " WHERE admin_id = $1 AND idempotency_key = $2",
        admin_id,
        idempotency_key,
    )
    return None if row is None else (bytes(row["request_digest"]), row["created_tenant_id"])


async def insert_provisioning(
    session: Session, admin_id: UUID, idempotency_key: str, digest: bytes, tenant_id: UUID
) -> None:
    await session.execute(
        "INSERT INTO tenant_provisioning (admin_id, idempotency_key, request_digest,"
        " created_tenant_id) VALUES ($1, $2, $3, $4)",
        admin_id,
        idempotency_key,
        digest,
        tenant_id,
    )


async def expired_tenants(
    session: Session, retention_days: int, limit: int | None
) -> list[ExpiredTenant]:
    """Deleted tenants whose retention period is over, longest deleted first, from the
    registry (readable in the platform scope with no tenant bound). Compared in SQL, as
    `restorable` does, so the two agree; a purge that has begun set deleted_at to -infinity,
    which is over too, so the retention job finishes interrupted purges."""
    rows = await session.fetch(
        "SELECT id, slug, NULLIF(deleted_at, '-infinity') AS deleted_at FROM tenants"
        " WHERE status = 'deleted'"
        " AND deleted_at + make_interval(days => $1) < statement_timestamp()"
        # The column, not the output's NULLIF: interrupted purges (-infinity) come first.
        " ORDER BY tenants.deleted_at, id LIMIT $2",
        retention_days,
        limit,
    )
    return [ExpiredTenant(r["id"], r["slug"], r["deleted_at"]) for r in rows]


async def purgeable_tables(session: Session) -> list[str]:
    """The tenant tables the server may delete from, children before parents (by their
    foreign keys), found in the catalog: every table a later migration adds is included.
    Not `tenants` itself (deleted last), nor append-only tables (their rows go with it)."""
    return await tenant_tables(session, privilege="DELETE")


async def tenant_tables(session: Session, *, privilege: str) -> list[str]:
    """Every table with a `tenant_id` column on which the server holds `privilege`
    (SELECT, INSERT, DELETE), children before parents by their foreign keys, from the
    catalog. Reversed, parents come first (the order rows can be inserted in)."""
    assert privilege in ("SELECT", "INSERT", "DELETE")
    rows = await session.fetch(
        """
        SELECT format('%I.%I', n.nspname, c.relname) AS name, c.oid
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
                           AND NOT a.attisdropped
        WHERE c.relkind IN ('r', 'p') AND n.nspname = 'public'
          AND has_table_privilege(c.oid, $1)
        """,
        privilege,
    )
    edges = await session.fetch(
        "SELECT conrelid AS child, confrelid AS parent FROM pg_constraint"
        " WHERE contype = 'f' AND conrelid <> confrelid"
    )
    names = {r["oid"]: r["name"] for r in rows}
    children: dict[int, set[int]] = {oid: set() for oid in names}
    for edge in edges:
        if edge["child"] in names and edge["parent"] in names:
            children[edge["parent"]].add(edge["child"])
    ordered: list[str] = []
    done: set[int] = set()

    def visit(oid: int) -> None:
        if oid in done:
            return
        done.add(oid)
        for child in sorted(children[oid]):
            visit(child)
        ordered.append(names[oid])

    for oid in sorted(names):
        visit(oid)
    return ordered


async def delete_batch(session: Session, table: str, size: int) -> int:
    """Delete up to `size` rows of the bound tenant from `table` (a name from
    `purgeable_tables`, never from input); row-level security confines it to the tenant."""
    status = await session.execute(
        f"DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table} LIMIT $1))",
        size,
    )
    return int(status.split()[-1])


async def tenant_usage(session: Session, tenant_ids: Sequence[UUID]) -> list[asyncpg.Record]:
    """Counts per tenant through app.tenant_usage() (answers only in the platform scope)."""
    return await session.fetch(
        "SELECT tenant_id, users, projects, tasks, storage_bytes, last_activity_at"
        " FROM app.tenant_usage($1::uuid[])",
        list(tenant_ids),
    )


async def tenant_feature_flags(
    session: Session, tenant_ids: Sequence[UUID]
) -> list[asyncpg.Record]:
    """Flags per tenant through app.tenant_feature_flags() (answers only in the platform scope)."""
    return await session.fetch(
        "SELECT tenant_id, key, enabled FROM app.tenant_feature_flags($1::uuid[])",
        list(tenant_ids),
    )
