"""SQL for identity providers and external identities. The tenant comes from the bound
transaction (RLS), never from input."""

from __future__ import annotations

from uuid import UUID

from app.core.db import Session
from app.identity.models import IDENTITY_PROVIDERS, IdentityProvider

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


async def user_of_identity(session: Session, provider_id: UUID, subject: str) -> UUID | None:
    """The user this subject of the provider is linked to."""
    user_id: UUID | None = await session.fetchval(
        "SELECT user_id FROM user_identities WHERE provider_id = $1 AND subject = $2",
        provider_id,
        subject,
    )
    return user_id


async def linked_to_provider(session: Session, user_id: UUID, provider_id: UUID) -> bool:
    """Whether the user already has an identity at the provider."""
    return bool(
        await session.fetchval(
            "SELECT EXISTS (SELECT 1 FROM user_identities WHERE user_id = $1 AND provider_id = $2)",
            user_id,
            provider_id,
        )
    )


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
