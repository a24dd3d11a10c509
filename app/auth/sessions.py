"""Sessions and refresh-token rotation.

A sign-in opens a session (the refresh-token family). Every refresh exchanges the
presented token for a new one; a token presented again after the grace window is reuse
(a stolen copy, or the legitimate client after a thief used it first): the whole family is
revoked and the event audited. Within the grace window it is a retry of a refresh whose
response was lost, and the family rotates once more.

Access tokens are refused from the next request once their session is revoked: the
authentication middleware checks the session (app/auth/revocation.py; PostgreSQL is the
truth, the store a cache that revocations update once they have committed).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from uuid import UUID

from app.audit.models import AuditOutcome
from app.audit.service import record
from app.auth import queries
from app.auth.models import REFRESH_TOKEN_KIND, AuthSession, SignInTokens
from app.auth.revocation import mark_revoked, revoke_after_commit
from app.core.actor import refuse_impersonation
from app.core.db import Database, Session
from app.core.errors import NotFound, TenantSuspended, Unauthenticated
from app.core.request_meta import RequestMeta
from app.core.security import TokenService, new_opaque_token, parse_opaque_token
from app.core.settings import Settings
from app.core.store import Store
from app.tenants.service import session_lifetime_seconds

logger = logging.getLogger("tenantry.auth")

_USER_AGENT_MAX = 512


class InvalidRefreshToken(Unauthenticated):
    code = "INVALID_REFRESH_TOKEN"


async def start_session(
    session: Session,
    tokens: TokenService,
    settings: Settings,
    meta: RequestMeta,
    *,
    user_id: UUID,
    aal: int,
    amr: tuple[str, ...],
) -> SignInTokens:
    """Open a session for a user of the session's tenant and issue its first tokens."""
    assert session.tenant_id is not None
    # Every way to a refreshable session of the user (sign-in, MFA, a credential change)
    # passes here: an impersonator never leaves with the user's own session.
    refuse_impersonation(session, "Opening a session")
    # The tenant's admins may shorten (or lengthen) sessions: tenant.sessionLifetimeHours.
    lifetime = await session_lifetime_seconds(session, settings.auth.refresh_token_ttl_seconds)
    expires_at = datetime.now(UTC) + timedelta(seconds=lifetime)
    opened = await queries.insert_session(
        session,
        user_id=user_id,
        aal=aal,
        amr=amr,
        user_agent=meta.user_agent[:_USER_AGENT_MAX],
        ip=meta.ip,
        expires_at=expires_at,
    )
    return await _issue(session, tokens, opened)


async def _issue(session: Session, tokens: TokenService, opened: AuthSession) -> SignInTokens:
    assert session.tenant_id is not None
    refresh = new_opaque_token(REFRESH_TOKEN_KIND, session.tenant_id)
    await queries.insert_refresh_token(session, opened.id, refresh.digest)
    access = tokens.issue_access_token(
        user_id=opened.user_id,
        tenant_id=session.tenant_id,
        session_id=opened.id,
        aal=opened.aal,
        amr=tuple(opened.amr),
        auth_time=int(opened.auth_time.timestamp()),
    )
    return SignInTokens(
        user_id=opened.user_id,
        session_id=opened.id,
        access_token=access,
        refresh_token=refresh.token,
        refresh_expires_at=opened.expires_at,
    )


async def refresh(
    database: Database,
    tokens: TokenService,
    settings: Settings,
    store: Store,
    meta: RequestMeta,
    refresh_token: str,
) -> SignInTokens:
    """Exchange a refresh token for new tokens; every failure is the same error."""
    failure = InvalidRefreshToken("Invalid or expired refresh token")
    parsed = parse_opaque_token(REFRESH_TOKEN_KIND, refresh_token)
    if parsed is None:
        raise failure
    reused: list[UUID] = []
    async with database.transaction(parsed.tenant_id) as session:
        found = await queries.refresh_candidate(session, parsed.digest)
        if found is None:
            raise failure
        if not found.tenant_active:
            # A genuine token of a suspended organisation: say so (suspension also revoked
            # the session, which would otherwise answer first).
            raise TenantSuspended("This organisation is suspended")
        if found.session_revoked or not found.user_active:
            raise failure
        family = found.session
        if found.rotated_at is not None:
            grace = timedelta(seconds=settings.auth.refresh_reuse_grace_seconds)
            if found.now - found.rotated_at > grace:
                reused = await queries.revoke_sessions(
                    session, reason="refresh_token_reuse", session_id=family.id
                )
                await record(
                    session,
                    meta,
                    action="session.refresh_token_reused",
                    outcome=AuditOutcome.DENIED,
                    actor_id=family.user_id,
                    target_type="session",
                    target_id=family.id,
                    metadata={"rotated_at": found.rotated_at.isoformat()},
                )
        if not reused:
            await queries.rotate_family(session, family.id)
            await queries.touch_session(
                session, family.id, user_agent=meta.user_agent[:_USER_AGENT_MAX], ip=meta.ip
            )
            issued = await _issue(session, tokens, family)
    # Outside the transaction: the revocation above is committed, not rolled back.
    if reused:
        logger.warning("refresh token reuse: session %s revoked", family.id)
        await mark_revoked(store, parsed.tenant_id, reused)
        raise failure
    return issued


