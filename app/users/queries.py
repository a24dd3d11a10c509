"""SQL for users. The tenant comes from the bound transaction (RLS), never from input."""

from __future__ import annotations

from uuid import UUID

from app.core.db import Session
from app.users.models import USERS, Credentials, CredentialsLookup, User, UserStatus


async def insert(
    session: Session, *, email: str, display_name: str, password_hash: str | None
) -> User:
    row = await session.fetchrow(
        f"INSERT INTO users AS t (tenant_id, email, display_name, password_hash) "
        f"VALUES (app.current_tenant_id(), $1, $2, $3) RETURNING {USERS.select_list()}",
        email,
        display_name,
        password_hash,
    )
    assert row is not None
    return USERS.to_model(row)


async def credentials_by_email(session: Session, email: str) -> CredentialsLookup:
    # From the given email outwards: one row whether or not a user has it, so an unknown
    # email costs the same statement and still comes back as the index compares it.
    row = await session.fetchrow(
        "SELECT lower(given.email) AS compared_as, u.id, u.password_hash, u.status"
        " FROM (SELECT $1::text AS email) AS given"
        " LEFT JOIN users u ON lower(u.email) = lower(given.email)",
        email,
    )
    assert row is not None
    found = (
        None
        if row["id"] is None
        else Credentials(row["id"], row["password_hash"], UserStatus(row["status"]))
    )
    return CredentialsLookup(row["compared_as"], found)


async def set_password_hash(session: Session, user_id: UUID, password_hash: str) -> None:
    await session.execute(
        "UPDATE users SET password_hash = $2, updated_at = statement_timestamp() WHERE id = $1",
        user_id,
        password_hash,
    )


async def set_status(session: Session, user_id: UUID, status: UserStatus) -> User | None:
    row = await session.fetchrow(
        f"UPDATE users AS t SET status = $2, updated_at = statement_timestamp() WHERE id = $1"
        f" RETURNING {USERS.select_list()}",
        user_id,
        status.value,
    )
    return None if row is None else USERS.to_model(row)
