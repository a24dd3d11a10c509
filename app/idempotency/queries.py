"""SQL on idempotency_keys (tenant users' keys) and platform_idempotency_keys (platform
administrators' keys).

A key is claimed with one INSERT in the operation's own transaction. On a key already used
it waits (the unique key) for the transaction holding it, and then inserts nothing, unless
that key has expired, which it takes over. Responses are `json` text, stored as sent.
"""

from __future__ import annotations

import json
from typing import Any

from app.core.db import Session
from app.idempotency.models import KEY_TTL, KeyOwner, PlatformAdmin, StoredKey

_TENANT_CLAIM = """
INSERT INTO idempotency_keys AS k (tenant_id, user_id, key, request_digest)
VALUES ($1, $2, $3, $4)
ON CONFLICT (tenant_id, user_id, key) DO UPDATE
   SET request_digest = EXCLUDED.request_digest, response = NULL,
       created_at = EXCLUDED.created_at
 WHERE k.created_at < statement_timestamp() - $5::interval
RETURNING true
"""
_PLATFORM_CLAIM = """
INSERT INTO platform_idempotency_keys AS k (admin_id, key, request_digest)
VALUES ($1, $2, $3)
ON CONFLICT (admin_id, key) DO UPDATE
   SET request_digest = EXCLUDED.request_digest, response = NULL,
       created_at = EXCLUDED.created_at
 WHERE k.created_at < statement_timestamp() - $4::interval
RETURNING true
"""


def _where(owner: KeyOwner) -> tuple[str, str, tuple[object, ...]]:
    """The owner's table, the condition selecting one of its keys ($n after the owner's
    parameters: the key is the last), and the owner's parameters."""
    if isinstance(owner, PlatformAdmin):
        return "platform_idempotency_keys", "admin_id = $1 AND key = $2", (owner.admin_id,)
    return (
        "idempotency_keys",
        "tenant_id = $1 AND user_id = $2 AND key = $3",
        (owner.tenant_id, owner.user_id),
    )


async def claim(session: Session, owner: KeyOwner, key: str, digest: bytes) -> bool:
    """Record `key` for this transaction's request; False when a request that committed
    within the key's lifetime already holds it."""
    if isinstance(owner, PlatformAdmin):
        claimed = await session.fetchval(_PLATFORM_CLAIM, owner.admin_id, key, digest, KEY_TTL)
    else:
        claimed = await session.fetchval(
            _TENANT_CLAIM, owner.tenant_id, owner.user_id, key, digest, KEY_TTL
        )
    return bool(claimed)


async def stored(session: Session, owner: KeyOwner, key: str) -> StoredKey | None:
    table, where, args = _where(owner)
    row = await session.fetchrow(
        f"SELECT request_digest, response FROM {table} WHERE {where}",
        *args,
        key,
    )
    if row is None:
        return None
    response = None if row["response"] is None else json.loads(row["response"])
    return StoredKey(bytes(row["request_digest"]), response)


async def complete(session: Session, owner: KeyOwner, key: str, response: dict[str, Any]) -> None:
    """Store the result of the request holding `key` (before its transaction commits)."""
    table, where, args = _where(owner)
    last = len(args) + 2
    await session.execute(
        f"UPDATE {table} SET response = ${last}::json WHERE {where}",
        *args,
        key,
        json.dumps(response),
    )


async def delete_expired(session: Session, *, platform: bool, limit: int) -> int:
    """Delete up to `limit` expired keys of the session's tenant (with `platform`: of the
    platform's table, in a platform-scoped session); returns how many."""
    table = "platform_idempotency_keys" if platform else "idempotency_keys"
    status = await session.execute(
        f"DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table}"
        " WHERE created_at < statement_timestamp() - $1::interval LIMIT $2))",
        KEY_TTL,
        limit,
    )
    return int(status.split()[-1])