async def revoke_session(
    session: Session,
    tokens: TokenService,
    store: Store,
    meta: RequestMeta,
    *,
    actor_id: UUID,
    session_id: UUID,
    reason: str,
) -> None:
    """Revoke one of the actor's own sessions; another user's id is NotFound."""
    assert session.tenant_id is not None
    if await queries.session_owner(session, session_id) != actor_id:
        raise NotFound("Session not found", field="id")
    revoked = await queries.revoke_sessions(session, reason=reason, session_id=session_id)
    await record(
        session,
        meta,
        action="session.revoked",
        actor_id=actor_id,
        target_type="session",
        target_id=session_id,
        metadata={"reason": reason},
    )
    revoke_after_commit(session, store, revoked)


async def revoke_user_sessions(
    session: Session,
    tokens: TokenService,
    store: Store,
    meta: RequestMeta,
    *,
    user_id: UUID,
    actor_id: UUID | None,
    reason: str,
) -> int:
    """Revoke every live session of a user; returns how many."""
    assert session.tenant_id is not None
    refuse_impersonation(session, "Ending the user's sessions")
    revoked = await queries.revoke_sessions(session, reason=reason, user_id=user_id)
    if revoked:
        await record(
            session,
            meta,
            action="session.revoked_all",
            actor_id=actor_id,
            target_type="user",
            target_id=user_id,
            metadata={"reason": reason, "sessions": len(revoked)},
        )
    revoke_after_commit(session, store, revoked)
    return len(revoked)


async def revoke_tenant_sessions(
    session: Session, tokens: TokenService, store: Store, *, reason: str
) -> int:
    """End every session of the bound tenant: its refresh-token families and access tokens
    once the transaction has committed."""
    revoked = await queries.revoke_tenant_sessions(session, reason=reason)
    revoke_after_commit(session, store, revoked)
    return len(revoked)


async def start_impersonation(
    session: Session,
    meta: RequestMeta,
    *,
    user_id: UUID,
    impersonator_id: UUID,
    platform_session_id: UUID,
    amr: tuple[str, ...],
    expires_at: datetime,
) -> AuthSession:
    """A session of `user_id` opened by a platform administrator (app/platform/
    impersonation.py): no refresh token, so nothing can extend it; revoked like any other
    session of the user."""
    return await queries.insert_session(
        session,
        user_id=user_id,
        # The administrator proved a second factor to sign in to the platform.
        aal=2,
        impersonator_id=impersonator_id,
        platform_session_id=platform_session_id,
        amr=amr,
        user_agent=meta.user_agent[:_USER_AGENT_MAX],
        ip=meta.ip,
        expires_at=expires_at,
    )


async def impersonation_live(
    session: Session,
    *,
    session_id: UUID,
    user_id: UUID,
    impersonator_id: UUID,
    platform_session_id: UUID,
) -> bool:
    return await queries.impersonation_live(
        session,
        session_id=session_id,
        user_id=user_id,
        impersonator_id=impersonator_id,
        platform_session_id=platform_session_id,
    )


async def active_sessions(session: Session, user_id: UUID) -> list[AuthSession]:
    return await queries.active_sessions(session, user_id)


async def restart_sessions(
    session: Session,
    tokens: TokenService,
    settings: Settings,
    store: Store,
    meta: RequestMeta,
    *,
    user_id: UUID,
    reason: str,
    aal: int,
    amr: tuple[str, ...],
) -> SignInTokens:
    """After a credential change by the user themself: end every session of theirs, the
    caller's too (a thief may hold a copy of its refresh token), and open a new one for the
    caller, whose tokens the mutation returns."""
    await revoke_user_sessions(
        session, tokens, store, meta, user_id=user_id, actor_id=user_id, reason=reason
    )
    return await start_session(session, tokens, settings, meta, user_id=user_id, aal=aal, amr=amr)
