"""Who may call a field, declared on the field and visible in the SDL.

Every root field (and any other field that needs it) carries exactly one rule:

- `@requiresPermission(permission: "…")`: the signed-in user's effective permissions, resolved
  once per operation (app/rbac), must include it. A `…:own` permission is the least the field
  needs; the service then checks ownership unless the user holds the broader permission.
- `@signedIn`: any signed-in user, acting on their own account or reading their own tenant.
- `@public`: no sign-in needed (sign-in itself, token refresh, invitation acceptance, …).
- `@requiresPlatformPermission(permission: "…")`: a platform administrator in a live
  platform session holding this platform permission (app/platform/permissions.py).
- `@platformSignedIn`: any platform administrator in a live platform session.

The two principal kinds never mix: a platform administrator's token is FORBIDDEN on every
tenant rule, and a tenant user's token on every platform rule.

Beside its rule, a field may carry `@refusedWhileImpersonating`: under a break-glass
impersonation token (docs/platform.md) it is refused with IMPERSONATION_RESTRICTED before the
rule is even asked. Credentials, sessions, membership, roles and the tenant's security
settings carry it; tests/platform/test_impersonation.py keeps the list and fails for a new
mutation that has not been decided either way.

The directives are enforced by Strawberry's PermissionExtension before the resolver runs;
a refusal is a top-level error with code UNAUTHENTICATED or FORBIDDEN and nothing executed.
tests/api/test_permission_rules.py fails when a root field has no rule.
"""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.extensions import FieldExtension
from strawberry.permission import BasePermission, PermissionExtension
from strawberry.schema_directive import Location

from app.api.context import Info
from app.core.actor import Actor, PlatformActor
from app.core.errors import ImpersonationRestricted


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    name="requiresPermission",
    description="Callable only by signed-in users holding this permission "
    "(docs/permissions.md); `…:own` permissions cover the caller's own objects only.",
)
class RequiresPermission:
    permission: str


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    name="signedIn",
    description="Callable by any signed-in user, for their own account and tenant.",
)
class SignedIn:
    pass


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    name="public",
    description="Callable without signing in.",
)
class Public:
    pass


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    name="requiresPlatformPermission",
    description="Callable only by platform administrators holding this platform permission "
    "(docs/permissions.md); never by users of a tenant.",
)
class RequiresPlatformPermission:
    permission: str


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    name="platformSignedIn",
    description="Callable by any signed-in platform administrator; never by users of a tenant.",
)
class PlatformSignedIn:
    pass


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    name="refusedWhileImpersonating",
    description="Refused (IMPERSONATION_RESTRICTED) when a platform administrator acts as the "
    "user through break-glass impersonation: it would touch credentials, sessions, membership "
    "or the tenant's security settings.",
)
class RefusedWhileImpersonating:
    pass


class _HasPermission(BasePermission):
    """The caller's actor must hold `permission`: a tenant user's here, a platform
    administrator's in the subclass below."""

    directive: type[RequiresPermission] | type[RequiresPlatformPermission] = RequiresPermission

    def __init__(self, permission: str) -> None:
        self.permission = permission
        self._directive = self.directive(permission=permission)

    @property
    def schema_directive(self) -> object:
        return self._directive

    async def actor(self, info: Info) -> Actor | PlatformActor:
        return await info.context.actor()

    async def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        # Raises Unauthenticated without a principal, Forbidden for the other kind of
        # principal or without the permission; app/api/errors.py gives their stable codes.
        (await self.actor(info)).require(self.permission)
        return True


class _IsSignedIn(BasePermission):
    _schema_directive = SignedIn()

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        info.context.require_principal()
        return True


class _Anyone(BasePermission):
    _schema_directive = Public()

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return True


class _HasPlatformPermission(_HasPermission):
    directive = RequiresPlatformPermission

    async def actor(self, info: Info) -> Actor | PlatformActor:
        return await info.context.platform_actor()


class _IsPlatformSignedIn(BasePermission):
    _schema_directive = PlatformSignedIn()

    async def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        # The live session is checked, not only the token: a signed-out token stops here.
        await info.context.platform_actor()
        return True


class _NotImpersonating(BasePermission):
    """Not an access rule: a restriction added in front of one (`not_while_impersonating`)."""

    _schema_directive = RefusedWhileImpersonating()

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        principal = info.context.principal
        if principal is not None and principal.impersonated:
            raise ImpersonationRestricted(
                "Not allowed while impersonating a user: credentials, sessions, membership and "
                "security settings stay the user's own"
            )
        return True


# Each field gets its own extension instances: Strawberry binds an extension to one field.
def requires(permission: str) -> list[FieldExtension]:
    """`extensions=` of a field that needs `permission` (an app.rbac Permission)."""
    return [PermissionExtension([_HasPermission(str(permission))])]


def signed_in() -> list[FieldExtension]:
    return [PermissionExtension([_IsSignedIn()])]


def public() -> list[FieldExtension]:
    return [PermissionExtension([_Anyone()])]


def requires_platform(permission: str) -> list[FieldExtension]:
    """`extensions=` of a platform field that needs `permission` (a PlatformPermission)."""
    return [PermissionExtension([_HasPlatformPermission(str(permission))])]


def platform_signed_in() -> list[FieldExtension]:
    return [PermissionExtension([_IsPlatformSignedIn()])]


RULE_CLASSES = (_HasPermission, _IsSignedIn, _Anyone, _HasPlatformPermission, _IsPlatformSignedIn)


def not_while_impersonating(rule: list[FieldExtension]) -> list[FieldExtension]:
    """`rule` (one of the above), refused first under an impersonation token."""
    [extension] = rule
    assert isinstance(extension, PermissionExtension)
    return [PermissionExtension([_NotImpersonating(), *extension.permissions])]
