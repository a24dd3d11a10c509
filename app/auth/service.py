"""Sign-in: a tenant slug, an email and a password open a session.

Every failure (unknown tenant, suspended tenant, unknown email, wrong password, disabled
user) is the same error after the same work (one Argon2 verification), so responses do
not reveal which accounts or tenants exist. Each attempt is claimed from the throttle
before the password is verified, and given back when it proves the credentials
(app/auth/throttle.py); failures are audited in the tenant when the tenant exists.

A user with a confirmed second factor gets an MFA challenge instead of tokens; in a tenant
that requires MFA, a user without one gets an enrolment challenge (app/mfa/).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from uuid import UUID

from app.audit.models import AuditOutcome
from app.audit.service import record
from app.auth.models import SignInTokens
from app.auth.sessions import start_session
from app.auth.throttle import SignInThrottle, tenant_account, unknown_tenant_account
from app.core.db import Database, Session
from app.core.errors import TenantSuspended, Unauthenticated
from app.core.passwords import verify_and_maybe_rehash, verify_password
from app.core.request_meta import RequestMeta
from app.core.security import (
    MFA_CHALLENGE_TYPE,
    MFA_ENROLLMENT_TYPE,
    IssuedToken,
    TokenService,
)
from app.core.settings import Settings
from app.core.store import Store
from app.mfa.service import has_confirmed_totp
from app.tenants.models import TenantStatus
from app.tenants.service import canonical_name, lookup, mfa_required
from app.users.models import UserStatus
from app.users.service import look_up, rehash_password


class InvalidCredentials(Unauthenticated):
    code = "INVALID_CREDENTIALS"


class NextStep(enum.Enum):
    DONE = "DONE"
    MFA_REQUIRED = "MFA_REQUIRED"
    MFA_ENROLLMENT_REQUIRED = "MFA_ENROLLMENT_REQUIRED"


@dataclass(frozen=True)
class SignInResult:
    next_step: NextStep
    tokens: SignInTokens | None = None
    challenge: IssuedToken | None = None


async def sign_in(
    database: Database,
    tokens: TokenService,
    settings: Settings,
    store: Store,
    meta: RequestMeta,
    *,
    tenant: str,
    email: str,
    password: str,
) -> SignInResult:
    throttle = SignInThrottle(store, settings.auth)
    failure = InvalidCredentials("Invalid organisation, email or password")
    ref = await lookup(database, tenant)
    if ref is None or ref.status is TenantStatus.DELETED:
        # Unbound, the same lookup finds nobody (row-level security) at the same cost, and
        # still says how the email compares: unknown organisations are counted like known ones.
        async with database.transaction(None, readonly=True) as session:
            looked = await look_up(session, email)
        # A deleted tenant is counted under its id, however it was named.
        name = canonical_name(tenant) if ref is None else ref.id
        await throttle.reserve(unknown_tenant_account(name, looked.compared_as), meta)
        await verify_password(None, password)
        raise failure
    async with database.transaction(ref.id) as session:
        looked = await look_up(session, email)
        found = looked.found
        attempt = await throttle.reserve(
            tenant_account(ref.id, found.id if found else None, looked.compared_as), meta
        )
        ok, new_hash = await verify_and_maybe_rehash(
            found.password_hash if found else None, password
        )
        proven = found is not None and ok and found.status is UserStatus.ACTIVE
        if proven:
            await attempt.succeeded()
        if found is not None and proven and ref.status is TenantStatus.ACTIVE:
            user_id: UUID = found.id
            if new_hash is not None:
                await rehash_password(session, user_id, new_hash)
            result = await after_first_factor(session, tokens, settings, meta, user_id, ref.id)
            await record(
                session,
                meta,
                action="auth.sign_in",
                actor_id=user_id,
                target_type="user",
                target_id=user_id,
                metadata={"next_step": result.next_step.value, "method": "password"},
            )
            return result
        await record(
            session,
            meta,
            action="auth.sign_in",
            # Right credentials in a suspended organisation: refused, not failed.
            outcome=AuditOutcome.DENIED if proven else AuditOutcome.FAILURE,
            actor_id=found.id if found is not None and proven else None,
            target_type="user" if found else None,
            target_id=found.id if found else None,
            metadata={"method": "password", **({"reason": "tenant_suspended"} if proven else {})},
        )
    if proven:
        # Only someone who proved the credentials learns why they cannot sign in.
        raise TenantSuspended("This organisation is suspended")
    raise failure


async def after_first_factor(
    session: Session,
    tokens: TokenService,
    settings: Settings,
    meta: RequestMeta,
    user_id: UUID,
    tenant_id: UUID,
    *,
    amr: tuple[str, ...] = ("pwd",),
) -> SignInResult:
    """What a first factor (a password, an external ID token) leads to: an MFA challenge
    when the user has a factor, forced enrolment when the tenant requires one, else a
    session. An external sign-in never bypasses Tenantry's MFA."""
    if await has_confirmed_totp(session, user_id):
        challenge = tokens.issue_challenge(
            MFA_CHALLENGE_TYPE, user_id=user_id, tenant_id=tenant_id, amr=amr
        )
        return SignInResult(NextStep.MFA_REQUIRED, challenge=challenge)
    if await mfa_required(session):
        challenge = tokens.issue_challenge(
            MFA_ENROLLMENT_TYPE, user_id=user_id, tenant_id=tenant_id, amr=amr
        )
        return SignInResult(NextStep.MFA_ENROLLMENT_REQUIRED, challenge=challenge)
    issued = await start_session(session, tokens, settings, meta, user_id=user_id, aal=1, amr=amr)
    return SignInResult(NextStep.DONE, tokens=issued)
