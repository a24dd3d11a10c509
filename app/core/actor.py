"""Who performs an operation and what they may do: resolved once per operation.

Permissions are plain strings here (`resource:action[:scope]`); their catalog and meaning
belong to app/rbac. Services receive an `Actor` and ask it, so a check costs no query and
the field-level directive and the service's own rules agree on one resolved set.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from app.core.db import Session
from app.core.errors import Forbidden, ImpersonationRestricted


class _Holder:
    permissions: frozenset[str]

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    def require(self, permission: str) -> None:
        """Forbidden unless the actor holds `permission`."""
        if permission not in self.permissions:
            raise Forbidden(f"This needs the {permission} permission")


@dataclass(frozen=True)
class Actor(_Holder):
    """A signed-in, active user of the bound tenant and their effective permissions."""

    user_id: UUID
    permissions: frozenset[str]
    # System role keys held (owner, admin, member, viewer): only "owner" matters to rules.
    system_roles: frozenset[str] = frozenset()

    @property
    def is_owner(self) -> bool:
        return "owner" in self.system_roles


@dataclass(frozen=True)
class PlatformActor(_Holder):
    """A signed-in, active platform administrator in a live platform session, with the
    platform permissions (app/platform/permissions.py) they hold now."""

    admin_id: UUID
    session_id: UUID
    permissions: frozenset[str]


@dataclass(frozen=True)
class Operator:
    """An operator's command (`tenantry …`) run where the server's database credentials are.

    Those credentials are its authority, not a platform session, so it holds no permission
    to check. Its audit entries are the system's (no actor id); their user agent names the
    command and the OS account (app/cli/common.py)."""


OPERATOR = Operator()


def refuse_impersonation(session: Session, what: str) -> None:
    """ImpersonationRestricted when `session` runs for a platform administrator acting as a
    user. Called by the services that change credentials, sessions or membership, so they
    refuse whichever field (or future field) reaches them: the field directive
    `@refusedWhileImpersonating` is the first line, this the second."""
    if session.impersonator_id is not None:
        raise ImpersonationRestricted(f"{what} is not allowed while impersonating a user")
