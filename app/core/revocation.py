"""Revoked sessions whose access tokens may still be unexpired.

Access tokens are verified without a database round trip, so ending a session would
otherwise leave its access tokens working until they expire. Revoking puts the session id
in the store (shared by every server process when Redis is configured) for as long as
any of its access tokens can live; the authentication middleware refuses those.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from app.core.security import CLOCK_LEEWAY_SECONDS
from app.core.store import Store, StoreKey, tenant_key


def _key(tenant_id: UUID, session_id: UUID) -> StoreKey:
    return tenant_key(tenant_id, "revoked-session", str(session_id))


async def is_revoked(store: Store, tenant_id: UUID, session_id: UUID) -> bool:
    return bool(await store.get(_key(tenant_id, session_id)))


async def mark_revoked(
    store: Store, tenant_id: UUID, session_ids: Iterable[UUID], *, access_ttl_seconds: int
) -> None:
    ttl = access_ttl_seconds + CLOCK_LEEWAY_SECONDS
    for session_id in session_ids:
        await store.put(_key(tenant_id, session_id), 1, ttl_seconds=ttl)
