"""Idempotency keys: a mutation operation retried with the same key runs at most once.

The key, a digest of the request and (once the operation has run) its result are written in
the operation's own transaction, with its writes. So after a lost answer, or an unknown
commit outcome, a retry finds either the stored result (the first attempt committed) or no
key at all (it did not, and this attempt runs). Two attempts at once cannot both run: the
second waits for the first's transaction on the key's unique index, then replays its result;
past the lock timeout it is refused with CONFLICT.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import asyncpg

from app.core.db import Database, Session
from app.core.errors import Conflict, Invalid
from app.idempotency import queries
from app.idempotency.models import MAX_KEY_LENGTH, KeyOwner
from app.tenants.service import tenant_ids

FIELD = "Idempotency-Key"


def check_key(raw: str) -> str:
    """A key as sent: 1-255 visible ASCII characters; a structured-field string (the
    header's form in the IETF draft, `"…"`) is unquoted."""
    key = raw.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not all("!" <= c <= "~" for c in key):
        raise Invalid(
            f"An idempotency key is 1-{MAX_KEY_LENGTH} visible ASCII characters", field=FIELD
        )
    return key


def request_digest(query: str, operation_name: str | None, variables: Mapping[str, Any]) -> bytes:
    """What makes two requests "the same" for a key: the document as sent, the operation
    chosen in it, and the variables (in any key order)."""
    canonical = json.dumps(
        [query, operation_name, variables], sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).digest()


async def claim(
    session: Session, owner: KeyOwner, key: str, digest: bytes
) -> dict[str, Any] | None:
    """Reserve `key` for the operation of `session`: None when it is new (the operation runs,
    then `complete` stores its result), else the result the first request with this key
    received. CONFLICT when the key came with another request, or its request is still
    running after the lock timeout."""
    try:
        if await queries.claim(session, owner, key, digest):
            return None
    except asyncpg.LockNotAvailableError:
        raise Conflict(
            "A request with this idempotency key is still running; retry once it has finished",
            field=FIELD,
        ) from None
    earlier = await queries.stored(session, owner, key)
    if earlier is None or earlier.request_digest != digest:
        raise Conflict("This idempotency key was used for a different request", field=FIELD)
    if earlier.response is None:  # pragma: no cover (a committed key always has its result)
        raise Conflict("The request with this idempotency key has no result", field=FIELD)
    return earlier.response


async def complete(session: Session, owner: KeyOwner, key: str, response: dict[str, Any]) -> None:
    """Store the result of the operation holding `key`, in its transaction."""
    await queries.complete(session, owner, key, response)


async def purge_expired(database: Database, *, batch: int = 1000) -> int:
    """Delete every key older than its lifetime, in every tenant and in the platform's
    table, `batch` rows per transaction; returns how many (the retention job)."""
    deleted = 0
    scopes: list[tuple[Any, bool]] = [(t, False) for t in await tenant_ids(database)]
    for tenant_id, platform in [*scopes, (None, True)]:
        while True:
            async with database.transaction(tenant_id, platform=platform) as session:
                done = await queries.delete_expired(session, platform=platform, limit=batch)
            deleted += done
            if done < batch:
                break
    return deleted
