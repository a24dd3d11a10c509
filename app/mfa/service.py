"""MFA rules: TOTP enrolment and verification, recovery codes, and the audit trail.

Writes of a use case run in a savepoint; a rejected code rolls them back, and the failure
is then audited outside it, so the record of a failed attempt survives while nothing else
of the attempt does. Callers therefore must not wrap these functions in a savepoint of
their own that they roll back on a DomainError. Every code check is first claimed from the
throttle (per user, app/auth/throttle.py), which keeps it counted unless the code is
accepted.

Every MFA change (enrolment, disabling, new recovery codes, a recovery code used, a
failed verification) writes one audit entry; enrolling and disabling also revoke every
other session of the user.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar
from uuid import UUID

from app.audit.models import AuditOutcome
from app.audit.service import record
from app.auth.models import SignInTokens
from app.auth.sessions import restart_sessions, revoke_user_sessions, start_session
from app.auth.throttle import SignInThrottle
from app.core.actor import refuse_impersonation
from app.core.counters import WorkCounter
from app.core.db import Database, Session
from app.core.errors import Conflict, DomainError, Invalid, NotFound, Unauthenticated
from app.core.request_meta import RequestMeta
from app.core.security import (
    CLOCK_LEEWAY_SECONDS,
    MFA_CHALLENGE_TYPE,
    MFA_ENROLLMENT_TYPE,
    AccessClaims,
    ChallengeClaims,
    TokenService,
)
from app.core.settings import Settings
from app.core.store import Store, StoreKey, tenant_key
from app.mfa import crypto, queries
from app.mfa.models import MfaStatus, TotpEnrollment
from app.tenants.models import TenantStatus
from app.tenants.service import current_tenant
from app.users.models import UserStatus
from app.users.service import get_user

T = TypeVar("T")

AMR_OTP = "otp"
AMR_RECOVERY = "recovery"

# Second-factor codes (TOTP and recovery) checked by this process: only ever after the
# throttle granted the attempt, which tests of concurrent attempts count on.
code_checks = WorkCounter()


class InvalidMfaCode(DomainError):
    code = "INVALID_MFA_CODE"


class FreshAuthRequired(DomainError):
    code = "FRESH_AUTH_REQUIRED"


@dataclass(frozen=True)
class MfaEnv:
    """What the MFA use cases need besides the database: built per request."""

    tokens: TokenService
    store: Store
    settings: Settings
    meta: RequestMeta


@dataclass(frozen=True)
class ConfirmedEnrollment:
    recovery_codes: list[str]
    # Set when the enrolment completed a sign-in (an enrolment challenge).
    signed_in: SignInTokens | None = None


async def has_confirmed_totp(session: Session, user_id: UUID) -> bool:
    """Whether the user has a confirmed TOTP factor (sign-in then owes a second step)."""
    return await queries.has_confirmed_totp(session, user_id)


async def mfa_status(session: Session, user_id: UUID) -> MfaStatus:
    """The user's factors, without any secret."""
    factor = await queries.totp_factor(session, user_id)
    return MfaStatus(
        totp_enabled=factor is not None and factor.confirmed,
        totp_pending=factor is not None and not factor.confirmed,
        recovery_codes_remaining=await queries.unused_recovery_codes(session, user_id),
    )


# -- Enrolment ------------------------------------------------------------------------------


async def start_enrollment(session: Session, env: MfaEnv, *, user_id: UUID) -> TotpEnrollment:
    """A new secret for the user's authenticator, pending until a code confirms it.

    Starting again replaces a pending secret; a confirmed factor must be disabled first.
    """
    refuse_impersonation(session, "Changing two-factor authentication")
    assert session.tenant_id is not None
    user = await get_user(session, user_id)
    keys = await load_keys(env.settings)
    secret = crypto.new_totp_secret()
    sealed = crypto.seal_totp_secret(keys, secret, tenant_id=session.tenant_id, user_id=user_id)
    async with session.atomic():
        stored = await queries.upsert_pending_totp(
            session, user_id, sealed.ciphertext, sealed.key_version
        )
    if not stored:
        raise Conflict("Two-factor authentication is already enabled; disable it first")
    return TotpEnrollment(secret, crypto.provisioning_uri(secret, account=user.email))


