"""Token exchange: an ID token from a provider the tenant trusts becomes a Tenantry session.

The token's issuer picks the tenant's provider; the token is verified against that
provider's keys and settings (app/identity/verify.py). The user is the one linked to the
provider's subject; else an active user with the same email, linked now, but only when
the provider says the email is verified; else a new user when the provider creates users.
Every failure is the same INVALID_CREDENTIALS error; the reason goes to the log and to
the tenant's audit log, where every exchange leaves one entry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from app.audit.models import AuditOutcome
from app.audit.service import record
from app.auth.service import SignInResult, after_first_factor
from app.auth.throttle import SignInThrottle
from app.core import validation
from app.core.db import Database, Session
from app.core.errors import Invalid, QuotaExceeded, Unauthenticated
from app.core.request_meta import RequestMeta
from app.core.security import TokenService
from app.core.settings import Settings
from app.core.store import Store
from app.identity import queries
from app.identity.jwks import JwksCache
from app.identity.models import ExternalIdentity, IdentityProvider
from app.identity.verify import Rejected, unverified_issuer, verify_id_token
from app.rbac import service as rbac
from app.tenants.models import TenantStatus
from app.tenants.service import lookup
from app.users import service as users
from app.users.models import UserStatus

logger = logging.getLogger("tenantry.identity")

ACTION = "auth.token_exchange"
AMR = ("ext",)


class ExchangeFailed(Unauthenticated):
    code = "INVALID_CREDENTIALS"


@dataclass(frozen=True)
class _Failure:
    reason: str
    provider: IdentityProvider | None = None
    user_id: UUID | None = None


async def exchange_token(
    database: Database,
    tokens: TokenService,
    settings: Settings,
    store: Store,
    meta: RequestMeta,
    jwks: JwksCache,
    *,
    tenant: str,
    id_token: str,
) -> SignInResult:
    """Sign in to `tenant` with an external ID token; ExchangeFailed on any problem.

    TooManyAttempts before any work when this client failed too often recently. Which user
    a token stands for is unknown until it is verified, so an exchange is claimed from the
    client's count alone: a forged or garbage token spends its sender's budget, never a
    user's or the tenant's.
    """
    failure = ExchangeFailed("Invalid organisation or token")
    attempt = await SignInThrottle(store, settings.auth).reserve_client(meta)
    ref = await lookup(database, tenant)
    if ref is None or ref.status is not TenantStatus.ACTIVE:
        # No tenant to audit in: the log is all there is.
        logger.info("token exchange refused: no active tenant %r", tenant[:100])
        raise failure
    outcome = await _exchange(database, tokens, settings, meta, jwks, ref.id, id_token.strip())
    if not isinstance(outcome, _Failure):
        await attempt.succeeded()
        return outcome
    logger.info("token exchange refused in tenant %s: %s", ref.id, outcome.reason)
    async with database.transaction(ref.id) as session:
        await record(
            session,
            meta,
            action=ACTION,
            outcome=AuditOutcome.FAILURE,
            actor_id=None,
            target_type="user" if outcome.user_id else None,
            target_id=outcome.user_id,
            metadata=_metadata(outcome.provider, reason=outcome.reason),
        )
    raise failure


async def _exchange(
    database: Database,
    tokens: TokenService,
    settings: Settings,
    meta: RequestMeta,
    jwks: JwksCache,
    tenant_id: UUID,
    id_token: str,
) -> SignInResult | _Failure:
    try:
        issuer, header = unverified_issuer(id_token)
    except Rejected as rejected:
        return _Failure(rejected.reason)
    async with database.transaction(tenant_id, readonly=True) as session:
        provider = await queries.enabled_provider_by_issuer(session, issuer)
    if provider is None:
        return _Failure("unknown_issuer")
    # Outside any transaction: the key fetch may wait on the network.
    try:
        identity = await verify_id_token(id_token, header, provider, jwks)
    except Rejected as rejected:
        return _Failure(rejected.reason, provider)
    async with database.transaction(tenant_id) as session:
        found = await _user(session, provider, identity)
        if isinstance(found, _Failure):
            return found
        user_id, how = found
        issued = await after_first_factor(
            session, tokens, settings, meta, user_id, tenant_id, amr=AMR
        )
        await record(
            session,
            meta,
            action=ACTION,
            actor_id=user_id,
            target_type="user",
            target_id=user_id,
            metadata={**_metadata(provider), "user": how},
        )
        return issued


async def _user(
    session: Session, provider: IdentityProvider, identity: ExternalIdentity
) -> tuple[UUID, str] | _Failure:
    """The user to sign in and how they were found (linked / email / created)."""
    linked_id = await queries.user_of_identity(session, provider.id, identity.subject)
    linked = None if linked_id is None else await users.account(session, linked_id)
    if linked is not None:
        if linked.status is not UserStatus.ACTIVE:
            return _Failure("user_inactive", provider, linked.id)
        return linked.id, "linked"
    # Linking or creating by email needs an address the provider vouches for.
    if identity.email is None or not identity.email_verified:
        return _Failure("no_verified_email", provider)
    by_email = (await users.look_up(session, identity.email)).found
    if by_email is not None:
        if by_email.status is not UserStatus.ACTIVE:
            return _Failure("user_inactive", provider, by_email.id)
        if await queries.linked_to_provider(session, by_email.id, provider.id):
            # Another subject of this provider already is this user: never take it over.
            return _Failure("email_linked_to_other_subject", provider, by_email.id)
        try:
            async with session.atomic():
                await _link(session, by_email.id, provider, identity)
        except asyncpg.UniqueViolationError:
            return _Failure("concurrent_sign_in", provider, by_email.id)
        return by_email.id, "email"
    if not provider.create_users:
        return _Failure("no_such_user", provider)
    try:
        email = validation.email(identity.email)
        name = identity.name or email.split("@", 1)[0]
        display_name = validation.text(name[:200], field="name", max_length=200)
    except Invalid:
        return _Failure("unusable_claims", provider)
    try:
        await users.require_room_for_user(session)
    except QuotaExceeded:
        return _Failure("quota_exceeded", provider)
    try:
        async with session.atomic():
            user = await users.create_external(session, email=email, display_name=display_name)
            user_id = user.id
            await rbac.grant_system_role(
                session, user_id=user_id, key=provider.default_role.value, granted_by=None
            )
            await _link(session, user_id, provider, identity)
    except asyncpg.UniqueViolationError:
        return _Failure("concurrent_sign_up", provider)
    return user_id, "created"


async def _link(
    session: Session, user_id: UUID, provider: IdentityProvider, identity: ExternalIdentity
) -> None:
    await queries.insert_identity(
        session, user_id=user_id, provider_id=provider.id, subject=identity.subject
    )


def _metadata(provider: IdentityProvider | None, **extra: str) -> dict[str, object]:
    found = {} if provider is None else {"provider": str(provider.id), "issuer": provider.issuer}
    return {**found, **extra}
