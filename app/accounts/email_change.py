"""Changing a signed-in user's email: a link mailed to the new address applies the change."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from app.accounts import queries
from app.accounts.mailer import Mailer
from app.accounts.models import MailMessage, TokenPurpose
from app.accounts.tokens import active_tenant, duration, invalid_token, issue_token, link
from app.audit.service import record
from app.core import validation
from app.core.actor import refuse_impersonation
from app.core.db import Database, Session
from app.core.errors import Conflict, Invalid
from app.core.request_meta import RequestMeta
from app.core.security import parse_opaque_token
from app.core.settings import Settings
from app.users import service as users
from app.users.models import UserStatus


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
    refuse_impersonation(session, "Changing the email")
    new_email = validation.email(new_email, field="newEmail")
    account = await users.account(session, actor_id)
    assert account is not None
    if new_email.lower() == account.email.lower():
        raise Invalid("This is already your email address", field="newEmail")
    if await users.email_taken(session, new_email, except_user=actor_id):
        raise Conflict("A user with this email already exists", field="newEmail")
    await record(
        session,
        meta,
        action="email_change.requested",
        actor_id=actor_id,
        target_type="user",
        target_id=actor_id,
        metadata={"new_email": new_email},
    )
    await mail_verification_link(
        session,
        mailer,
        settings,
        user_id=actor_id,
        email=new_email,
        subject="Confirm your new Tenantry email address",
        request="Confirm that this is your new email address for Tenantry:",
    )


async def request_verification(
    session: Session, mailer: Mailer, settings: Settings, *, user_id: UUID, email: str
) -> None:
    """Mail a link that confirms the user's current address (e.g. a new tenant's owner who
    signed up with it); following it sets `emailVerifiedAt`."""
    await mail_verification_link(
        session,
        mailer,
        settings,
        user_id=user_id,
        email=email,
        subject="Confirm your Tenantry email address",
        request="Confirm that this is your email address for Tenantry:",
    )


async def mail_verification_link(
    session: Session,
    mailer: Mailer,
    settings: Settings,
    *,
    user_id: UUID,
    email: str,
    subject: str,
    request: str,
) -> None:
    token = await issue_token(
        session,
        TokenPurpose.EMAIL_VERIFICATION,
        user_id=user_id,
        ttl_seconds=settings.auth.email_verification_ttl_seconds,
        email=email,
    )
    await mailer.send(
        session,
        MailMessage(
            kind=TokenPurpose.EMAIL_VERIFICATION.value,
            recipient=email,
            subject=subject,
            body=(
                f"{request}\n"
                f"{link(settings, 'verify-email', token)}\n\n"
                f"The link works once and expires in "
                f"{duration(settings.auth.email_verification_ttl_seconds)}. "
                "If you did not ask for this, ignore this mail.\n"
            ),
        ),
    )


async def verify_email(database: Database, meta: RequestMeta, *, token: str) -> None:
    """Apply an email change from its verification link (Conflict if the address was taken)."""
    parsed = parse_opaque_token(TokenPurpose.EMAIL_VERIFICATION.kind, token)
    if parsed is None:
        raise invalid_token()
    async with database.transaction(parsed.tenant_id) as session:
        if await active_tenant(session) is None:
            raise invalid_token()
        used = await queries.consume_token(session, TokenPurpose.EMAIL_VERIFICATION, parsed.digest)
        account = None if used is None else await users.account(session, used.user_id)
        if (
            used is None
            or used.email is None
            or account is None
            or account.status is not UserStatus.ACTIVE
        ):
            raise invalid_token()
        try:
            async with session.atomic():
                await users.set_verified_email(session, account.id, used.email)
        except asyncpg.UniqueViolationError:
            raise Conflict(
                "Another user took this email address meanwhile", field="token"
            ) from None
        changed = used.email.lower() != account.email.lower()
        await record(
            session,
            meta,
            action="email_change.verified" if changed else "email.verified",
            actor_id=account.id,
            target_type="user",
            target_id=account.id,
            metadata={"old_email": account.email, "new_email": used.email},
        )
