"""Access-token signing and verification. Knows nothing of GraphQL or HTTP.

Tokens: ES256 JWTs via joserfc with the algorithm pinned, a `kid` header and an explicit
`typ` so no other kind of token can pass as an access token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from app.core.errors import Unauthenticated
from app.core.keys import ALGORITHM

ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 (a JWT `typ`, not a secret)
CLOCK_LEEWAY_SECONDS = 30


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
