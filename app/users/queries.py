"""SQL for users, the only module that names the table (app/domains.py). The tenant comes
from the bound transaction (RLS), never from input."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from app.core.db import Session
from app.users.models import USERS, Account, AccountLookup, User, UserStatus

_ACCOUNT_COLUMNS = "id, email, status, password_hash"


def _account(row: asyncpg.Record) -> Account:
    return Account(row["id"], row["email"], UserStatus(row["status"]), row["password_hash"])


async def insert(
    session: Session,
    *,
    email: str,
    display_name: str,
    status: UserStatus,
    password_hash: str | None,
    email_verified: bool,
) -> User:
    """Every way a user is created: with a password, invited (no password yet), or from an
    external identity provider (no password, the address verified by the provider)."""
    row = await session.fetchrow(
        "INSERT INTO users AS t (tenant_id, email, display_name, status, password_hash,"
        " email_verified_at)"
        " VALUES (app.current_tenant_id(), $1, $2, $3, $4,"
        " CASE WHEN $5 THEN statement_timestamp() END)"
        f" RETURNING {USERS.select_list()}",
        email,
        display_name,
        status.value,
        password_hash,
        email_verified,
    )
    assert row is not None
    return USERS.to_model(row)


async def account(session: Session, user_id: UUID) -> Account | None:
    row = await session.fetchrow(f"SELECT {_ACCOUNT_COLUMNS} FROM users WHERE id = $1", user_id)
    return None if row is None else _account(row)


async def by_email(session: Session, email: str) -> AccountLookup:
    # From the given email outwards: one row whether or not a user has it, so an unknown
    # email costs the same statement and still comes back as the index compares it.
    row = await session.fetchrow(
        "SELECT lower(given.email) AS compared_as, u.id, u.email, u.status, u.password_hash"
        " FROM (SELECT $1::text AS email) AS given"
        " LEFT JOIN users u ON lower(u.email) = lower(given.email)",
        email,
    )
    assert row is not None
    return AccountLookup(row["compared_as"], None if row["id"] is None else _account(row))


async def email_taken(session: Session, email: str, *, except_user: UUID) -> bool:
    return bool(
        await session.fetchval(
            "SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($1) AND id <> $2)",
            email,
            except_user,
        )
    )


async def set_password(
    session: Session, user_id: UUID, password_hash: str, *, changed: bool
) -> None:
    """The one writer of password hashes. `changed`: a new password (its time is recorded);
    otherwise the same password hashed again with current parameters."""
    await session.execute(
        "UPDATE users SET password_hash = $2,"
        " password_changed_at = CASE WHEN $3 THEN statement_timestamp()"
        "   ELSE password_changed_at END,"
        " updated_at = statement_timestamp() WHERE id = $1",
        user_id,
        password_hash,
        changed,
    )


async def set_status(session: Session, user_id: UUID, status: UserStatus) -> User | None:
    row = await session.fetchrow(
        f"UPDATE users AS t SET status = $2, updated_at = statement_timestamp() WHERE id = $1"
        f" RETURNING {USERS.select_list()}",
        user_id,
        status.value,
    )
    return None if row is None else USERS.to_model(row)


async def update_invited(session: Session, user_id: UUID, *, display_name: str | None) -> User:
    row = await session.fetchrow(
        f"UPDATE users AS t SET display_name = coalesce($2, display_name),"
        f" updated_at = statement_timestamp() WHERE id = $1 AND status = 'invited'"
        f" RETURNING {USERS.select_list()}",
        user_id,
        display_name,
    )
    assert row is not None
    return USERS.to_model(row)


async def activate_invited(session: Session, user_id: UUID, *, display_name: str | None) -> bool:
    """An invited user becomes active, their address verified (the invitation reached it);
    False when the user is not invited."""
    done = await session.fetchval(
        "UPDATE users SET status = 'active', display_name = coalesce($2, display_name),"
        " email_verified_at = coalesce(email_verified_at, statement_timestamp()),"
        " updated_at = statement_timestamp()"
        " WHERE id = $1 AND status = 'invited' RETURNING true",
        user_id,
        display_name,
    )
    return bool(done)


async def set_verified_email(session: Session, user_id: UUID, email: str) -> None:
    await session.execute(
        "UPDATE users SET email = $2, email_verified_at = statement_timestamp(),"
        " updated_at = statement_timestamp() WHERE id = $1",
        user_id,
        email,
    )


async def counted(session: Session) -> int:
    """Users counted against the tenant's quota (active and invited)."""
    return int(
        await session.fetchval("SELECT count(*) FROM users WHERE status IN ('active', 'invited')")
    )


async def invited_count(session: Session) -> int:
    return int(await session.fetchval("SELECT count(*) FROM users WHERE status = 'invited'"))


async def active_among(session: Session, user_ids: list[UUID]) -> list[UUID]:
    rows = await session.fetch(
        "SELECT id FROM users WHERE id = ANY($1::uuid[]) AND status = 'active'", user_ids
    )
    return [r["id"] for r in rows]
