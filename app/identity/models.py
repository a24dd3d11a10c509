"""Trusted external identity providers (OIDC issuers) and users' identities at them."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from app.core.tables import Table


class ProviderRole(enum.Enum):
    """The role a user created by a provider's sign-in gets (never owner)."""

    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"


@dataclass(frozen=True)
class IdentityProvider:
    id: UUID
    name: str
    issuer: str
    audience: str
    jwks_url: str
    subject_claim: str
    email_claim: str
    name_claim: str
    create_users: bool
    default_role: ProviderRole
    enabled: bool
    created_at: datetime
    updated_at: datetime


IDENTITY_PROVIDERS = Table("identity_providers", IdentityProvider)


@dataclass(frozen=True)
class ExternalIdentity:
    """The verified facts of an external token that sign-in uses."""

    subject: str
    email: str | None
    email_verified: bool
    name: str | None
