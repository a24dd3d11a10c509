"""Revoked sessions whose access tokens may still be unexpired.

Access tokens are verified without a database round trip, so ending a session would
otherwise leave its access tokens working until they expire. Revoking puts the session id
in the store (shared by every server process when Redis is configured) for as long as
any of its access tokens can live; the authentication middleware refuses those (it reads
the mark with the tenant's status, `app.tenants.service.tenant_access`).
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from app.core.security import CLOCK_LEEWAY_SECONDS
from app.core.store import Store, StoreKey, tenant_key


def revoked_key(tenant_id: UUID, session_id: UUID) -> StoreKey:
    """Set (any true value) while the session's access tokens must be refused; read by the
    per-request tenant check together with the tenant's status (app/tenants/service.py)."""
    return tenant_key(tenant_id, "revoked-session", str(session_id))


async def mark_revoked(
    store: Store, tenant_id: UUID, session_ids: Iterable[UUID], *, access_ttl_seconds: int
) -> None:
    ttl = access_ttl_seconds + CLOCK_LEEWAY_SECONDS
    for session_id in session_ids:
        await store.put(revoked_key(tenant_id, session_id), 1, ttl_seconds=ttl)
