"""SQL for account flows. The tenant comes from the bound transaction (RLS), never from input.

Account tokens are stored as SHA-256 digests only; consuming one is a single UPDATE that
checks purpose, use and expiry together, so two concurrent uses cannot both succeed.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from app.accounts.models import Account, ConsumedToken, MailMessage, TokenPurpose
from app.core.db import Session
from app.users.models import USERS, User

_ACCOUNT_COLUMNS = "id, email, status, password_hash"


def _account(row: asyncpg.Record) -> Account:
    return Account(row["id"], row["email"], row["status"], row["password_hash"])


async def account(session: Session, user_id: UUID) -> Account | None:
    row = await session.fetchrow(f"SELECT {_ACCOUNT_COLUMNS} FROM users WHERE id = $1", user_id)
    return None if row is None else _account(row)


async def account_by_email(session: Session, email: str) -> Account | None:
    row = await session.fetchrow(
        f"SELECT {_ACCOUNT_COLUMNS} FROM users WHERE lower(email) = lower($1)", email
    )
    return None if row is None else _account(row)


async def insert_invited_user(session: Session, *, email: str, display_name: str) -> User:
    row = await session.fetchrow(
        f"INSERT INTO users AS t (tenant_id, email, display_name, status) "
        f"VALUES (app.current_tenant_id(), $1, $2, 'invited') RETURNING {USERS.select_list()}",
        email,
        display_name,
    )
    assert row is not None
    return USERS.to_model(row)


async def update_invited_user(session: Session, user_id: UUID, *, display_name: str | None) -> User:
    row = await session.fetchrow(
        f"UPDATE users AS t SET display_name = coalesce($2, display_name),"
        f" updated_at = statement_timestamp() WHERE id = $1 AND status = 'invited'"
        f" RETURNING {USERS.select_list()}",
        user_id,
        display_name,
    )
    assert row is not None
    return USERS.to_model(row)


async def activate_invited_user(
    session: Session, user_id: UUID, *, password_hash: str, display_name: str | None
) -> bool:
    """Set the first password of an invited user; False when the user is not invited."""
    done = await session.fetchval(
        "UPDATE users SET status = 'active', password_hash = $2,"
        " display_name = coalesce($3, display_name),"
        " email_verified_at = coalesce(email_verified_at, statement_timestamp()),"
        " password_changed_at = statement_timestamp(), updated_at = statement_timestamp()"
        " WHERE id = $1 AND status = 'invited' RETURNING true",
        user_id,
        password_hash,
        display_name,
    )
    return bool(done)


async def set_password(session: Session, user_id: UUID, password_hash: str) -> None:
    await session.execute(
        "UPDATE users SET password_hash = $2, password_changed_at = statement_timestamp(),"
        " updated_at = statement_timestamp() WHERE id = $1",
        user_id,
        password_hash,
    )


async def set_verified_email(session: Session, user_id: UUID, email: str) -> None:
    await session.execute(
        "UPDATE users SET email = $2, email_verified_at = statement_timestamp(),"
        " updated_at = statement_timestamp() WHERE id = $1",
        user_id,
        email,
    )


async def email_taken(session: Session, email: str, *, except_user: UUID) -> bool:
    return bool(
        await session.fetchval(
            "SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($1) AND id <> $2)",
            email,
            except_user,
        )
    )


async def insert_token(
    session: Session,
    purpose: TokenPurpose,
    *,
    user_id: UUID,
    digest: bytes,
    ttl_seconds: int,
    email: str | None = None,
    created_by: UUID | None = None,
) -> None:
    await session.execute(
        "INSERT INTO account_tokens"
        " (tenant_id, purpose, user_id, token_hash, email, created_by, expires_at)"
        " VALUES (app.current_tenant_id(), $1, $2, $3, $4, $5,"
        "         statement_timestamp() + make_interval(secs => $6))",
        purpose.value,
        user_id,
        digest,
        email,
        created_by,
        float(ttl_seconds),
    )


async def delete_open_tokens(session: Session, purpose: TokenPurpose, user_id: UUID) -> None:
    """Withdraw the user's unused tokens of this purpose (a newer one replaces them)."""
    await session.execute(
        "DELETE FROM account_tokens WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL",
        user_id,
        purpose.value,
    )


async def consume_token(
    session: Session, purpose: TokenPurpose, digest: bytes
) -> ConsumedToken | None:
    """Mark an unused, unexpired token used; None when there is no such token."""
    row = await session.fetchrow(
        "UPDATE account_tokens SET used_at = statement_timestamp()"
        " WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL"
        " AND expires_at > statement_timestamp() RETURNING user_id, email",
        digest,
        purpose.value,
    )
    return None if row is None else ConsumedToken(row["user_id"], row["email"])


async def insert_outbox(session: Session, message: MailMessage) -> None:
    await session.execute(
        "INSERT INTO outbox (tenant_id, kind, recipient, subject, body)"
        " VALUES (app.current_tenant_id(), $1, $2, $3, $4)",
        message.kind,
        message.recipient,
        message.subject,
        message.body,
    )
