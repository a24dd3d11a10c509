"""Roles and effective permissions.

Effective permissions are resolved per operation from the user's roles, never from the
token, so a role change applies to the next request. They are cached in the store per
tenant and user, tagged with the tenant's authorization generation; every role or
assignment change bumps the generation once its transaction has committed, which
invalidates every entry of the tenant at once. Entries also expire after
`CACHE_TTL_SECONDS`, bounding staleness should a bump ever be lost.

Nothing here outlives its use, so the store holds keys of the tenants active lately, not of
every tenant ever seen: a generation expires `GENERATION_TTL_SECONDS` after the last change.
A generation is a fresh random token, never a count: a count restarting from zero after its
key expired could meet an entry cached with the same number before, and serve it after a
role change. An expired generation reads as none, which no entry cached under a token
matches; entries cached under none are older than the token that followed them, and gone
(they live `CACHE_TTL_SECONDS`, less than a generation) before the token itself expires and
none comes back.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from app.audit.service import record
from app.core import telemetry, validation
from app.core.actor import Actor, refuse_impersonation
from app.core.db import Session
from app.core.errors import Conflict, Forbidden, Invalid, NotFound
from app.core.request_meta import RequestMeta
from app.core.store import Store, StoreKey, tenant_key
from app.core.tables import delete_row, fetch_by_ids, insert_row, lock_row, update_row
from app.core.validation import MISSING, Patch
from app.rbac import queries
from app.rbac.models import ROLES, Grant, Role
from app.rbac.permissions import (
    SYSTEM_ROLE_INFO,
    SYSTEM_ROLES,
    Permission,
    effective,
    known,
    parse,
)

CACHE_TTL_SECONDS = 60
# Longer than an entry lives: see the module's docstring.
GENERATION_TTL_SECONDS = 2 * CACHE_TTL_SECONDS
MAX_CUSTOM_ROLES = 50
OWNER = "owner"


# --- provisioning and resolution ---------------------------------------------------------


async def provision(session: Session) -> None:
    """Create the system roles of the session's (new) tenant."""
    await queries.insert_system_roles(
        session, ((key, name, text) for key, (name, text) in SYSTEM_ROLE_INFO.items())
    )


def _resolve(grants: list[Grant]) -> tuple[frozenset[Permission], frozenset[str]]:
    granted: set[Permission] = set()
    keys: set[str] = set()
    for grant in grants:
        if grant.role_key is not None:
            keys.add(grant.role_key)
            granted |= SYSTEM_ROLES.get(grant.role_key, frozenset())
        # A stored name a later release no longer knows grants nothing.
        granted |= known(grant.stored_permissions)
    return effective(granted), frozenset(keys)


def _generation_key(session: Session) -> StoreKey:
    assert session.tenant_id is not None
    return _generation_key_for(session.tenant_id)


def _generation_key_for(tenant_id: UUID) -> StoreKey:
    return tenant_key(tenant_id, "authz", "generation")


async def actor_for(session: Session, store: Store, user_id: UUID) -> Actor:
    """The user's effective permissions in the session's tenant (none unless active)."""
    assert session.tenant_id is not None
    entry_key = tenant_key(session.tenant_id, "authz", "user", str(user_id))
    generation, entry = await store.get_many([_generation_key(session), entry_key])
    hit = isinstance(entry, dict) and "g" in entry and entry["g"] == generation
    telemetry.cache("permissions", hit=hit)
    if isinstance(entry, dict) and hit:
        return Actor(user_id, frozenset(entry["p"]), frozenset(entry["r"]))
    # The generation was read before the rows: a change committed in between bumps it after
    # its commit, so this entry is stale at once rather than served until it expires.
    actor = await resolve(session, user_id)
    # Not from a read replica: it may not have replayed a role change whose generation this
    # read already saw, and the stale entry would be served until the next change.
    if not session.on_replica:
        await store.put(
            entry_key,
            {"g": generation, "p": sorted(actor.permissions), "r": sorted(actor.system_roles)},
            ttl_seconds=CACHE_TTL_SECONDS,
        )
    return actor


