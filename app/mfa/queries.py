"""SQL for MFA factors. The tenant comes from the bound transaction (RLS), never from input.

Every "use" is one conditional UPDATE: the row lock it takes serialises concurrent attempts,
and the second re-checks its condition after the first commits, so a TOTP step or a
recovery code is accepted at most once however many requests race for it.
"""

from __future__ import annotations

from uuid import UUID

from app.core.db import Session
from app.mfa.models import TotpFactor

_TOTP_COLUMNS = (
    "id, user_id, secret_ciphertext, key_version, confirmed_at, last_used_step, created_at"
)


async def has_confirmed_totp(session: Session, user_id: UUID) -> bool:
    found = await session.fetchval(
        "SELECT EXISTS (SELECT 1 FROM mfa_totp WHERE user_id = $1 AND confirmed_at IS NOT NULL)",
        user_id,
    )
    return bool(found)


async def totp_factor(session: Session, user_id: UUID) -> TotpFactor | None:
    row = await session.fetchrow(
        f"SELECT {_TOTP_COLUMNS} FROM mfa_totp WHERE user_id = $1", user_id
    )
    return None if row is None else TotpFactor(**dict(row))


async def upsert_pending_totp(
    session: Session, user_id: UUID, ciphertext: bytes, key_version: int
) -> bool:
    """Store a new, unconfirmed secret; False when the user's factor is already confirmed."""
    row = await session.fetchval(
        "INSERT INTO mfa_totp AS m (tenant_id, user_id, secret_ciphertext, key_version)"
        " VALUES (app.current_tenant_id(), $1, $2, $3)"
        " ON CONFLICT (tenant_id, user_id) DO UPDATE SET"
        " secret_ciphertext = EXCLUDED.secret_ciphertext, key_version = EXCLUDED.key_version,"
        " last_used_step = NULL, created_at = statement_timestamp()"
        " WHERE m.confirmed_at IS NULL RETURNING m.id",
        user_id,
        ciphertext,
        key_version,
    )
    return row is not None


async def confirm_totp(session: Session, user_id: UUID, factor_id: UUID, step: int) -> bool:
    """Confirm the pending factor `factor_id` with the code of `step`; False if raced."""
    row = await session.fetchval(
        "UPDATE mfa_totp SET confirmed_at = statement_timestamp(), last_used_step = $3"
        " WHERE user_id = $1 AND id = $2 AND confirmed_at IS NULL"
        " AND (last_used_step IS NULL OR last_used_step < $3) RETURNING id",
        user_id,
        factor_id,
        step,
    )
    return row is not None


async def use_totp_step(session: Session, user_id: UUID, factor_id: UUID, step: int) -> bool:
    """Record `step` as used; False when it (or a later one) already was: a replay."""
    row = await session.fetchval(
        "UPDATE mfa_totp SET last_used_step = $3"
        " WHERE user_id = $1 AND id = $2 AND confirmed_at IS NOT NULL"
        " AND (last_used_step IS NULL OR last_used_step < $3) RETURNING id",
        user_id,
        factor_id,
        step,
    )
    return row is not None


async def delete_totp(session: Session, user_id: UUID) -> bool:
    """Remove the user's factor, confirmed or not; False when there was none confirmed."""
    confirmed = await session.fetchval(
        "DELETE FROM mfa_totp WHERE user_id = $1 RETURNING confirmed_at IS NOT NULL", user_id
    )
    return bool(confirmed)


async def replace_recovery_codes(session: Session, user_id: UUID, digests: list[bytes]) -> None:
    await delete_recovery_codes(session, user_id)
    await session.execute(
        "INSERT INTO mfa_recovery_codes (tenant_id, user_id, code_hash)"
        " SELECT app.current_tenant_id(), $1, d FROM unnest($2::bytea[]) AS d",
        user_id,
        digests,
    )


async def delete_recovery_codes(session: Session, user_id: UUID) -> None:
    await session.execute("DELETE FROM mfa_recovery_codes WHERE user_id = $1", user_id)


async def use_recovery_code(session: Session, user_id: UUID, digest: bytes) -> bool:
    row = await session.fetchval(
        "UPDATE mfa_recovery_codes SET used_at = statement_timestamp()"
        " WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL RETURNING id",
        user_id,
        digest,
    )
    return row is not None


async def unused_recovery_codes(session: Session, user_id: UUID) -> int:
    count = await session.fetchval(
        "SELECT count(*) FROM mfa_recovery_codes WHERE user_id = $1 AND used_at IS NULL",
        user_id,
    )
    return int(count)