async def confirm_enrollment(
    session: Session,
    env: MfaEnv,
    *,
    user_id: UUID,
    code: str,
) -> list[str]:
    """Confirm the pending factor with its first code; returns the recovery codes (once).

    Every session of the user is revoked: whoever was signed in did not pass the new
    factor. The caller opens the one session that did.
    """
    refuse_impersonation(session, "Changing two-factor authentication")
    assert session.tenant_id is not None
    factor = await queries.totp_factor(session, user_id)
    if factor is None:
        raise NotFound("Start TOTP enrolment first", field="code")
    if factor.confirmed:
        raise Conflict("Two-factor authentication is already enabled")
    secret = await _open_secret(
        env, session.tenant_id, user_id, factor.secret_ciphertext, factor.key_version
    )
    attempt = await _throttle(env).reserve_second_factor(session.tenant_id, user_id)
    code_checks.add()
    step = crypto.matching_step(secret, code, last_used_step=factor.last_used_step)
    try:
        async with session.atomic():
            if step is None or not await queries.confirm_totp(session, user_id, factor.id, step):
                raise InvalidMfaCode(
                    "The code is not valid; check your device's clock", field="code"
                )
            codes = await _replace_recovery_codes(session, user_id)
            await record(
                session,
                env.meta,
                action="mfa.totp.enrolled",
                actor_id=user_id,
                target_type="user",
                target_id=user_id,
                metadata={"key_version": factor.key_version},
            )
            await revoke_user_sessions(
                session,
                env.tokens,
                env.store,
                env.meta,
                user_id=user_id,
                actor_id=user_id,
                reason="mfa_enrolled",
            )
    except InvalidMfaCode:
        await _failed(session, env, user_id, purpose="enrollment", method=AMR_OTP)
        raise
    await attempt.succeeded()
    return codes


async def start_enrollment_with_challenge(
    database: Database, env: MfaEnv, *, challenge: str
) -> TotpEnrollment:
    """`start_enrollment` for a sign-in that an MFA-requiring tenant held back."""
    claims = _challenge(env, MFA_ENROLLMENT_TYPE, challenge)
    return await _in_tenant(
        database,
        claims.tenant_id,
        lambda session: _enrollment_start(session, env, claims),
    )


async def _enrollment_start(
    session: Session, env: MfaEnv, claims: ChallengeClaims
) -> TotpEnrollment:
    await _check_signer(session, env, claims)
    return await start_enrollment(session, env, user_id=claims.user_id)


async def confirm_enrollment_signed_in(
    session: Session, env: MfaEnv, *, claims: AccessClaims, code: str
) -> ConfirmedEnrollment:
    """Confirm enrolment for a signed-in user: every earlier session ends, and the caller
    gets a new AAL 2 session (its tokens are in the result)."""
    codes = await confirm_enrollment(session, env, user_id=claims.user_id, code=code)
    signed_in = await start_session(
        session,
        env.tokens,
        env.settings,
        env.meta,
        user_id=claims.user_id,
        aal=2,
        amr=(*claims.amr, AMR_OTP) if AMR_OTP not in claims.amr else claims.amr,
    )
    return ConfirmedEnrollment(codes, signed_in)


async def confirm_enrollment_with_challenge(
    database: Database, env: MfaEnv, *, challenge: str, code: str
) -> ConfirmedEnrollment:
    """Confirm enrolment and complete the held-back sign-in at AAL 2."""
    claims = _challenge(env, MFA_ENROLLMENT_TYPE, challenge)

    async def confirm(session: Session) -> ConfirmedEnrollment:
        await _check_signer(session, env, claims)
        codes = await confirm_enrollment(session, env, user_id=claims.user_id, code=code)
        signed_in = await start_session(
            session,
            env.tokens,
            env.settings,
            env.meta,
            user_id=claims.user_id,
            aal=2,
            amr=_amr(claims, AMR_OTP),
        )
        return ConfirmedEnrollment(codes, signed_in)

    done = await _in_tenant(database, claims.tenant_id, confirm)
    await _spend_challenge(env, claims)
    return done


# -- Sign-in ---------------------------------------------------------------------------------


