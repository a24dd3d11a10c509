"""Platform administrators: kept by operators, signed in with a password AND a TOTP code.

Operators create and maintain administrators with `tenantry admin …` (app/cli/admin.py), which
calls the functions below with a RequestMeta naming the command; every change is recorded
in the platform audit log with actor kind `system`. MFA is not optional here: an
administrator gets a TOTP secret when created, and sign-in needs its current code.

Sign-in failures (unknown email, wrong password, wrong or replayed code, disabled
administrator) are one error after the same Argon2 work, throttled like tenant sign-ins
(app/auth/throttle.py) in a scope no tenant can take, and recorded in the platform audit
log.
A platform session has no refresh token; its state is read on every operation (one
indexed query), so signing out or disabling an administrator takes effect at once, in
every server process, even when the operator's command ran elsewhere.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import asyncpg

from app.audit.models import ActorKind, AuditOutcome
from app.audit.service import record
from app.auth.service import InvalidCredentials
from app.auth.throttle import SignInThrottle, platform_account
from app.core import validation
from app.core.actor import PlatformActor
from app.core.db import Database, Session
from app.core.errors import Conflict, NotFound, Unauthenticated
from app.core.passwords import hash_password, verify_and_maybe_rehash
from app.core.request_meta import RequestMeta
from app.core.security import IssuedToken, PlatformClaims, TokenService
from app.core.settings import Settings
from app.core.store import Store
from app.mfa import crypto
from app.mfa.service import load_keys
from app.platform import queries
from app.platform.models import AdminStatus, NewAdmin, PlatformAdmin
from app.platform.permissions import known, parse

AMR = ("pwd", "otp")
_GENERATED_PASSWORD_BYTES = 18  # 24 URL-safe characters, 144 bits
_USER_AGENT_MAX = 512


@dataclass(frozen=True)
class PlatformSignIn:
    admin: PlatformAdmin
    access_token: IssuedToken


# -- sign-in, sessions and the actor of an operation ------------------------------------


async def sign_in(
    database: Database,
    tokens: TokenService,
    settings: Settings,
    store: Store,
    meta: RequestMeta,
    *,
    email: str,
    password: str,
    code: str,
) -> PlatformSignIn:
    keys = await load_keys(settings)
    async with database.transaction(None, platform=True) as session:
        compared_as, found = await queries.credentials(session, email.strip())
        # Claimed before the password and code are checked; given back once both are right.
        attempt = await SignInThrottle(store, settings.auth).reserve(
            platform_account(found.id if found else None, compared_as), meta
        )
        ok, new_hash = await verify_and_maybe_rehash(
            found.password_hash if found else None, password
        )
        if found is None or not ok:
            reason = "unknown" if found is None else "password"
        elif found.status is not AdminStatus.ACTIVE:
            reason = "disabled"
        else:
            secret = crypto.open_secret(
                keys,
                crypto.SealedSecret(found.totp_secret, found.totp_key_version),
                crypto.platform_totp_associated_data(found.id),
            )
            step = crypto.matching_step(secret, code, last_used_step=found.totp_last_used_step)
            # The step is claimed in the database: two sign-ins racing with one code get
            # one session between them.
            if step is not None and await queries.use_totp_step(session, found.id, step):
                await attempt.succeeded()
                if new_hash is not None:
                    await queries.set_password_hash(session, found.id, new_hash)
                return await _open_session(session, tokens, settings, meta, found.id)
            reason = "code"
        await record(
            session,
            meta,
            platform=True,
            action="platform.sign_in",
            outcome=AuditOutcome.FAILURE,
            actor_id=None,
            target_type=None if found is None else "platform_admin",
            target_id=None if found is None else found.id,
            metadata={"failed": reason},
        )
    raise InvalidCredentials("Invalid email, password or code")


async def _open_session(
    session: Session, tokens: TokenService, settings: Settings, meta: RequestMeta, admin_id: UUID
) -> PlatformSignIn:
    expires_at = datetime.now(UTC) + timedelta(seconds=settings.platform_token_ttl_seconds)
    session_id, opened_at = await queries.insert_session(
        session,
        admin_id=admin_id,
        amr=AMR,
        user_agent=meta.user_agent[:_USER_AGENT_MAX],
        ip=meta.ip,
        expires_at=expires_at,
    )
    await record(
        session,
        meta,
        platform=True,
        action="platform.sign_in",
        actor_id=admin_id,
        target_type="platform_session",
        target_id=session_id,
        metadata={"amr": list(AMR)},
    )
    admin = await queries.by_id(session, admin_id)
    assert admin is not None
    token = tokens.issue_platform_token(
        admin_id=admin_id, session_id=session_id, amr=AMR, auth_time=int(opened_at.timestamp())
    )
    return PlatformSignIn(admin, token)


async def actor_for(database: Database, claims: PlatformClaims) -> PlatformActor:
    """The administrator of a verified platform token, if their session is still live and
    they are still active, with the permissions they hold now (not when they signed in)."""
    async with database.transaction(None, readonly=True, platform=True) as session:
        held = await queries.live_session_permissions(session, claims.session_id, claims.admin_id)
    if held is None:
        raise Unauthenticated("The platform session has ended; sign in again")
    return PlatformActor(
        admin_id=claims.admin_id,
        session_id=claims.session_id,
        permissions=frozenset(p.value for p in known(held)),
    )


async def sign_out(session: Session, meta: RequestMeta, actor: PlatformActor) -> None:
    await queries.revoke_sessions(
        session, reason="sign_out", admin_id=actor.admin_id, session_id=actor.session_id
    )
    await record(
        session,
        meta,
        platform=True,
        action="platform.sign_out",
        actor_id=actor.admin_id,
        target_type="platform_session",
        target_id=actor.session_id,
    )


async def current_admin(session: Session, actor: PlatformActor) -> PlatformAdmin:
    admin = await queries.by_id(session, actor.admin_id)
    if admin is None:
        raise NotFound("Administrator not found")
    return admin


# -- operators: `tenantry admin …` ------------------------------------------------------


async def create_admin(
    database: Database,
    settings: Settings,
    meta: RequestMeta,
    *,
    email: str,
    name: str,
    password: str | None,
    permissions: list[str],
) -> NewAdmin:
    """A new active administrator with a TOTP secret; without `password` one is generated.
    The secrets are returned once, for the operator to hand over."""
    email = validation.email(email)
    name = validation.text(name, field="name", max_length=200)
    granted = sorted(parse(permissions))
    generated = password is None
    if password is None:
        password = secrets.token_urlsafe(_GENERATED_PASSWORD_BYTES)
    password_hash = await hash_password(password)
    admin_id = uuid4()
    secret, sealed = await _new_totp(settings, admin_id)
    try:
        async with database.transaction(None, platform=True) as session:
            admin = await queries.insert_admin(
                session,
                admin_id=admin_id,
                email=email,
                name=name,
                password_hash=password_hash,
                totp_secret=sealed.ciphertext,
                totp_key_version=sealed.key_version,
                permissions=[p.value for p in granted],
            )
            await _operator_record(
                session,
                meta,
                "platform.admin.created",
                admin.id,
                {"email": email, "permissions": admin.permissions},
            )
    except asyncpg.UniqueViolationError:
        raise Conflict(f"An administrator with the email {email} exists", field="email") from None
    return NewAdmin(
        admin=admin,
        password=password if generated else None,
        totp_secret=secret,
        otpauth_uri=crypto.provisioning_uri(secret, account=f"platform:{email}"),
    )


async def list_admins(database: Database) -> list[PlatformAdmin]:
    async with database.transaction(None, readonly=True, platform=True) as session:
        return await queries.all_admins(session)


async def set_status(
    database: Database, meta: RequestMeta, *, email: str, status: AdminStatus
) -> PlatformAdmin:
    """Disable (every session ends at once) or enable an administrator."""
    async with database.transaction(None, platform=True) as session:
        admin = await _by_email(session, email)
        if admin.status is status:
            return admin
        changed = await queries.set_status(session, admin.id, status)
        ended = 0
        if status is AdminStatus.DISABLED:
            ended = await queries.revoke_sessions(session, reason="disabled", admin_id=admin.id)
        action = "disabled" if status is AdminStatus.DISABLED else "enabled"
        await _operator_record(
            session, meta, f"platform.admin.{action}", admin.id, {"sessions_ended": ended}
        )
        return changed


async def set_permissions(
    database: Database, meta: RequestMeta, *, email: str, permissions: list[str]
) -> PlatformAdmin:
    """Replace what an administrator may do; applies to their next operation."""
    wanted = sorted(p.value for p in parse(permissions))
    async with database.transaction(None, platform=True) as session:
        admin = await _by_email(session, email)
        if sorted(admin.permissions) == wanted:
            return admin
        changed = await queries.set_permissions(session, admin.id, wanted)
        before = set(admin.permissions)
        await _operator_record(
            session,
            meta,
            "platform.admin.permissions_changed",
            admin.id,
            {
                "added": sorted(set(wanted) - before),
                "removed": sorted(before - set(wanted)),
            },
        )
        return changed


async def reset_credentials(
    database: Database, settings: Settings, meta: RequestMeta, *, email: str, password: bool
) -> NewAdmin:
    """A lost authenticator (or password): a new TOTP secret, a new generated password when
    asked, and every session of the administrator ends."""
    new_password = secrets.token_urlsafe(_GENERATED_PASSWORD_BYTES) if password else None
    password_hash = await hash_password(new_password) if new_password is not None else None
    async with database.transaction(None, platform=True) as session:
        admin = await _by_email(session, email)
        secret, sealed = await _new_totp(settings, admin.id)
        changed = await queries.reset_credentials(
            session,
            admin.id,
            password_hash=password_hash,
            totp_secret=sealed.ciphertext,
            totp_key_version=sealed.key_version,
        )
        ended = await queries.revoke_sessions(
            session, reason="credentials_reset", admin_id=admin.id
        )
        await _operator_record(
            session,
            meta,
            "platform.admin.credentials_reset",
            admin.id,
            {"password": password, "sessions_ended": ended},
        )
    return NewAdmin(
        admin=changed,
        password=new_password,
        totp_secret=secret,
        otpauth_uri=crypto.provisioning_uri(secret, account=f"platform:{changed.email}"),
    )


async def _by_email(session: Session, email: str) -> PlatformAdmin:
    admin = await queries.by_email(session, email.strip())
    if admin is None:
        raise NotFound(f"No administrator with the email {email.strip()}", field="email")
    return admin


async def _new_totp(settings: Settings, admin_id: UUID) -> tuple[str, crypto.SealedSecret]:
    keys = await load_keys(settings)
    secret = crypto.new_totp_secret()
    return secret, crypto.seal_secret(keys, secret, crypto.platform_totp_associated_data(admin_id))


async def _operator_record(
    session: Session, meta: RequestMeta, action: str, admin_id: UUID, metadata: dict[str, object]
) -> None:
    await record(
        session,
        meta,
        platform=True,
        action=action,
        actor_id=None,
        actor_kind=ActorKind.SYSTEM,
        target_type="platform_admin",
        target_id=admin_id,
        metadata=metadata,
    )
