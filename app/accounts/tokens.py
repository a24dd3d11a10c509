"""Account tokens: mailed, single-use, expiring secrets, and the one error every bad one gives.

Tokens are opaque (app/core/security.py) and stored as SHA-256 digests. A token names its
tenant, so flows that start from a link bind that tenant before looking the digest up
under row-level security; a forged tenant part finds nothing.
"""

from __future__ import annotations

from urllib.parse import quote
from uuid import UUID

from app.accounts import queries
from app.accounts.models import TokenPurpose
from app.core.db import Session
from app.core.errors import DomainError
from app.core.security import new_opaque_token
from app.core.settings import Settings
from app.tenants.models import Tenant, TenantStatus
from app.tenants.service import current_tenant


class InvalidToken(DomainError):
    """A mailed link that is malformed, unknown, expired, already used or for something else."""

    code = "INVALID_TOKEN"


def invalid_token() -> InvalidToken:
    return InvalidToken("This link is invalid or has expired", field="token")


def link(settings: Settings, path: str, token: str) -> str:
    return f"{settings.auth.public_url}/{path}?token={quote(token, safe='')}"


async def issue_token(
    session: Session,
    purpose: TokenPurpose,
    *,
    user_id: UUID,
    ttl_seconds: int,
    email: str | None = None,
    created_by: UUID | None = None,
) -> str:
    """A new token for `purpose`, replacing the user's unused ones of the same purpose."""
    assert session.tenant_id is not None
    await queries.delete_open_tokens(session, purpose, user_id)
    token = new_opaque_token(purpose.kind, session.tenant_id)
    await queries.insert_token(
        session,
        purpose,
        user_id=user_id,
        digest=token.digest,
        ttl_seconds=ttl_seconds,
        email=email,
        created_by=created_by,
    )
    return token.token


async def active_tenant(session: Session) -> Tenant | None:
    """The bound tenant when it exists and is active (a link of a suspended tenant is dead)."""
    try:
        tenant = await current_tenant(session)
    except DomainError:
        return None
    return tenant if tenant.status is TenantStatus.ACTIVE else None


def duration(seconds: int) -> str:
    if seconds < 3600:
        return f"{max(1, seconds // 60)} minutes"
    hours = seconds // 3600
    return "1 hour" if hours == 1 else f"{hours} hours"