async def verify_sign_in(
    database: Database,
    env: MfaEnv,
    *,
    challenge: str,
    code: str | None,
    recovery_code: str | None,
) -> SignInTokens:
    """Complete a sign-in held back for a second factor: a TOTP code or a recovery code.

    The tokens are AAL 2, with `otp` or `recovery` added to the challenge's methods.
    """
    if (code is None) == (recovery_code is None):
        raise Invalid("Give exactly one of `code` and `recoveryCode`", field="code")
    claims = _challenge(env, MFA_CHALLENGE_TYPE, challenge)

    async def verify(session: Session) -> SignInTokens:
        await _check_signer(session, env, claims)
        attempt = await _throttle(env).reserve_second_factor(claims.tenant_id, claims.user_id)
        if code is not None:
            method = AMR_OTP
            ok = await _use_totp(session, env, claims.user_id, code)
        else:
            assert recovery_code is not None
            method = AMR_RECOVERY
            ok = await _use_recovery_code(session, env, claims.user_id, recovery_code)
        if not ok:
            await _failed(session, env, claims.user_id, purpose="sign_in", method=method)
            raise InvalidMfaCode(
                "The code is not valid",
                field="code" if method == AMR_OTP else "recoveryCode",
            )
        await attempt.succeeded()
        async with session.atomic():
            return await start_session(
                session,
                env.tokens,
                env.settings,
                env.meta,
                user_id=claims.user_id,
                aal=2,
                amr=_amr(claims, method),
            )

    signed_in = await _in_tenant(database, claims.tenant_id, verify)
    await _spend_challenge(env, claims)
    return signed_in


async def _use_totp(session: Session, env: MfaEnv, user_id: UUID, code: str) -> bool:
    assert session.tenant_id is not None
    factor = await queries.totp_factor(session, user_id)
    if factor is None or not factor.confirmed:
        return False
    secret = await _open_secret(
        env, session.tenant_id, user_id, factor.secret_ciphertext, factor.key_version
    )
    code_checks.add()
    step = crypto.matching_step(secret, code, last_used_step=factor.last_used_step)
    if step is None:
        return False
    async with session.atomic():
        used = await queries.use_totp_step(session, user_id, factor.id, step)
        if used:
            await record(
                session,
                env.meta,
                action="mfa.totp.verified",
                actor_id=user_id,
                target_type="user",
                target_id=user_id,
            )
    return used


async def _use_recovery_code(session: Session, env: MfaEnv, user_id: UUID, code: str) -> bool:
    assert session.tenant_id is not None
    code_checks.add()
    digest = crypto.recovery_code_digest(code, tenant_id=session.tenant_id, user_id=user_id)
    if digest is None:
        return False
    async with session.atomic():
        used = await queries.use_recovery_code(session, user_id, digest)
        if used:
            remaining = await queries.unused_recovery_codes(session, user_id)
            await record(
                session,
                env.meta,
                action="mfa.recovery_code.used",
                actor_id=user_id,
                target_type="user",
                target_id=user_id,
                metadata={"remaining": remaining},
            )
    return used


# -- Changes that need a fresh second factor ---------------------------------------------


async def disable(session: Session, env: MfaEnv, *, claims: AccessClaims) -> SignInTokens:
    """Remove the user's TOTP factor and recovery codes. Every session of the user ends;
    the caller gets a new one, at AAL 1 since the factor is gone (its tokens are returned)."""
    refuse_impersonation(session, "Changing two-factor authentication")
    _require_fresh(env, claims)
    async with session.atomic():
        if not await queries.delete_totp(session, claims.user_id):
            raise NotFound("Two-factor authentication is not enabled")
        await queries.delete_recovery_codes(session, claims.user_id)
        await record(
            session,
            env.meta,
            action="mfa.disabled",
            actor_id=claims.user_id,
            target_type="user",
            target_id=claims.user_id,
        )
        first_factor = tuple(m for m in claims.amr if m not in (AMR_OTP, AMR_RECOVERY))
        return await restart_sessions(
            session,
            env.tokens,
            env.settings,
            env.store,
            env.meta,
            user_id=claims.user_id,
            reason="mfa_disabled",
            aal=1,
            amr=first_factor or ("pwd",),
        )


async def regenerate_recovery_codes(
    session: Session, env: MfaEnv, *, claims: AccessClaims
) -> list[str]:
    """New recovery codes replacing all earlier ones (used or not); shown once."""
    refuse_impersonation(session, "Changing recovery codes")
    _require_fresh(env, claims)
    async with session.atomic():
        if not await queries.has_confirmed_totp(session, claims.user_id):
            raise NotFound("Two-factor authentication is not enabled")
        codes = await _replace_recovery_codes(session, claims.user_id)
        await record(
            session,
            env.meta,
            action="mfa.recovery_codes.regenerated",
            actor_id=claims.user_id,
            target_type="user",
            target_id=claims.user_id,
        )
    return codes


