"""Feature flags per tenant: set by platform administrators, read by the tenant's users.

A flag is a key (`billing.v2`, `beta-reports`) that is enabled or disabled for one tenant;
an unset flag means "the product's default". Stored in the tenant table `tenant_features`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.core.db import Session
from app.core.errors import Invalid
from app.tenants import queries

_KEY = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
MAX_FLAGS = 100


@dataclass(frozen=True)
class FeatureFlag:
    key: str
    enabled: bool


def check_key(key: str) -> str:
    cleaned = key.strip().lower()
    if not _KEY.match(cleaned):
        raise Invalid(
            "`key` must be 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter",
            field="key",
        )
    return cleaned


async def flags(session: Session) -> list[FeatureFlag]:
    """The bound tenant's flags, by key."""
    return [FeatureFlag(k, e) for k, e in await queries.feature_flags(session)]


async def set_flag(session: Session, key: str, enabled: bool) -> bool | None:
    """Set a flag of the bound tenant; returns the value it had (None: unset)."""
    before = await queries.feature_flag(session, key)
    if before is None and await queries.count_feature_flags(session) >= MAX_FLAGS:
        raise Invalid(f"A tenant has at most {MAX_FLAGS} feature flags", field="key")
    if before is not enabled:
        await queries.upsert_feature_flag(session, key, enabled)
    return before


async def unset_flag(session: Session, key: str) -> bool | None:
    """Remove a flag of the bound tenant; returns the value it had (None: it was not set)."""
    return await queries.delete_feature_flag(session, key)
