"""Password hashing and access-token signing. Knows nothing of GraphQL or HTTP.

Passwords: Argon2id with the OWASP minimum (19 MiB, t=2, p=1), hashed off the event loop.
Tokens: ES256 JWTs via joserfc with the algorithm pinned, a `kid` header and an explicit
`typ` so no other kind of token can pass as an access token.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

from app.core.errors import Invalid, Unauthenticated

MIN_PASSWORD_LENGTH = 8
# Rejected before hashing so a huge body cannot buy seconds of Argon2 time.
MAX_PASSWORD_LENGTH = 1024

ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 (a JWT `typ`, not a secret)
ALGORITHM = "ES256"
CLOCK_LEEWAY_SECONDS = 30

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


@dataclass(frozen=True)
class AccessClaims:
    """The verified identity an access token carries."""

    user_id: UUID
    tenant_id: UUID
    token_id: str
    expires_at: int


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: int


class TokenService:
    """Signs with the newest key of a JWK set; verifies with any key still in it."""

    def __init__(self, keys: KeySet, *, issuer: str, audience: str, ttl_seconds: int) -> None:
        if not keys.keys:
            raise ValueError("the signing key set is empty")
        self._keys = keys
        self._signing_key = keys.keys[-1]
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds
        self._claims = jwt.JWTClaimsRegistry(
            leeway=CLOCK_LEEWAY_SECONDS,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            sub={"essential": True},
            tid={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            jti={"essential": True},
        )

    def public_jwks(self) -> dict[str, Any]:
        return dict(self._keys.as_dict(private=False))

    def issue_access_token(self, *, user_id: UUID, tenant_id: UUID) -> IssuedToken:
        now = int(time.time())
        expires_at = now + self.ttl_seconds
        header = {"alg": ALGORITHM, "kid": self._signing_key.kid, "typ": ACCESS_TOKEN_TYPE}
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(user_id),
            "tid": str(tenant_id),
            "iat": now,
            "exp": expires_at,
            "jti": uuid4().hex,
        }
        return IssuedToken(jwt.encode(header, claims, self._signing_key), expires_at)

    def verify_access_token(self, token: str) -> AccessClaims:
        """Every failure is the same Unauthenticated: the reason is logged, not returned."""
        try:
            decoded = jwt.decode(token, self._keys, algorithms=[ALGORITHM])
            # A kid is required even while one key exists, so rotation never has to guess.
            if decoded.header.get("typ") != ACCESS_TOKEN_TYPE or not decoded.header.get("kid"):
                raise Unauthenticated("Invalid access token")
            self._claims.validate(decoded.claims)
            return AccessClaims(
                user_id=UUID(str(decoded.claims["sub"])),
                tenant_id=UUID(str(decoded.claims["tid"])),
                token_id=str(decoded.claims["jti"]),
                expires_at=int(decoded.claims["exp"]),
            )
        except (JoseError, ValueError, TypeError, KeyError):
            raise Unauthenticated("Invalid access token") from None


def generate_signing_key() -> ECKey:
    kid = time.strftime("%Y%m%d") + "-" + secrets.token_hex(4)
    return ECKey.generate_key(
        "P-256", parameters={"kid": kid, "use": "sig", "alg": ALGORITHM}, private=True
    )


def load_or_create_keys(path: Path, *, create: bool) -> KeySet:
    """Read the private JWK set; create one (mode 0600) when allowed and missing."""
    if path.exists():
        return KeySet.import_key_set(json.loads(path.read_text(encoding="utf-8")))
    if not create:
        raise FileNotFoundError(f"signing keys file {path} does not exist")
    keys = KeySet([generate_signing_key()])
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(keys.as_dict(private=True), f)
    return keys
