"""SQL for MFA factors. The tenant comes from the bound transaction (RLS), never from input."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from app.core.db import Session
from app.mfa.models import TotpFactor

_TOTP_COLUMNS = (
    "id, user_id, secret_ciphertext, key_version, confirmed_at, last_used_step, created_at"
)


def _factor(row: asyncpg.Record) -> TotpFactor:
    return TotpFactor(**dict(row))


async def has_confirmed_totp(session: Session, user_id: UUID) -> bool:
    found = await session.fetchval(
        "SELECT EXISTS (SELECT 1 FROM mfa_totp WHERE user_id = $1 AND confirmed_at IS NOT NULL)",
        user_id,
    )
    return bool(found)
