"""Creating and finding users. Invitations and profile changes come with the accounts issue."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from app.audit.service import record
from app.auth.sessions import revoke_user_sessions
from app.core import validation
from app.core.actor import Actor, refuse_impersonation
from app.core.db import Session
from app.core.errors import Conflict, Invalid, NotFound
from app.core.passwords import hash_password
from app.core.request_meta import RequestMeta
from app.core.security import TokenService
from app.core.store import Store
from app.core.tables import fetch_by_ids, lock_row
from app.rbac import service as rbac
from app.rbac.permissions import Permission
from app.tenants.quotas import Quota, require_room
from app.users import queries
from app.users.models import USERS, Account, AccountLookup, User, UserStatus


async def create_user(
    session: Session,
    *,
    email: str,
    display_name: str,
    password: str | None,
    role: str = "member",
    granted_by: UUID | None = None,
) -> User:
    """A user of the session's tenant holding the system role `role`; a duplicate email
    (any case) is a Conflict."""
    email = validation.email(email)
    display_name = validation.text(display_name, field="displayName", max_length=200)
    password_hash = None if password is None else await hash_password(password)
    await require_room_for_user(session)
    try:
        async with session.atomic():
            user = await queries.insert(
                session,
                email=email,
                display_name=display_name,
                status=UserStatus.ACTIVE,
                password_hash=password_hash,
                email_verified=False,
            )
            await rbac.grant_system_role(session, user_id=user.id, key=role, granted_by=granted_by)
            return user
    except asyncpg.UniqueViolationError:
        raise Conflict("A user with this email already exists", field="email") from None


async def get_user(session: Session, user_id: UUID, *, field: str = "id") -> User:
    """The user, or NotFound (also when the id belongs to another tenant)."""
    found = await fetch_by_ids(session, USERS, [user_id])
    if user_id not in found:
        raise NotFound("User not found", field=field)
    return found[user_id]


async def acting_on(session: Session, actor: Actor, user_id: UUID, *, field: str = "id") -> User:
    """The user, locked until the transaction ends, once `actor` may act on them: on every
    role they hold (rbac `check_may_act_on_user`). The lock keeps their roles as checked: a
    concurrent role change waits (its foreign key needs the row), and so does another action
    on them. NotFound as `get_user`."""
    user = await lock_row(session, USERS, user_id)
    if user is None:
        raise NotFound("User not found", field=field)
    await rbac.check_may_act_on_user(session, actor, user_id, field=field)
    return user


async def change_role(
    session: Session,
    store: Store,
    meta: RequestMeta,
    *,
    actor: Actor,
    user_id: UUID,
    role_id: UUID,
    assign: bool,
) -> User:
    """Give the user a role or take it (rbac `assign_role`, `unassign_role`), if `actor`
    may act on them; the user as they are now."""
    refuse_impersonation(session, "Changing role assignments")
    # The role's own rules answer first (the change below checks them again: one read).
    await rbac.assignable(session, actor, role_id)
    await acting_on(session, actor, user_id, field="userId")
    change = rbac.assign_role if assign else rbac.unassign_role
    await change(session, store, meta, actor=actor, user_id=user_id, role_id=role_id)
    return await get_user(session, user_id, field="userId")


async def create_invited(session: Session, *, email: str, display_name: str) -> User:
    """A user invited by mail: no password until they follow the invitation (the caller
    checked the input, the quota and the role)."""
    return await queries.insert(
        session,
        email=email,
        display_name=display_name,
        status=UserStatus.INVITED,
        password_hash=None,
        email_verified=False,
    )


async def create_external(session: Session, *, email: str, display_name: str) -> User:
    """An active user without a password, whose address an identity provider verified."""
    return await queries.insert(
        session,
        email=email,
        display_name=display_name,
        status=UserStatus.ACTIVE,
        password_hash=None,
        email_verified=True,
    )


async def account(session: Session, user_id: UUID) -> Account | None:
    """What the account flows check about the user; None when there is no such user."""
    return await queries.account(session, user_id)


async def look_up(session: Session, email: str) -> AccountLookup:
    """The user with this email in the session's tenant (any case), with the email as the
    lookup compared it (what sign-in throttling keys an account on). With no tenant bound,
    row-level security shows no user: the same statement then finds nobody, at the same
    cost."""
    return await queries.by_email(session, email.strip())


async def email_taken(session: Session, email: str, *, except_user: UUID) -> bool:
    """Whether another user of the tenant has this email (any case)."""
    return await queries.email_taken(session, email, except_user=except_user)


async def set_password(session: Session, user_id: UUID, password_hash: str) -> None:
    """Store a new password's hash; `password_changed_at` records when."""
    await queries.set_password(session, user_id, password_hash, changed=True)


