"""Account flows: invitations, password reset and change, email change and verification.

Mailed secrets are opaque tokens (app/core/security.py) stored as digests, single use and
expiring. A token names its tenant, so the flows that start from a link bind that tenant
before looking the digest up under row-level security; a forged tenant part finds nothing.

Every failure of a token (malformed, unknown, expired, used, wrong purpose) is the same
error after the same work: the new password is hashed before the token is looked at.
Requesting a password reset answers the same whether or not the tenant or account exists.
Each flow writes one audit entry in the transaction of the action itself.
"""

from __future__ import annotations

import hashlib
import logging
from urllib.parse import quote
from uuid import UUID

import asyncpg

from app.accounts import queries
from app.accounts.mailer import MailDeliveryFailed, Mailer
from app.accounts.models import INVITING_ROLES, MailMessage, Role, TokenPurpose
from app.audit.models import AuditOutcome
from app.audit.service import record
from app.auth.service import NextStep, SignInResult
from app.auth.sessions import revoke_user_sessions, start_session
from app.core import validation
from app.core.db import Database, Session
from app.core.errors import Conflict, DomainError, Forbidden, Invalid
from app.core.passwords import (
    check_password_policy,
    hash_password,
    verify_password,
)
from app.core.request_meta import RequestMeta
from app.core.security import (
    MFA_ENROLLMENT_TYPE,
    TokenService,
    new_opaque_token,
    parse_opaque_token,
)
from app.core.settings import Settings
from app.core.store import Store, tenant_key
from app.tenants.models import Tenant, TenantStatus
from app.tenants.service import current_tenant, lookup_slug, mfa_required
from app.users.models import User

logger = logging.getLogger("tenantry.accounts")

# Reset mails per address and hour: more requests get the same answer and send nothing,
# so nobody can flood a mailbox (or the mail provider's quota) through this mutation.
RESET_MAILS_PER_HOUR = 5


class InvalidToken(DomainError):
    """A mailed link that is malformed, unknown, expired, already used or for something else."""

    code = "INVALID_TOKEN"


class WrongPassword(DomainError):
    code = "INVALID_CREDENTIALS"


def _invalid_token() -> InvalidToken:
    return InvalidToken("This link is invalid or has expired", field="token")


def _link(settings: Settings, path: str, token: str) -> str:
    return f"{settings.auth.public_url}/{path}?token={quote(token, safe='')}"


