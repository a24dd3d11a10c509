"""Invitations: users with `user:invite` invite by email; the link sets a password once
and signs in.

Every token failure (malformed, unknown, expired, used, wrong purpose) is the same error
after the same work: the password is hashed before the token is looked at.
"""

from __future__ import annotations

from uuid import UUID

from app.accounts import queries
from app.accounts.mailer import Mailer
from app.accounts.models import MailMessage, Role, TokenPurpose
from app.accounts.tokens import active_tenant, duration, invalid_token, issue_token, link
from app.audit.models import ActorKind
from app.audit.service import record
from app.auth.service import SignInResult, after_first_factor
from app.core import validation
from app.core.actor import Actor, refuse_impersonation
from app.core.db import Database, Session
from app.core.errors import Conflict
from app.core.passwords import check_password_policy, hash_password
from app.core.request_meta import RequestMeta
from app.core.security import TokenService, parse_opaque_token
from app.core.settings import Settings
from app.rbac import service as rbac
from app.rbac.permissions import Permission
from app.tenants.service import current_tenant
from app.users import service as users
from app.users.models import User, UserStatus


async def invite_user(
    session: Session,
    mailer: Mailer,
    settings: Settings,
    meta: RequestMeta,
    *,
    actor: Actor,
    email: str,
    role: Role,
    display_name: str | None,
) -> User:
    """Invite someone to the session's tenant by email (needs `user:invite`).

    Creates the user as `invited` without a password, or, for an invitation still pending,
    updates it and replaces its token. An active or disabled user is a Conflict. Only an
    owner may invite another owner.
    """
    refuse_impersonation(session, "Inviting users")
    actor.require(Permission.USER_INVITE)
    rbac.check_may_grant(actor, role.value)
    email = validation.email(email)
    name = (
        None
        if display_name is None
        else validation.text(display_name, field="displayName", max_length=200)
    )
    existing = (await users.look_up(session, email)).found
    if existing is None:
        await users.require_room_for_user(session)
        default_name = email.split("@", 1)[0][:200] or email
        user = await users.create_invited(session, email=email, display_name=name or default_name)
    elif existing.status is UserStatus.INVITED:
        # A pending invitation is changed (its role replaced) only by one who may act on it.
        await users.acting_on(session, actor, existing.id, field="email")
        user = await users.update_invited(session, existing.id, display_name=name)
    else:
        raise Conflict("A user with this email already exists", field="email")
    await rbac.grant_system_role(
        session,
        user_id=user.id,
        key=role.value,
        granted_by=actor.user_id,
        replace=existing is not None,
    )
    await mail_invitation(
        session,
        mailer,
        settings,
        meta,
        user=user,
        role=role,
        actor_id=actor.user_id,
        reinvited=existing is not None,
    )
    return user


async def invite_owner(
    session: Session,
    mailer: Mailer,
    settings: Settings,
    meta: RequestMeta,
    *,
    email: str,
    display_name: str,
    actor_id: UUID,
    actor_kind: ActorKind,
) -> User:
    """The first owner of a tenant being provisioned, invited by mail (no tenant user exists
    yet to invite them): the caller has checked the input and holds the right to do it."""
    user = await users.create_invited(session, email=email, display_name=display_name)
    await rbac.grant_system_role(session, user_id=user.id, key=Role.OWNER.value, granted_by=None)
    await mail_invitation(
        session,
        mailer,
        settings,
        meta,
        user=user,
        role=Role.OWNER,
        actor_id=actor_id,
        actor_kind=actor_kind,
    )
    return user


async def mail_invitation(
    session: Session,
    mailer: Mailer,
    settings: Settings,
    meta: RequestMeta,
    *,
    user: User,
    role: Role,
    actor_id: UUID | None,
    actor_kind: ActorKind | None = None,
    reinvited: bool = False,
) -> None:
    """Issue the invitation token of an invited user of the session's tenant, record it and
    mail the link (a tenant user inviting, or tenant provisioning inviting the owner)."""
    token = await issue_token(
        session,
        TokenPurpose.INVITATION,
        user_id=user.id,
        ttl_seconds=settings.auth.invitation_ttl_seconds,
        email=user.email,
        created_by=actor_id if actor_kind is None else None,
    )
    tenant = await current_tenant(session)
    await record(
        session,
        meta,
        action="invitation.sent",
        actor_id=actor_id,
        actor_kind=actor_kind,
        target_type="user",
        target_id=user.id,
        metadata={"role": role.value, "reinvited": reinvited},
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
                f"{link(settings, 'accept-invitation', token)}\n\n"
                f"The link works once and expires in "
                f"{duration(settings.auth.invitation_ttl_seconds)}.\n"
            ),
        ),
    )


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
        raise invalid_token()
    async with database.transaction(parsed.tenant_id) as session:
        tenant = await active_tenant(session)
        if tenant is None:
            raise invalid_token()
        used = await queries.consume_token(session, TokenPurpose.INVITATION, parsed.digest)
        if used is None or not await users.accept_invitation(
            session, used.user_id, password_hash=password_hash, display_name=name
        ):
            raise invalid_token()
        user_id = used.user_id
        await record(
            session,
            meta,
            action="invitation.accepted",
            actor_id=user_id,
            target_type="user",
            target_id=user_id,
        )
        return await after_first_factor(session, tokens, settings, meta, user_id, parsed.tenant_id)
