"""Whether a session's access tokens may still be used: PostgreSQL holds the truth (the
session's row in `auth_sessions`), the store only caches it.

Access tokens are verified without a database round trip, so ending a session must reach the
request path some other way. Every signed-in request asks `request_access` (through the
authentication middleware) before anything runs:

- one store round trip (MGET) reads the tenant's cached status and plan and the session's
  cached state;
- what is missing is read from the database, in one read-only transaction (the tenant's row,
  the session's row), and cached: a session revoked, expired or unknown as `revoked`; a live
  one as `live`, but only in a shared store (Redis), for `LIVE_SECONDS`, and only where no
  revocation got there first (an add, never an overwrite).

Process memory is not shared: any other server process may revoke the session at any
moment, so without Redis a live session is never cached and every signed-in request reads
its row (one indexed read; docs/benchmarks.md has the cost). Revoking marks the sessions
revoked in the store once the transaction has committed (`revoke_after_commit`), overwriting
`live`, so with Redis every process refuses them from the next request; should that mark be
lost (a crash right after the commit, Redis unreachable then), a cached `live` outlives the
revocation by `LIVE_SECONDS` at most. A restart of the server or of Redis only empties the
cache: the database answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

from app.auth import queries
from app.core import telemetry
from app.core.db import Database, Session
from app.core.ratelimit import PlanRates
from app.core.store import Store, StoreKey, tenant_key
from app.tenants import service as tenants
from app.tenants.service import TenantAccess

LIVE = "live"
REVOKED = "revoked"
# How long a shared store may vouch for a live session without asking the database: bounds
# a lost revocation mark (above); each live session costs one indexed read per period.
LIVE_SECONDS = 10
# A revoked session stays revoked: this only saves the database the reads of its tokens,
# which expire within the access-token lifetime anyway.
REVOKED_SECONDS = 3600


@dataclass(frozen=True)
class RequestAccess:
    """What a signed-in request needs before anything runs: its tenant's status and plan,
    and whether its session still stands."""

    tenant: TenantAccess
    session_revoked: bool

    @property
    def active(self) -> bool:
        return self.tenant.active

    @property
    def rates(self) -> PlanRates:
        return self.tenant.rates


def _key(tenant_id: UUID, session_id: UUID) -> StoreKey:
    return tenant_key(tenant_id, "session", str(session_id))


async def request_access(
    database: Database, store: Store, tenant_id: UUID, session_id: UUID
) -> RequestAccess:
    """The tenant's access and the session's state: one store round trip when both are
    cached, else one read-only transaction for what is not."""
    cached_tenant, state = await store.get_many(
        [tenants.access_key(tenant_id), _key(tenant_id, session_id)]
    )
    access = TenantAccess.cached(cached_tenant)
    telemetry.cache("tenant_access", hit=access is not None)
    if access is not None and state in (LIVE, REVOKED):
        return RequestAccess(access, session_revoked=state == REVOKED)
    async with database.transaction(tenant_id, readonly=True) as session:
        fresh = access is None
        if access is None:
            access = await tenants.read_access(session)
        revoked = state == REVOKED or (
            state != LIVE and not await queries.session_live(session, session_id)
        )
    if fresh:
        await tenants.remember(store, tenant_id, access)
    if state is None:
        if revoked:
            await store.put(_key(tenant_id, session_id), REVOKED, ttl_seconds=REVOKED_SECONDS)
        elif store.shared:
            await store.add(_key(tenant_id, session_id), LIVE, ttl_seconds=LIVE_SECONDS)
    return RequestAccess(access, session_revoked=revoked)


async def mark_revoked(store: Store, tenant_id: UUID, session_ids: Iterable[UUID]) -> None:
    """Refuse the sessions' access tokens from the next request (after their revocation
    committed)."""
    for session_id in session_ids:
        await store.put(_key(tenant_id, session_id), REVOKED, ttl_seconds=REVOKED_SECONDS)


def revoke_after_commit(session: Session, store: Store, session_ids: list[UUID]) -> None:
    """Mark the sessions revoked in the store once `session`'s transaction, which revoked
    them in the database, has committed (never before: a rollback would leave a mark the
    database contradicts)."""
    tenant_id = session.tenant_id
    assert tenant_id is not None
    if session_ids:
        session.after_commit(lambda: mark_revoked(store, tenant_id, session_ids))