async def resolve(session: Session, user_id: UUID) -> Actor:
    """The user's effective permissions read from the database, bypassing the cache."""
    return (await resolve_many(session, [user_id]))[user_id]


async def resolve_many(session: Session, user_ids: Sequence[UUID]) -> dict[UUID, Actor]:
    """`resolve` for several users in one query (e.g. a user list read by a role manager)."""
    found = await queries.grants(session, user_ids)
    actors = {}
    for user_id in user_ids:
        permissions, keys = _resolve(found.get(user_id, []))
        actors[user_id] = Actor(user_id, frozenset(permissions), keys)
    return actors


def invalidate(session: Session, store: Store) -> None:
    """Every cached permission set of the tenant is stale once this transaction commits."""
    key = _generation_key(session)

    async def bump() -> None:
        await store.put(key, secrets.token_hex(8), ttl_seconds=GENERATION_TTL_SECONDS)

    session.after_commit(bump)


# --- reading roles -------------------------------------------------------------------------


async def list_roles(session: Session) -> list[Role]:
    """The tenant's roles: the system roles first, then custom roles by name."""
    return await queries.all_roles(session)


async def roles_of(session: Session, user_ids: Sequence[UUID]) -> dict[UUID, list[Role]]:
    return await queries.roles_of_users(session, user_ids)


async def permissions_of_roles(
    session: Session, roles: list[Role]
) -> dict[UUID, frozenset[Permission]]:
    """Each role's own permissions (without implied ones)."""
    stored = await stored_permissions(session, [r.id for r in roles if not r.is_system])
    return {
        role.id: SYSTEM_ROLES[role.key]
        if role.key is not None
        else stored.get(role.id, frozenset())
        for role in roles
    }


async def stored_permissions(
    session: Session, role_ids: Sequence[UUID]
) -> dict[UUID, frozenset[Permission]]:
    """The permissions stored for custom roles (system roles have none stored)."""
    if not role_ids:
        return {}
    rows = await queries.stored_permissions(session, role_ids)
    return {role_id: known(names) for role_id, names in rows.items()}


async def holder_counts(session: Session, role_ids: Sequence[UUID]) -> dict[UUID, int]:
    return await queries.holder_counts(session, role_ids)


async def get_role(session: Session, role_id: UUID, *, field: str = "id") -> Role:
    """The role, or NotFound (also when it belongs to another tenant)."""
    found = await fetch_by_ids(session, ROLES, [role_id])
    if role_id not in found:
        raise NotFound("Role not found", field=field)
    return found[role_id]


async def _locked(session: Session, role_id: UUID) -> Role:
    role = await lock_row(session, ROLES, role_id)
    if role is None:
        raise NotFound("Role not found", field="id")
    return role


# --- changing roles ------------------------------------------------------------------------


def _name(value: str) -> str:
    return validation.text(value, field="name", max_length=100)


def _description(value: str) -> str:
    return validation.text(value, field="description", max_length=1000, min_length=0)


def _lacking(actor: Actor, permissions: frozenset[Permission]) -> str | None:
    """The first permission of `permissions` (with what they imply) `actor` does not hold."""
    missing = sorted(p.value for p in effective(permissions) if not actor.can(p))
    return missing[0] if missing else None


def _require_manager_of(actor: Actor, permissions: frozenset[Permission]) -> None:
    """Managing a role needs role:manage and every permission the role grants: nobody
    hands out (or takes away) more than they hold themselves."""
    actor.require(Permission.ROLE_MANAGE)
    if lacking := _lacking(actor, permissions):
        raise Forbidden(f"You do not hold {lacking}, so you cannot manage a role that grants it")


def _custom(role: Role) -> None:
    if role.is_system:
        raise Invalid("System roles cannot be changed or deleted", field="id")


@dataclass(frozen=True)
class RoleChanges:
    name: Patch[str] = MISSING
    description: Patch[str] = MISSING
    permissions: Patch[list[str]] = MISSING


async def _save(session: Session, write: Callable[[], Awaitable[Role]]) -> Role:
    try:
        async with session.atomic():
            return await write()
    except asyncpg.UniqueViolationError:
        raise Conflict("A role with this name already exists", field="name") from None


