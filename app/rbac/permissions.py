"""The permission catalog and the fixed permission sets of the system roles.

Permissions are strings `resource:action[:scope]`; `…:own` variants allow the action only
on objects the user owns (tasks assigned to them), which the service layer checks. A broader
permission implies its narrower variant (`task:write` gives `task:write:own`), so a field's
`@requiresPermission` names the least it needs and the service decides the rest.
docs/permissions.md is generated from this module (a test keeps them equal).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from app.core.errors import Invalid


class Permission(enum.StrEnum):
    PROJECT_READ = "project:read"
    PROJECT_WRITE = "project:write"
    TASK_WRITE = "task:write"
    TASK_WRITE_OWN = "task:write:own"
    COMMENT_WRITE = "comment:write"
    COMMENT_MODERATE = "comment:moderate"
    USER_READ = "user:read"
    USER_INVITE = "user:invite"
    USER_MANAGE = "user:manage"
    ROLE_MANAGE = "role:manage"
    AUDIT_READ = "audit:read"
    TENANT_SETTINGS = "tenant:settings"

    @property
    def description(self) -> str:
        return DESCRIPTIONS[self]


BY_NAME: dict[str, Permission] = {p.value: p for p in Permission}

DESCRIPTIONS: dict[Permission, str] = {
    Permission.PROJECT_READ: "Read projects, their tasks and comments.",
    Permission.PROJECT_WRITE: "Create, rename, archive and delete projects.",
    Permission.TASK_WRITE: "Create, change, assign, move and delete any task.",
    Permission.TASK_WRITE_OWN: (
        "Create tasks; change, assign, move and delete the tasks assigned to oneself."
    ),
    Permission.COMMENT_WRITE: "Comment on tasks; edit and delete one's own comments.",
    Permission.COMMENT_MODERATE: "Edit and delete anyone's comments.",
    Permission.USER_READ: "List the tenant's users.",
    Permission.USER_INVITE: "Invite people to the tenant.",
    Permission.USER_MANAGE: "Disable and enable users.",
    Permission.ROLE_MANAGE: "Create, change and assign roles.",
    Permission.AUDIT_READ: "Read the tenant's audit log.",
    Permission.TENANT_SETTINGS: "Change the tenant's security settings and identity providers.",
}

# A broader permission grants its narrower variant too.
IMPLIES: dict[Permission, frozenset[Permission]] = {
    Permission.TASK_WRITE: frozenset({Permission.TASK_WRITE_OWN}),
    Permission.COMMENT_MODERATE: frozenset({Permission.COMMENT_WRITE}),
}


def effective(granted: frozenset[Permission] | set[Permission]) -> frozenset[Permission]:
    """`granted` with everything it implies."""
    result = set(granted)
    for permission in granted:
        result |= IMPLIES.get(permission, frozenset())
    return frozenset(result)


def parse(values: list[str], *, field: str = "permissions") -> frozenset[Permission]:
    """Permission names from input; an unknown name is Invalid (and named)."""
    unknown = sorted({v for v in values if v not in BY_NAME})
    if unknown:
        raise Invalid(f"Unknown permission {unknown[0]!r}", field=field)
    return frozenset(BY_NAME[v] for v in values)


def known(names: Iterable[str]) -> frozenset[Permission]:
    """The catalog's permissions among stored `names`; a name a later release dropped grants
    nothing."""
    return frozenset(BY_NAME[n] for n in names if n in BY_NAME)


_ALL = frozenset(Permission)

# The system roles every tenant has. Their sets are fixed in code, so a release can extend
# them (a new permission reaches every owner) without a data migration.
SYSTEM_ROLES: dict[str, frozenset[Permission]] = {
    # Owners and admins differ in one rule of the service: only owners assign or remove the
    # owner role (and every tenant keeps at least one owner).
    "owner": _ALL,
    "admin": _ALL,
    "member": frozenset(
        {
            Permission.PROJECT_READ,
            Permission.PROJECT_WRITE,
            Permission.TASK_WRITE_OWN,
            Permission.COMMENT_WRITE,
            Permission.USER_READ,
        }
    ),
    "viewer": frozenset({Permission.PROJECT_READ, Permission.USER_READ}),
}


# Names and descriptions the system roles are created with in every tenant.
SYSTEM_ROLE_INFO: dict[str, tuple[str, str]] = {
    "owner": ("Owner", "Everything, including assigning the owner role. Every tenant keeps one."),
    "admin": ("Admin", "Everything except assigning or removing the owner role."),
    "member": ("Member", "Works on projects: creates them, edits own tasks, comments."),
    "viewer": ("Viewer", "Reads projects, tasks, comments and the user list."),
}


def markdown() -> str:
    """docs/permissions.md: the catalog and the system roles' sets."""
    roles = list(SYSTEM_ROLES)
    lines = [
        "# Permissions",
        "",
        "Generated from `app/rbac/permissions.py` and `app/platform/permissions.py` (a test",
        "fails when this file differs).",
        "A front end reads the signed-in user's set from `viewer { roles permissions }`;",
        "it is resolved on every request, so a role change applies to the next one.",
        "Each root field of `schema.graphql` names what it needs with `@requiresPermission`.",
        "",
        "`…:own` permissions cover the user's own objects only (tasks assigned to them, their",
        "own comments). A broader permission implies the narrower one: "
        + ", ".join(
            f"`{broad.value}` gives `{n.value}`"
            for broad, narrower in IMPLIES.items()
            for n in sorted(narrower)
        )
        + ".",
        "",
        "## System roles",
        "",
        "Every tenant has these four; their sets are fixed in code (a release may extend them)."
        " Owners and admins hold the same permissions, but only owners assign or remove the"
        " owner role or act on an owner, and every tenant keeps at least one active owner."
        " Acting on a user (disabling, enabling, changing their roles or pending invitation)"
        " needs every permission of each role they hold. Custom roles hold any subset of the"
        " catalog (docs/authorization.md).",
        "",
        "| Permission | Meaning | " + " | ".join(roles) + " |",
        "|---|---|" + "---|" * len(roles),
    ]
    for permission in Permission:
        marks = " | ".join("✓" if permission in SYSTEM_ROLES[r] else "" for r in roles)
        lines.append(f"| `{permission.value}` | {permission.description} | {marks} |")
    return "\n".join(lines) + "\n"
