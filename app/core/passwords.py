"""Password hashing and policy. Knows nothing of GraphQL or HTTP.

Argon2id with the OWASP minimum (19 MiB, t=2, p=1), computed off the event loop.

Policy (NIST SP 800-63B): at least 8 and at most 1024 characters, any Unicode, never
truncated, and not one of the commonly used passwords bundled in data/common-passwords.txt.
No composition rules.

Unicode: passwords are NFC-normalised before hashing and verification, so the same password
typed on systems that compose accents differently (a precomposed "é" versus "e" plus a
combining accent) is the same password. NFC, not NFKC: compatibility characters (full-width
letters, ligatures, superscripts) stay distinct, so normalisation never merges two passwords
that look different. Argon2 receives the full UTF-8 bytes of the normalised string; nothing
is cut off (unlike bcrypt's 72 bytes).

Lengths are counted in code points of the input as received, and the maximum is checked
before anything else, so a huge input costs no Argon2 time at all.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import unicodedata
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.core.counters import WorkCounter
from app.core.errors import Invalid

MIN_PASSWORD_LENGTH = 8
# Rejected before hashing so a huge body cannot buy seconds of Argon2 time.
MAX_PASSWORD_LENGTH = 1024

_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# Verified against when the account does not exist, so both paths cost one Argon2 run.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


# Argon2 computations done by this process (hashes and verifications): tests assert that
# two code paths do the same work, that an over-long password never reaches Argon2, and
# that concurrent sign-ins verify at most the throttle's limit.
argon2_computations = WorkCounter()


@functools.cache
def common_passwords() -> frozenset[str]:
    """The bundled list of commonly used passwords, case-folded; loaded once."""
    text = resources.files("app.core").joinpath("data/common-passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip().casefold()
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    )


def normalize(password: str) -> str:
    return unicodedata.normalize("NFC", password)


def _encodable(password: str) -> bool:
    # JSON can carry lone surrogates (e.g. U+D800), which have no UTF-8 form.
    return not any(0xD800 <= ord(c) <= 0xDFFF for c in password)


def check_password_policy(password: str, *, field: str = "password") -> None:
    """Raise Invalid (naming `field`) unless the password may be set."""
    if len(password) > MAX_PASSWORD_LENGTH:
        raise Invalid(f"Password must be at most {MAX_PASSWORD_LENGTH} characters", field=field)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(f"Password must be at least {MIN_PASSWORD_LENGTH} characters", field=field)
    if not _encodable(password):
        raise Invalid("Password contains characters that are not allowed", field=field)
    if normalize(password).casefold() in common_passwords():
        raise Invalid("This password is too common; choose another one", field=field)


def _hash(password: str) -> str:
    argon2_computations.add()
    return _hasher.hash(normalize(password))


def _verify(password_hash: str | None, password: str) -> bool:
    argon2_computations.add()
    if not _encodable(password):
        # Still one Argon2 run, so a malformed password costs what a wrong one does.
        password_hash, password = None, ""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, normalize(password)) and bool(
            password_hash
        )
    except (VerificationError, InvalidHashError):
        return False


async def hash_password(password: str, *, field: str = "password") -> str:
    """Check the policy, then hash (one Argon2 run, off the event loop)."""
    check_password_policy(password, field=field)
    return await asyncio.to_thread(_hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant-work check: a missing hash still costs one Argon2 verification."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    return await asyncio.to_thread(_verify, password_hash, password)


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with other parameters (or another algorithm variant)."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return True


async def verify_and_maybe_rehash(
    password_hash: str | None, password: str
) -> tuple[bool, str | None]:
    """Verify; on success with outdated parameters also return a new hash to store.

    `(False, None)` on failure (one Argon2 run, also for a missing hash or account);
    `(True, None)` when the stored hash is current; `(True, new_hash)` when it should be
    replaced (a second Argon2 run, only after a correct password).
    """
    if not await verify_password(password_hash, password):
        return False, None
    assert password_hash is not None  # verify_password is False without a hash
    if not needs_rehash(password_hash):
        return True, None
    return True, await asyncio.to_thread(_hash, password)