async def create_role(
    session: Session,
    store: Store,
    meta: RequestMeta,
    *,
    actor: Actor,
    name: str,
    description: str,
    permissions: list[str],
) -> Role:
    """A custom role granting `permissions` (each one the actor must hold)."""
    refuse_impersonation(session, "Changing roles")
    granted = parse(permissions)
    _require_manager_of(actor, granted)
    name, description = _name(name), _description(description)
    if await queries.count_custom_roles(session) >= MAX_CUSTOM_ROLES:
        raise Invalid(f"A tenant can have at most {MAX_CUSTOM_ROLES} custom roles", field="name")

    async def write() -> Role:
        role = await insert_row(session, ROLES, {"name": name, "description": description})
        await queries.set_permissions(session, role.id, (p.value for p in granted))
        return role

    role = await _save(session, write)
    await record(
        session,
        meta,
        action="role.created",
        actor_id=actor.user_id,
        target_type="role",
        target_id=role.id,
        metadata={"name": role.name, "permissions": sorted(p.value for p in granted)},
    )
    return role


async def update_role(
    session: Session,
    store: Store,
    meta: RequestMeta,
    *,
    actor: Actor,
    role_id: UUID,
    changes: RoleChanges,
) -> Role:
    """Rename, describe or re-permission a custom role; holders are affected at once."""
    refuse_impersonation(session, "Changing roles")
    role = await _locked(session, role_id)
    _custom(role)
    before = (await permissions_of_roles(session, [role]))[role.id]
    after = before if changes.permissions is MISSING else parse(changes.permissions)
    _require_manager_of(actor, before | after)
    values = validation.given(
        {
            "name": changes.name if changes.name is MISSING else _name(changes.name),
            "description": changes.description
            if changes.description is MISSING
            else _description(changes.description),
        }
    )

    async def write() -> Role:
        updated: Role | None = role
        if values:
            updated = await update_row(session, ROLES, role_id, values)
        assert updated is not None  # locked above
        if after != before:
            await queries.set_permissions(session, role_id, (p.value for p in after))
        return updated

    updated = await _save(session, write)
    if after != before:
        invalidate(session, store)
    await record(
        session,
        meta,
        action="role.updated",
        actor_id=actor.user_id,
        target_type="role",
        target_id=role_id,
        metadata={
            "name": updated.name,
            "renamed_from": role.name if updated.name != role.name else None,
            "added": sorted(p.value for p in after - before),
            "removed": sorted(p.value for p in before - after),
        },
    )
    return updated


async def delete_role(
    session: Session, store: Store, meta: RequestMeta, *, actor: Actor, role_id: UUID
) -> None:
    """Delete a custom role nobody holds."""
    refuse_impersonation(session, "Changing roles")
    role = await _locked(session, role_id)
    _custom(role)
    _require_manager_of(actor, (await permissions_of_roles(session, [role]))[role.id])
    holders = (await queries.holder_counts(session, [role_id])).get(role_id, 0)
    if holders:
        raise Conflict(f"The role is assigned to {holders} user(s); unassign it first", field="id")
    await delete_row(session, ROLES, role_id)
    await record(
        session,
        meta,
        action="role.deleted",
        actor_id=actor.user_id,
        target_type="role",
        target_id=role_id,
        metadata={"name": role.name},
    )


async def assignable(session: Session, actor: Actor, role_id: UUID) -> Role:
    """The role, if `actor` may assign or remove it: role:manage and every permission it
    grants; the owner role only by owners."""
    role = await get_role(session, role_id, field="roleId")
    _require_manager_of(actor, (await permissions_of_roles(session, [role]))[role.id])
    if role.key == OWNER and not actor.is_owner:
        raise Forbidden("Only owners can assign or remove the owner role", field="roleId")
    return role