async def _issue_token(
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


# --- invitations ------------------------------------------------------------------------


async def invite_user(
    session: Session,
    mailer: Mailer,
    settings: Settings,
    meta: RequestMeta,
    *,
    actor_id: UUID,
    email: str,
    role: Role,
    display_name: str | None,
) -> User:
    """Invite someone to the session's tenant by email (owners and admins only).

    Creates the user as `invited` without a password, or, for an invitation still pending,
    updates it and replaces its token. An active or disabled user is a Conflict. Only an
    owner may invite another owner.
    """
    actor = await queries.account(session, actor_id)
    if actor is None or actor.role not in INVITING_ROLES:
        raise Forbidden("Only owners and admins can invite users")
    if role is Role.OWNER and actor.role is not Role.OWNER:
        raise Forbidden("Only owners can invite owners", field="role")
    email = validation.email(email)
    name = (
        None
        if display_name is None
        else validation.text(display_name, field="displayName", max_length=200)
    )
    existing = await queries.account_by_email(session, email)
    if existing is None:
        default_name = email.split("@", 1)[0][:200] or email
        user = await queries.insert_invited_user(
            session, email=email, display_name=name or default_name, role=role
        )
    elif existing.status == "invited":
        user = await queries.update_invited_user(session, existing.id, display_name=name, role=role)
    else:
        raise Conflict("A user with this email already exists", field="email")
    token = await _issue_token(
        session,
        TokenPurpose.INVITATION,
        user_id=user.id,
        ttl_seconds=settings.auth.invitation_ttl_seconds,
        email=user.email,
        created_by=actor_id,
    )
    tenant = await current_tenant(session)
    await record(
        session,
        meta,
        action="invitation.sent",
        actor_id=actor_id,
        target_type="user",
        target_id=user.id,
        metadata={"role": role.value, "reinvited": existing is not None},
    )
    await mailer.send(
        session,
        MailMessage(
            kind=TokenPurpose.INVITATION.value,
            recipient=user.email,
            subject=f"You are invited to {tenant.name}",
            body=(
                f"You have been invited to join {tenant.name} on Tenantry.\n\n"
                f"Accept the invitation and choose a password here:\n"
                f"{_link(settings, 'accept-invitation', token)}\n\n"
                f"The link works once and expires in "
                f"{_hours(settings.auth.invitation_ttl_seconds)}.\n"
            ),
        ),
    )
    return user


async def accept_invitation(
    database: Database,
    tokens: TokenService,
    settings: Settings,
    meta: RequestMeta,
    *,
    token: str,
    password: str,
    display_name: str | None,
) -> SignInResult:
    """Set the invited user's password, activate them and sign them in.

    In a tenant that requires MFA the result is an enrolment challenge, as at sign-in.
    """
    check_password_policy(password)
    name = (
        None
        if display_name is None
        else validation.text(display_name, field="displayName", max_length=200)
    )
    # Hashed before the token is looked at: every token failure costs the same Argon2 run.
    password_hash = await hash_password(password)
    parsed = parse_opaque_token(TokenPurpose.INVITATION.kind, token)
    if parsed is None:
        raise _invalid_token()
    async with database.transaction(parsed.tenant_id) as session:
        tenant = await _active_tenant(session)
        if tenant is None:
            raise _invalid_token()
        used = await queries.consume_token(session, TokenPurpose.INVITATION, parsed.digest)
        if used is None or not await queries.activate_invited_user(
            session, used.user_id, password_hash=password_hash, display_name=name
        ):
            raise _invalid_token()
        user_id = used.user_id
        await record(
            session,
            meta,
            action="invitation.accepted",
            actor_id=user_id,
            target_type="user",
            target_id=user_id,
        )
        if await mfa_required(session):
            challenge = tokens.issue_challenge(
                MFA_ENROLLMENT_TYPE, user_id=user_id, tenant_id=parsed.tenant_id, amr=("pwd",)
            )
            return SignInResult(NextStep.MFA_ENROLLMENT_REQUIRED, challenge=challenge)
        issued = await start_session(
            session, tokens, settings, meta, user_id=user_id, aal=1, amr=("pwd",)
        )
        return SignInResult(NextStep.DONE, tokens=issued)


async def _active_tenant(session: Session) -> Tenant | None:
    """The bound tenant when it exists and is active (a link of a suspended tenant is dead)."""
    try:
        tenant = await current_tenant(session)
    except DomainError:
        return None
    return tenant if tenant.status is TenantStatus.ACTIVE else None


# --- password reset ---------------------------------------------------------------------


async def request_password_reset(
    database: Database,
    store: Store,
    mailer: Mailer,
    settings: Settings,
    meta: RequestMeta,
    *,
    tenant: str,
    email: str,
) -> None:
    """Mail a reset link when an active account has this email; the same outcome otherwise.

    Unknown accounts of an existing tenant are audited too (as a failure), so the database
    does the same kind of work either way. At most RESET_MAILS_PER_HOUR mails per address.
    """
    email = validation.email(email)
    ref = await lookup_slug(database, tenant)
    if ref is None or ref.status is not TenantStatus.ACTIVE:
        return
    # Counted for unknown addresses too: the limit itself reveals nothing.
    address = hashlib.sha256(email.lower().encode()).hexdigest()
    hits = await store.hit(tenant_key(ref.id, "password-reset", address), window_seconds=3600)
    async with database.transaction(ref.id) as session:
        found = await queries.account_by_email(session, email)
        refused = "too_many_requests" if hits.count > RESET_MAILS_PER_HOUR else None
        if found is None or found.status != "active":
            refused = "no_active_account"
        if refused is not None:
            await record(
                session,
                meta,
                action="password_reset.requested",
                outcome=AuditOutcome.FAILURE,
                actor_id=None,
                target_type=None if found is None else "user",
                target_id=None if found is None else found.id,
                metadata={"reason": refused},
            )
            return
        assert found is not None
        token = await _issue_token(
            session,
            TokenPurpose.PASSWORD_RESET,
            user_id=found.id,
            ttl_seconds=settings.auth.password_reset_ttl_seconds,
        )
        await record(
            session,
            meta,
            action="password_reset.requested",
            actor_id=None,
            target_type="user",
            target_id=found.id,
        )
        try:
            await _send_reset_mail(session, mailer, settings, found.email, token)
        except MailDeliveryFailed:
            # Answered as usual: an error here would tell that the account exists.
            logger.warning("password reset mail not sent; the request is answered as usual")


async def _send_reset_mail(
    session: Session, mailer: Mailer, settings: Settings, recipient: str, token: str
) -> None:
    await mailer.send(
        session,
        MailMessage(
            kind=TokenPurpose.PASSWORD_RESET.value,
            recipient=recipient,
            subject="Reset your Tenantry password",
            body=(
                "Someone (hopefully you) asked to reset your Tenantry password.\n\n"
                f"Choose a new password here:\n"
                f"{_link(settings, 'reset-password', token)}\n\n"
                f"The link works once and expires in "
                f"{_hours(settings.auth.password_reset_ttl_seconds)}. "
                "If you did not ask for it, ignore this mail; your password is unchanged.\n"
            ),
        ),
    )


async def complete_password_reset(
    database: Database,
    tokens: TokenService,
    store: Store,
    meta: RequestMeta,
    *,
    token: str,
    new_password: str,
) -> None:
    """Set a new password with a reset token and end every session of the user."""
    check_password_policy(new_password, field="newPassword")
    password_hash = await hash_password(new_password, field="newPassword")
    parsed = parse_opaque_token(TokenPurpose.PASSWORD_RESET.kind, token)
    if parsed is None:
        raise _invalid_token()
    async with database.transaction(parsed.tenant_id) as session:
        if await _active_tenant(session) is None:
            raise _invalid_token()
        used = await queries.consume_token(session, TokenPurpose.PASSWORD_RESET, parsed.digest)
        account = None if used is None else await queries.account(session, used.user_id)
        if account is None or account.status != "active":
            raise _invalid_token()
        await queries.set_password(session, account.id, password_hash)
        await queries.delete_open_tokens(session, TokenPurpose.PASSWORD_RESET, account.id)
        await record(
            session,
            meta,
            action="password_reset.completed",
            actor_id=account.id,
            target_type="user",
            target_id=account.id,
        )
        await revoke_user_sessions(
            session,
            tokens,
            store,
            meta,
            user_id=account.id,
            actor_id=account.id,
            reason="password_reset",
        )


# --- signed-in user ---------------------------------------------------------------------


async def change_password(
    session: Session,
    tokens: TokenService,
    store: Store,
    meta: RequestMeta,
    *,
    actor_id: UUID,
    session_id: UUID,
    current_password: str,
    new_password: str,
) -> None:
    """Change the signed-in user's password; every other session of theirs ends."""
    check_password_policy(new_password, field="newPassword")
    account = await queries.account(session, actor_id)
    if not await verify_password(account.password_hash if account else None, current_password):
        raise WrongPassword("The current password is wrong", field="currentPassword")
    assert account is not None
    await queries.set_password(
        session, account.id, await hash_password(new_password, field="newPassword")
    )
    await queries.delete_open_tokens(session, TokenPurpose.PASSWORD_RESET, account.id)
    await record(
        session,
        meta,
        action="password.changed",
        actor_id=actor_id,
        target_type="user",
        target_id=actor_id,
    )
    await revoke_user_sessions(
        session,
        tokens,
        store,
        meta,
        user_id=actor_id,
        actor_id=actor_id,
        reason="password_changed",
        except_session=session_id,
    )


async def request_email_change(
    session: Session,
    mailer: Mailer,
    settings: Settings,
    meta: RequestMeta,
    *,
    actor_id: UUID,
    new_email: str,
) -> None:
    """Mail a verification link to `new_email`; the address changes when it is followed."""
    new_email = validation.email(new_email, field="newEmail")
    account = await queries.account(session, actor_id)
    assert account is not None
    if new_email.lower() == account.email.lower():
        raise Invalid("This is already your email address", field="newEmail")
    if await queries.email_taken(session, new_email, except_user=actor_id):
        raise Conflict("A user with this email already exists", field="newEmail")
    token = await _issue_token(
        session,
        TokenPurpose.EMAIL_VERIFICATION,
        user_id=actor_id,
        ttl_seconds=settings.auth.email_verification_ttl_seconds,
        email=new_email,
    )
    await record(
        session,
        meta,
        action="email_change.requested",
        actor_id=actor_id,
        target_type="user",
        target_id=actor_id,
        metadata={"new_email": new_email},
    )
    await mailer.send(
        session,
        MailMessage(
            kind=TokenPurpose.EMAIL_VERIFICATION.value,
            recipient=new_email,
            subject="Confirm your new Tenantry email address",
            body=(
                "Confirm that this is your new email address for Tenantry:\n"
                f"{_link(settings, 'verify-email', token)}\n\n"
                f"The link works once and expires in "
                f"{_hours(settings.auth.email_verification_ttl_seconds)}. "
                "If you did not ask for this, ignore this mail.\n"
            ),
        ),
    )


async def verify_email(database: Database, meta: RequestMeta, *, token: str) -> None:
    """Apply an email change from its verification link (Conflict if the address was taken)."""
    parsed = parse_opaque_token(TokenPurpose.EMAIL_VERIFICATION.kind, token)
    if parsed is None:
        raise _invalid_token()
    async with database.transaction(parsed.tenant_id) as session:
        if await _active_tenant(session) is None:
            raise _invalid_token()
        used = await queries.consume_token(session, TokenPurpose.EMAIL_VERIFICATION, parsed.digest)
        account = None if used is None else await queries.account(session, used.user_id)
        if used is None or used.email is None or account is None or account.status != "active":
            raise _invalid_token()
        try:
            async with session.atomic():
                await queries.set_verified_email(session, account.id, used.email)
        except asyncpg.UniqueViolationError:
            raise Conflict(
                "Another user took this email address meanwhile", field="token"
            ) from None
        await record(
            session,
            meta,
            action="email_change.verified",
            actor_id=account.id,
            target_type="user",
            target_id=account.id,
            metadata={"old_email": account.email, "new_email": used.email},
        )


def _hours(seconds: int) -> str:
    if seconds < 3600:
        return f"{max(1, seconds // 60)} minutes"
    hours = seconds // 3600
    return "1 hour" if hours == 1 else f"{hours} hours"
