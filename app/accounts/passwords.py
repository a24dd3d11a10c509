"""Password reset (by mailed link) and password change (signed in).

Requesting a reset answers the same whether or not the tenant or account exists, and costs
no Argon2 either way. Completing one, or changing the password, ends the user's sessions
(all of them, or all but the current one).
"""

from __future__ import annotations

import hashlib
import logging

from app.accounts import queries
from app.accounts.mailer import MailDeliveryFailed, Mailer
from app.accounts.models import MailMessage, TokenPurpose
from app.accounts.tokens import active_tenant, duration, invalid_token, issue_token, link
from app.audit.models import AuditOutcome
from app.audit.service import record
from app.auth.models import SignInTokens
from app.auth.sessions import restart_sessions, revoke_user_sessions
from app.auth.throttle import SignInThrottle, tenant_account
from app.core import validation
from app.core.actor import refuse_impersonation
from app.core.db import Database, Session
from app.core.errors import DomainError
from app.core.passwords import check_password_policy, hash_password, verify_password
from app.core.request_meta import RequestMeta
from app.core.security import AccessClaims, TokenService, parse_opaque_token
from app.core.settings import Settings
from app.core.store import Store, tenant_key
from app.tenants.models import TenantStatus
from app.tenants.service import lookup
from app.users import service as users
from app.users.models import UserStatus

logger = logging.getLogger("tenantry.accounts")

# Reset mails per address and hour: more requests get the same answer and send nothing,
# so nobody can flood a mailbox (or the mail provider's quota) through this mutation.
RESET_MAILS_PER_HOUR = 5


class WrongPassword(DomainError):
    code = "INVALID_CREDENTIALS"


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
    ref = await lookup(database, tenant)
    if ref is None or ref.status is not TenantStatus.ACTIVE:
        return
    async with database.transaction(ref.id) as session:
        found = (await users.look_up(session, email)).found
        # Counted per account (by id: every spelling of the address that finds it shares the
        # count), and for unknown addresses too, so the limit itself reveals nothing.
        counted = str(found.id) if found else hashlib.sha256(email.lower().encode()).hexdigest()
        hits = await store.hit(tenant_key(ref.id, "password-reset", counted), window_seconds=3600)
        refused = "too_many_requests" if hits.count > RESET_MAILS_PER_HOUR else None
        if found is None or found.status is not UserStatus.ACTIVE:
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
        token = await issue_token(
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
                f"{link(settings, 'reset-password', token)}\n\n"
                f"The link works once and expires in "
                f"{duration(settings.auth.password_reset_ttl_seconds)}. "
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
        raise invalid_token()
    async with database.transaction(parsed.tenant_id) as session:
        if await active_tenant(session) is None:
            raise invalid_token()
        used = await queries.consume_token(session, TokenPurpose.PASSWORD_RESET, parsed.digest)
        account = None if used is None else await users.account(session, used.user_id)
        if account is None or account.status is not UserStatus.ACTIVE:
            raise invalid_token()
        await users.set_password(session, account.id, password_hash)
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


async def change_password(
    session: Session,
    tokens: TokenService,
    settings: Settings,
    store: Store,
    meta: RequestMeta,
    *,
    claims: AccessClaims,
    current_password: str,
    new_password: str,
) -> SignInTokens:
    """Change the signed-in user's password. Every session of theirs ends, the caller's
    too; the caller gets a new session, whose tokens are returned."""
    refuse_impersonation(session, "Changing the password")
    actor_id = claims.user_id
    check_password_policy(new_password, field="newPassword")
    account = await users.account(session, actor_id)
    assert account is not None
    # A stolen access token must not buy unlimited guesses of the password: a current
    # password is claimed and counted exactly like a sign-in of the same account.
    assert session.tenant_id is not None
    attempt = await SignInThrottle(store, settings.auth).reserve(
        tenant_account(session.tenant_id, account.id, account.email), meta
    )
    if not await verify_password(account.password_hash, current_password):
        raise WrongPassword("The current password is wrong", field="currentPassword")
    await attempt.succeeded()
    await users.set_password(
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
    return await restart_sessions(
        session,
        tokens,
        settings,
        store,
        meta,
        user_id=actor_id,
        reason="password_changed",
        aal=claims.aal,
        amr=claims.amr,
    )