async def assign_role(
    session: Session,
    store: Store,
    meta: RequestMeta,
    *,
    actor: Actor,
    user_id: UUID,
    role_id: UUID,
) -> None:
    """Give the user the role (nothing happens, and nothing is logged, if they hold it). The
    caller has checked the actor may act on the user (users.service `change_role`)."""
    refuse_impersonation(session, "Changing role assignments")
    role = await assignable(session, actor, role_id)
    try:
        async with session.atomic():
            added = await queries.assign(session, user_id, role_id, actor.user_id)
    except asyncpg.ForeignKeyViolationError:
        raise NotFound("User not found", field="userId") from None
    if not added:
        return
    invalidate(session, store)
    await record(
        session,
        meta,
        action="role.assigned",
        actor_id=actor.user_id,
        target_type="user",
        target_id=user_id,
        metadata={"role_id": str(role.id), "role": role.key or role.name},
    )


async def unassign_role(
    session: Session,
    store: Store,
    meta: RequestMeta,
    *,
    actor: Actor,
    user_id: UUID,
    role_id: UUID,
) -> None:
    """Take the role from the user; the tenant's last active owner keeps theirs. The caller
    has checked the actor may act on the user (users.service `change_role`)."""
    refuse_impersonation(session, "Changing role assignments")
    role = await assignable(session, actor, role_id)
    if role.key == OWNER:
        await ensure_owner_remains(session, leaving=user_id)
    if not await queries.unassign(session, user_id, role_id):
        return
    invalidate(session, store)
    await record(
        session,
        meta,
        action="role.unassigned",
        actor_id=actor.user_id,
        target_type="user",
        target_id=user_id,
        metadata={"role_id": str(role.id), "role": role.key or role.name},
    )


async def ensure_owner_remains(session: Session, *, leaving: UUID, field: str = "userId") -> None:
    """Conflict if `leaving` is the tenant's last active owner.

    Locks the owner role's row first, so two owners removing each other concurrently are
    serialised and the second sees the first's change.
    """
    owner = await queries.role_by_key(session, OWNER, lock=True)
    if owner is None:
        return
    others = await queries.active_holders(session, owner.id, excluding=leaving)
    held = (await queries.roles_of_users(session, [leaving])).get(leaving, [])
    if others == 0 and any(r.key == OWNER for r in held):
        raise Conflict("A tenant must keep at least one active owner", field=field)


def check_may_grant(actor: Actor, key: str, *, field: str = "role") -> None:
    """Forbidden unless `actor` may hand out the system role `key` (e.g. with an invitation):
    they hold all its permissions, and for the owner role they are an owner."""
    if lacking := _lacking(actor, SYSTEM_ROLES[key]):
        raise Forbidden(f"You do not hold {lacking}, so you cannot grant this role", field=field)
    if key == OWNER and not actor.is_owner:
        raise Forbidden("Only owners can grant the owner role", field=field)


async def check_may_act_on_user(
    session: Session, actor: Actor, user_id: UUID, *, field: str = "id"
) -> None:
    """Forbidden unless `actor` may act on every role the user holds, as on the roles
    themselves: they hold every permission each grants, and only owners act on an owner.
    So an admin, who may not touch the owner role, neither disables an owner nor changes
    their roles or invitation. The caller has locked the user's row (users.service
    `acting_on`), so the roles read here are the ones the change applies to."""
    roles = (await queries.roles_of_users(session, [user_id])).get(user_id, [])
    granted = await permissions_of_roles(session, roles)
    for role in roles:
        if role.key == OWNER and not actor.is_owner:
            raise Forbidden("Only owners can act on an owner", field=field)
        if lacking := _lacking(actor, granted[role.id]):
            raise Forbidden(
                f"The user's role {role.name} grants {lacking}, which you do not hold",
                field=field,
            )


async def grant_system_role(
    session: Session,
    *,
    user_id: UUID,
    key: str,
    granted_by: UUID | None,
    replace: bool = False,
) -> None:
    """Give a new or invited user (never yet active, so nothing is cached for them) the
    system role `key`; `replace` first takes every other role (a changed invitation). The
    caller has checked the right to."""
    role = await queries.role_by_key(session, key)
    if role is None:
        raise NotFound("Role not found", field="role")
    if replace:
        await queries.unassign_all(session, user_id)
    await queries.assign(session, user_id, role.id, granted_by)
