"""Password hashing and policy. Knows nothing of GraphQL or HTTP.

Argon2id with the OWASP minimum (19 MiB, t=2, p=1), computed off the event loop.
"""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.core.errors import Invalid

MIN_PASSWORD_LENGTH = 8
# Rejected before hashing so a huge body cannot buy seconds of Argon2 time.
MAX_PASSWORD_LENGTH = 1024

_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# Verified against when the account does not exist, so both paths cost one Argon2 run.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def check_password_policy(password: str) -> None:
    if len(password) > MAX_PASSWORD_LENGTH:
        raise Invalid(
            f"Password must be at most {MAX_PASSWORD_LENGTH} characters", field="password"
        )
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(
            f"Password must be at least {MIN_PASSWORD_LENGTH} characters", field="password"
        )


async def hash_password(password: str) -> str:
    check_password_policy(password)
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant-work check: a missing hash still costs one Argon2 verification."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return False

    def _verify() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(_verify)