async def rehash_password(session: Session, user_id: UUID, password_hash: str) -> None:
    """Store a hash recomputed with current parameters (same password, nothing else changes,
    `password_changed_at` included)."""
    await queries.set_password(session, user_id, password_hash, changed=False)


async def update_invited(session: Session, user_id: UUID, *, display_name: str | None) -> User:
    """Change a pending invitation's display name (None keeps it)."""
    return await queries.update_invited(session, user_id, display_name=display_name)


async def accept_invitation(
    session: Session, user_id: UUID, *, password_hash: str, display_name: str | None
) -> bool:
    """An invited user becomes active with their first password and a verified address;
    False when the user is not invited."""
    if not await queries.activate_invited(session, user_id, display_name=display_name):
        return False
    await set_password(session, user_id, password_hash)
    return True


async def set_verified_email(session: Session, user_id: UUID, email: str) -> None:
    """The user's address, now verified (a unique violation if another user has it)."""
    await queries.set_verified_email(session, user_id, email)


async def require_room_for_user(session: Session) -> None:
    """QuotaExceeded unless the tenant's plan allows one more user (active or invited)."""
    await require_room(session, Quota.USERS, queries.counted)


async def counted(session: Session) -> int:
    """Users counted against the tenant's quota: active and invited."""
    return await queries.counted(session)


async def invited_count(session: Session) -> int:
    """Users of the tenant still invited."""
    return await queries.invited_count(session)


async def active_among(session: Session, user_ids: list[UUID]) -> list[UUID]:
    """Those of `user_ids` who are active users of the tenant."""
    return await queries.active_among(session, user_ids)


async def set_disabled(
    session: Session,
    tokens: TokenService,
    store: Store,
    meta: RequestMeta,
    *,
    actor: Actor,
    user_id: UUID,
    disabled: bool,
) -> User:
    """Disable (every session revoked at once) or re-enable a user (`user:manage`). The
    tenant's last active owner cannot be disabled."""
    refuse_impersonation(session, "Disabling or enabling users")
    actor.require(Permission.USER_MANAGE)
    if user_id == actor.user_id:
        raise Invalid("You cannot disable or enable yourself", field="id")
    user = await acting_on(session, actor, user_id)
    if user.status is UserStatus.INVITED:
        raise Invalid("The user has not accepted the invitation yet", field="id")
    if user.status is (UserStatus.DISABLED if disabled else UserStatus.ACTIVE):
        return user  # nothing changes, so nothing is recorded or revoked
    if disabled:
        await rbac.ensure_owner_remains(session, leaving=user_id, field="id")
    else:
        await require_room_for_user(session)
    updated = await queries.set_status(
        session, user_id, UserStatus.DISABLED if disabled else UserStatus.ACTIVE
    )
    assert updated is not None
    await record(
        session,
        meta,
        action="user.disabled" if disabled else "user.enabled",
        actor_id=actor.user_id,
        target_type="user",
        target_id=user_id,
    )
    # Only active users hold permissions: cached sets must follow the status.
    rbac.invalidate(session, store)
    if disabled:
        await revoke_user_sessions(
            session,
            tokens,
            store,
            meta,
            user_id=user_id,
            actor_id=actor.user_id,
            reason="user_disabled",
        )
    return updated
