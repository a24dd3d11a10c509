"""SQL for identity providers and external identities. The tenant comes from the bound
transaction (RLS), never from input."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from app.core.db import Session
from app.identity.models import IDENTITY_PROVIDERS, IdentityProvider, LocalUser

_P = IDENTITY_PROVIDERS


async def providers(session: Session) -> list[IdentityProvider]:
    rows = await session.fetch(
        f"SELECT {_P.select_list()} FROM identity_providers t ORDER BY t.created_at, t.id"
    )
    return [_P.to_model(r) for r in rows]


async def enabled_provider_by_issuer(session: Session, issuer: str) -> IdentityProvider | None:
    row = await session.fetchrow(
        f"SELECT {_P.select_list()} FROM identity_providers t WHERE t.issuer = $1 AND t.enabled",
        issuer,
    )
    return None if row is None else _P.to_model(row)


def _local_user(row: asyncpg.Record) -> LocalUser:
    return LocalUser(row["id"], row["email"], row["status"] == "active", row["linked"])


async def user_by_identity(session: Session, provider_id: UUID, subject: str) -> LocalUser | None:
    row = await session.fetchrow(
        "SELECT u.id, u.email, u.status, true AS linked FROM user_identities i"
        " JOIN users u ON u.tenant_id = i.tenant_id AND u.id = i.user_id"
        " WHERE i.provider_id = $1 AND i.subject = $2",
        provider_id,
        subject,
    )
    return None if row is None else _local_user(row)


async def user_by_email(session: Session, email: str, provider_id: UUID) -> LocalUser | None:
    row = await session.fetchrow(
        "SELECT u.id, u.email, u.status, EXISTS (SELECT 1 FROM user_identities i"
        "   WHERE i.user_id = u.id AND i.provider_id = $2) AS linked"
        " FROM users u WHERE lower(u.email) = lower($1)",
        email,
        provider_id,
    )
    return None if row is None else _local_user(row)


async def insert_external_user(session: Session, *, email: str, display_name: str) -> UUID:
    """An active user without a password, whose email the provider has verified."""
    user_id = await session.fetchval(
        "INSERT INTO users (tenant_id, email, display_name, email_verified_at)"
        " VALUES (app.current_tenant_id(), $1, $2, statement_timestamp()) RETURNING id",
        email,
        display_name,
    )
    assert isinstance(user_id, UUID)
    return user_id


async def insert_identity(
    session: Session, *, user_id: UUID, provider_id: UUID, subject: str
) -> None:
    await session.execute(
        "INSERT INTO user_identities (tenant_id, user_id, provider_id, subject)"
        " VALUES (app.current_tenant_id(), $1, $2, $3)",
        user_id,
        provider_id,
        subject,
    )
