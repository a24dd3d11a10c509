"""SQL for users. The tenant comes from the bound transaction (RLS), never from input."""

from __future__ import annotations

from uuid import UUID

from app.core.db import Session
from app.users.models import USERS, Credentials, User, UserStatus


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


async def credentials_by_email(session: Session, email: str) -> Credentials | None:
    row = await session.fetchrow(
        "SELECT id, password_hash, status FROM users WHERE lower(email) = lower($1)", email
    )
    if row is None:
        return None
    return Credentials(row["id"], row["password_hash"], UserStatus(row["status"]))


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