def _require_fresh(env: MfaEnv, claims: AccessClaims) -> None:
    if not claims.fresh(max_age_seconds=env.settings.auth.fresh_auth_seconds):
        raise FreshAuthRequired(
            "Sign in again with your second factor to change two-factor authentication"
        )


# -- Helpers ---------------------------------------------------------------------------------


def ensure_keys(settings: Settings) -> None:
    """Fail at start-up, not at the first enrolment, when the key file is missing (production)
    or invalid; in development a missing file is created (mode 0600)."""
    crypto.load_or_create_mfa_keys(
        settings.mfa_keys_path, create=settings.environment == "development"
    )


async def load_keys(settings: Settings) -> crypto.MfaKeys:
    # Read per use (a small file): a key added by rotation is used without a restart.
    return await asyncio.to_thread(
        crypto.load_or_create_mfa_keys,
        settings.mfa_keys_path,
        create=settings.environment == "development",
    )


async def _open_secret(
    env: MfaEnv, tenant_id: UUID, user_id: UUID, ciphertext: bytes, key_version: int
) -> str:
    keys = await load_keys(env.settings)
    return crypto.open_totp_secret(
        keys,
        crypto.SealedSecret(ciphertext, key_version),
        tenant_id=tenant_id,
        user_id=user_id,
    )


async def _replace_recovery_codes(session: Session, user_id: UUID) -> list[str]:
    assert session.tenant_id is not None
    codes = crypto.new_recovery_codes()
    digests = [
        crypto.recovery_code_digest(c, tenant_id=session.tenant_id, user_id=user_id) for c in codes
    ]
    await queries.replace_recovery_codes(session, user_id, [d for d in digests if d is not None])
    return codes


def _challenge(env: MfaEnv, typ: str, token: str) -> ChallengeClaims:
    # verify_challenge raises one Unauthenticated for every kind of bad token.
    return env.tokens.verify_challenge(typ, token)


def _spent_key(claims: ChallengeClaims) -> StoreKey:
    return tenant_key(claims.tenant_id, "mfa-challenge-used", claims.token_id)


async def _check_signer(session: Session, env: MfaEnv, claims: ChallengeClaims) -> None:
    """The challenge is unused, and its user and tenant may still sign in."""
    invalid = Unauthenticated("Invalid or expired challenge")
    if await env.store.get(_spent_key(claims)):
        raise invalid
    tenant = await current_tenant(session)
    try:
        user = await get_user(session, claims.user_id)
    except NotFound:
        raise invalid from None
    if tenant.status is not TenantStatus.ACTIVE or user.status is not UserStatus.ACTIVE:
        raise invalid


async def _spend_challenge(env: MfaEnv, claims: ChallengeClaims) -> None:
    """A completed challenge cannot complete another sign-in."""
    ttl = max(1, claims.expires_at - int(time.time()) + CLOCK_LEEWAY_SECONDS)
    await env.store.put(_spent_key(claims), 1, ttl_seconds=ttl)


def _amr(claims: ChallengeClaims, method: str) -> tuple[str, ...]:
    return (*claims.amr, method) if method not in claims.amr else claims.amr


def _throttle(env: MfaEnv) -> SignInThrottle:
    return SignInThrottle(env.store, env.settings.auth)


async def _failed(
    session: Session, env: MfaEnv, user_id: UUID, *, purpose: str, method: str
) -> None:
    """Audit a rejected code (outside the attempt's savepoint: it persists). The throttle
    counted it already: its claim is given back only when a code is accepted."""
    assert session.tenant_id is not None
    await record(
        session,
        env.meta,
        action="mfa.verification.failed",
        outcome=AuditOutcome.FAILURE,
        actor_id=user_id,
        target_type="user",
        target_id=user_id,
        metadata={"purpose": purpose, "method": method},
    )


async def _in_tenant(
    database: Database, tenant_id: UUID, action: Callable[[Session], Awaitable[T]]
) -> T:
    """Run `action` in a transaction of the tenant that commits also when it raises a
    DomainError (a failed attempt's audit entry must persist), then re-raise that error."""
    failure: DomainError | None = None
    async with database.transaction(tenant_id) as session:
        try:
            return await action(session)
        except DomainError as error:
            failure = error
    assert failure is not None
    raise failure
