"""Roles of one tenant: the four system roles and the tenant's custom roles."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from app.core.tables import Table


@dataclass(frozen=True)
class Role:
    id: UUID
    # owner, admin, member or viewer for system roles; None for custom roles.
    key: str | None
    name: str
    description: str
    created_at: datetime
    updated_at: datetime

    @property
    def is_system(self) -> bool:
        return self.key is not None


ROLES = Table("roles", Role)


@dataclass(frozen=True)
class Grant:
    """One role a user holds, with the custom permissions stored for it (system roles: none)."""

    role_key: str | None
    stored_permissions: frozenset[str]
