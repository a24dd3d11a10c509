"""Idempotency keys: who a key belongs to, and what a retry finds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

# How long a key's result is kept: a retry later than this runs as a new request.
KEY_TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class TenantUser:
    """Keys of a user of a tenant: stored in the tenant, per user."""

    tenant_id: UUID
    user_id: UUID


@dataclass(frozen=True)
class PlatformAdmin:
    """Keys of a platform administrator: stored in the platform's own table."""

    admin_id: UUID


KeyOwner = TenantUser | PlatformAdmin


@dataclass(frozen=True)
class StoredKey:
    """A key already used: the digest of the request it came with, and that request's
    result (None while the request that holds it is still running)."""

    request_digest: bytes
    response: dict[str, Any] | None
