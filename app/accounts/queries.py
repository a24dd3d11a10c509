"""SQL for account flows. The tenant comes from the bound transaction (RLS), never from input.

Account tokens are stored as SHA-256 digests only; consuming one is a single UPDATE that
checks purpose, use and expiry together, so two concurrent uses cannot both succeed.
"""

from __future__ import annotations

from uuid import UUID

from app.accounts.models import ConsumedToken, MailMessage, TokenPurpose
from app.core.db import Session


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
