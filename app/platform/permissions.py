"""The platform permission catalog: what a platform administrator may do across tenants.

Separate from the tenant catalog (app/rbac/permissions.py): these are never granted to a
tenant user, and tenant permissions never to a platform administrator. Each administrator
holds a subset, set with `tenantry admin create --permission …` or `tenantry admin
set-permissions`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from app.core.errors import Invalid


class PlatformPermission(enum.StrEnum):
    TENANT_CREATE = "tenant:create"
    TENANT_SUSPEND = "tenant:suspend"
    TENANT_DELETE = "tenant:delete"
    TENANT_READ = "tenant:read"
    PLATFORM_AUDIT = "platform:audit"
    TENANT_IMPERSONATE = "tenant:impersonate"

    @property
    def description(self) -> str:
        return DESCRIPTIONS[self]


DESCRIPTIONS: dict[PlatformPermission, str] = {
    PlatformPermission.TENANT_CREATE: "Create tenants; change their name, plan and feature flags.",
    PlatformPermission.TENANT_SUSPEND: "Suspend and reactivate tenants.",
    PlatformPermission.TENANT_DELETE: "Delete, restore and purge tenants.",
    PlatformPermission.TENANT_READ: "List tenants and read their status, plan and usage.",
    PlatformPermission.PLATFORM_AUDIT: "Read the platform audit log.",
    PlatformPermission.TENANT_IMPERSONATE: "Act as a tenant's user for up to 15 minutes "
    "(break-glass, with a reason; every operation audited; never the owner, never credentials).",
}

BY_NAME: dict[str, PlatformPermission] = {p.value: p for p in PlatformPermission}


def parse(values: Iterable[str]) -> frozenset[PlatformPermission]:
    """Permission names from an operator; an unknown name is Invalid (and named)."""
    values = list(values)
    unknown = sorted({v for v in values if v not in BY_NAME})
    if unknown:
        raise Invalid(
            f"Unknown platform permission {unknown[0]!r}; known: {', '.join(BY_NAME)}",
            field="permissions",
        )
    return frozenset(BY_NAME[v] for v in values)


def known(names: Iterable[str]) -> frozenset[PlatformPermission]:
    """The catalog's permissions among stored `names`; a dropped name grants nothing."""
    return frozenset(BY_NAME[n] for n in names if n in BY_NAME)


def markdown() -> str:
    """The platform section of docs/permissions.md."""
    lines = [
        "## Platform permissions",
        "",
        "Held by platform administrators (docs/platform.md), never by tenant users. Fields that",
        "need one carry `@requiresPlatformPermission` in `schema.graphql`.",
        "",
        "| Permission | Meaning |",
        "|---|---|",
    ]
    lines += [f"| `{p.value}` | {p.description} |" for p in PlatformPermission]
    return "\n".join(lines) + "\n"
