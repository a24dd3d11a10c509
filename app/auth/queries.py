"""SQL for sessions and refresh tokens. The tenant comes from the bound transaction."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from app.auth.models import AUTH_SESSIONS, AuthSession, RefreshCandidate
from app.core.db import Session

_SESSION_COLUMNS = AUTH_SESSIONS.select_list("s")


async def insert_session(
    session: Session,
    *,
    user_id: UUID,
    aal: int,
    amr: tuple[str, ...],
    user_agent: str,
    ip: str | None,
    expires_at: datetime,
    impersonator_id: UUID | None = None,
    platform_session_id: UUID | None = None,
) -> AuthSession:
    """A session of the user; with `impersonator_id`, one a platform administrator opened
    from their platform session `platform_session_id` (break-glass impersonation)."""
    row = await session.fetchrow(
        "INSERT INTO auth_sessions AS s (tenant_id, user_id, aal, amr, user_agent, ip,"
        " expires_at, impersonator_id, platform_session_id)"
        " VALUES (app.current_tenant_id(), $1, $2, $3, $4, $5, $6, $7, $8)"
        f" RETURNING {_SESSION_COLUMNS}",
        user_id,
        aal,
        list(amr),
        user_agent,
        ip,
        expires_at,
        impersonator_id,
        platform_session_id,
    )
    assert row is not None
    return AUTH_SESSIONS.to_model(row)


async def impersonation_live(
    session: Session,
    *,
    session_id: UUID,
    user_id: UUID,
    impersonator_id: UUID,
    platform_session_id: UUID,
) -> bool:
    """Whether this is a live impersonation session of exactly this user, administrator and
    platform session (an active user: disabling them ends it too)."""
    found = await session.fetchval(
        "SELECT true FROM auth_sessions s"
        " JOIN users u ON u.tenant_id = s.tenant_id AND u.id = s.user_id"
        " WHERE s.id = $1 AND s.user_id = $2 AND s.impersonator_id = $3"
        " AND s.platform_session_id = $4 AND s.revoked_at IS NULL"
        " AND s.expires_at > statement_timestamp() AND u.status = 'active'",
        session_id,
        user_id,
        impersonator_id,
        platform_session_id,
    )
    return found is True


async def insert_refresh_token(session: Session, session_id: UUID, digest: bytes) -> None:
    await session.execute(
        "INSERT INTO refresh_tokens (tenant_id, session_id, token_hash)"
        " VALUES (app.current_tenant_id(), $1, $2)",
        session_id,
        digest,
    )


async def refresh_candidate(session: Session, digest: bytes) -> RefreshCandidate | None:
    """The token, its session, and whether its user and tenant may still sign in.

    FOR UPDATE OF r: two concurrent refreshes with one token are serialised, so only one
    can rotate it.
    """
    row = await session.fetchrow(
        f"SELECT r.id AS token_id, r.rotated_at, {_SESSION_COLUMNS},"
        " (s.revoked_at IS NOT NULL OR s.expires_at <= statement_timestamp()) AS session_revoked,"
        " u.status = 'active' AS user_active, t.status = 'active' AS tenant_active,"
        " statement_timestamp() AS now"
        " FROM refresh_tokens r"
        " JOIN auth_sessions s ON s.tenant_id = r.tenant_id AND s.id = r.session_id"
        " JOIN users u ON u.tenant_id = s.tenant_id AND u.id = s.user_id"
        " JOIN tenants t ON t.id = s.tenant_id"
        # An impersonation session never has a refresh token; should one ever exist, it
        # still refreshes nothing.
        " WHERE r.token_hash = $1 AND s.impersonator_id IS NULL FOR UPDATE OF r",
        digest,
    )
    if row is None:
        return None
    return RefreshCandidate(
        token_id=row["token_id"],
        rotated_at=row["rotated_at"],
        session=AUTH_SESSIONS.to_model(row),
        session_revoked=row["session_revoked"],
        user_active=row["user_active"],
        tenant_active=row["tenant_active"],
        now=row["now"],
    )


async def rotate_family(session: Session, session_id: UUID) -> None:
    """Mark every live token of the family as exchanged (normally exactly one)."""
    await session.execute(
        "UPDATE refresh_tokens SET rotated_at = statement_timestamp()"
        " WHERE session_id = $1 AND rotated_at IS NULL",
        session_id,
    )


async def touch_session(
    session: Session, session_id: UUID, *, user_agent: str, ip: str | None
) -> None:
    await session.execute(
        "UPDATE auth_sessions SET last_used_at = statement_timestamp(), user_agent = $2,"
        " ip = $3 WHERE id = $1",
        session_id,
        user_agent,
        ip,
    )


async def revoke_sessions(
    session: Session,
    *,
    reason: str,
    session_id: UUID | None = None,
    user_id: UUID | None = None,
) -> list[UUID]:
    """Revoke one session, or every live session of a user."""
    # Neither would mean every session of the tenant.
    assert session_id is not None or user_id is not None
    rows = await session.fetch(
        "UPDATE auth_sessions SET revoked_at = statement_timestamp(), revoked_reason = $1"
        " WHERE revoked_at IS NULL AND ($2::uuid IS NULL OR id = $2)"
        " AND ($3::uuid IS NULL OR user_id = $3)"
        " RETURNING id",
        reason,
        session_id,
        user_id,
    )
    return [r["id"] for r in rows]


async def revoke_tenant_sessions(session: Session, *, reason: str) -> list[UUID]:
    """Revoke every live session of the bound tenant (suspension, deletion)."""
    rows = await session.fetch(
        "UPDATE auth_sessions SET revoked_at = statement_timestamp(), revoked_reason = $1"
        " WHERE revoked_at IS NULL RETURNING id",
        reason,
    )
    return [r["id"] for r in rows]


async def active_sessions(session: Session, user_id: UUID) -> list[AuthSession]:
    rows = await session.fetch(
        f"SELECT {_SESSION_COLUMNS} FROM auth_sessions s WHERE s.user_id = $1"
        " AND s.revoked_at IS NULL AND s.expires_at > statement_timestamp()"
        " ORDER BY s.created_at DESC, s.id",
        user_id,
    )
    return [AUTH_SESSIONS.to_model(r) for r in rows]


async def session_live(session: Session, session_id: UUID) -> bool:
    """Whether the session exists, is not revoked and has not expired (its access tokens may
    be used)."""
    live: bool | None = await session.fetchval(
        "SELECT revoked_at IS NULL AND expires_at > statement_timestamp()"
        " FROM auth_sessions WHERE id = $1",
        session_id,
    )
    return bool(live)


async def session_owner(session: Session, session_id: UUID) -> UUID | None:
    owner: UUID | None = await session.fetchval(
        "SELECT user_id FROM auth_sessions WHERE id = $1 AND revoked_at IS NULL", session_id
    )
    return owner
