"""Access-token signing and verification. Knows nothing of GraphQL or HTTP.

Tokens: ES256 JWTs via joserfc with the algorithm pinned, a `kid` header and an explicit
`typ` so no other kind of token can pass as an access token.

Two principal kinds hold access tokens, kept apart three ways: a tenant user's token has
`typ` at+jwt, the API audience and a tenant claim (`tid`); a platform administrator's has
`typ` platform-at+jwt, the platform audience and no `tid`. Each verification pins all three,
so neither token can be taken for the other even though one key set signs both.

A third shape is a tenant access token with an RFC 8693 `act` claim: a platform administrator
acting as the user (break-glass impersonation, docs/platform.md). It is a tenant token in
every other respect; `act` names the administrator and their platform session, which the
request path checks on every request. No other kind of token may carry `act`.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

from joserfc import jws, jwt
from joserfc.errors import JoseError

from app.core.errors import Unauthenticated
from app.core.keys import ALGORITHM, KeyRing
from app.core.settings import Settings

# Each kind of token has its own `typ`, checked on every verification, so no token kind
# can pass as another (a challenge is never an access token, a refresh token is not a JWT).
ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 (a JWT `typ`, not a secret)
MFA_CHALLENGE_TYPE = "mfa-challenge+jwt"
MFA_ENROLLMENT_TYPE = "mfa-enroll+jwt"
PLATFORM_ACCESS_TOKEN_TYPE = "platform-at+jwt"  # noqa: S105 (a JWT `typ`, not a secret)
CLOCK_LEEWAY_SECONDS = 30


@dataclass(frozen=True)
class Impersonator:
    """The platform administrator behind an impersonation token (its `act` claim)."""

    admin_id: UUID
    # The administrator's platform session: the impersonation lives only as long as it.
    platform_session_id: UUID


@dataclass(frozen=True)
class AccessClaims:
    """The verified identity an access token carries."""

    user_id: UUID
    tenant_id: UUID
    session_id: UUID
    # Authenticator assurance level: 1 = password or external identity, 2 = with MFA.
    aal: int
    amr: tuple[str, ...]
    auth_time: int
    token_id: str
    expires_at: int
    # Set when a platform administrator acts as the user (the `act` claim).
    impersonator: Impersonator | None = None

    def fresh(self, *, max_age_seconds: int, now: float | None = None) -> bool:
        """Authenticated at AAL 2 within `max_age_seconds` (for sensitive MFA changes)."""
        now = time.time() if now is None else now
        return self.aal >= 2 and now - self.auth_time <= max_age_seconds


@dataclass(frozen=True)
class PlatformClaims:
    """The verified identity a platform administrator's access token carries."""

    admin_id: UUID
    # The platform session (platform_sessions), checked on every operation.
    session_id: UUID
    amr: tuple[str, ...]
    auth_time: int
    token_id: str
    expires_at: int


@dataclass(frozen=True)
class ChallengeClaims:
    """A half-finished sign-in: the password was right, a second step is owed."""

    user_id: UUID
    tenant_id: UUID
    amr: tuple[str, ...]
    token_id: str
    expires_at: int


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: int


class TokenService:
    """Signs with the newest key of a JWK set; verifies with any key still in it."""

    def __init__(
        self,
        keys: KeyRing,
        *,
        issuer: str,
        audience: str,
        ttl_seconds: int,
        platform_audience: str = Settings.jwt_platform_audience,
        platform_ttl_seconds: int = Settings.platform_token_ttl_seconds,
        challenge_ttl_seconds: int = 300,
    ) -> None:
        if platform_audience == audience:
            raise ValueError("the platform audience must differ from the API audience")
        # Read on every use, so a rotated key file takes effect without a restart.
        self._keys = keys
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds
        self.platform_audience = platform_audience
        self.platform_ttl_seconds = platform_ttl_seconds
        self.challenge_ttl_seconds = challenge_ttl_seconds
        signed: dict[str, Any] = {
            "iss": {"essential": True, "value": issuer},
            "sub": {"essential": True},
            "exp": {"essential": True},
            "iat": {"essential": True},
            "jti": {"essential": True},
            "amr": {"essential": True},
        }
        common: dict[str, Any] = {
            **signed,
            "aud": {"essential": True, "value": audience},
            "tid": {"essential": True},
        }
        self._access_claims = jwt.JWTClaimsRegistry(
            leeway=CLOCK_LEEWAY_SECONDS,
            sid={"essential": True},
            aal={"essential": True, "values": [1, 2]},
            auth_time={"essential": True},
            **common,
        )
        self._challenge_claims = jwt.JWTClaimsRegistry(leeway=CLOCK_LEEWAY_SECONDS, **common)
        self._platform_claims = jwt.JWTClaimsRegistry(
            leeway=CLOCK_LEEWAY_SECONDS,
            aud={"essential": True, "value": platform_audience},
            sid={"essential": True},
            auth_time={"essential": True},
            **signed,
        )

    @classmethod
    def from_settings(cls, keys: KeyRing, settings: Settings) -> TokenService:
        return cls(
            keys,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl_seconds=settings.access_token_ttl_seconds,
            platform_audience=settings.jwt_platform_audience,
            platform_ttl_seconds=settings.platform_token_ttl_seconds,
        )

    def public_jwks(self) -> dict[str, Any]:
        return dict(self._keys.key_set.as_dict(private=False))

    def _sign(
        self, typ: str, claims: dict[str, Any], ttl_seconds: int, *, audience: str | None = None
    ) -> IssuedToken:
        now = int(time.time())
        expires_at = now + ttl_seconds
        signing_key = self._keys.signing_key
        header = {"alg": ALGORITHM, "kid": signing_key.kid, "typ": typ}
        body = {
            "iss": self.issuer,
            "aud": audience or self.audience,
            "iat": now,
            "exp": expires_at,
            "jti": uuid4().hex,
            **claims,
        }
        return IssuedToken(jwt.encode(header, body, signing_key), expires_at)

    def _decode(self, token: str, typ: str, registry: jwt.JWTClaimsRegistry) -> dict[str, Any]:
        decoded = jwt.decode(token, self._keys.key_set, algorithms=[ALGORITHM])
        # A kid is required even while one key exists, so rotation never has to guess.
        if decoded.header.get("typ") != typ or not decoded.header.get("kid"):
            raise Unauthenticated("Invalid token")
        registry.validate(decoded.claims)
        return decoded.claims

    def issue_access_token(
        self,
        *,
        user_id: UUID,
        tenant_id: UUID,
        session_id: UUID,
        aal: int,
        amr: tuple[str, ...],
        auth_time: int,
    ) -> IssuedToken:
        claims = {
            "sub": str(user_id),
            "tid": str(tenant_id),
            "sid": str(session_id),
            "aal": aal,
            "amr": list(amr),
            "auth_time": auth_time,
        }
        return self._sign(ACCESS_TOKEN_TYPE, claims, self.ttl_seconds)

    def issue_impersonation_token(
        self,
        *,
        user_id: UUID,
        tenant_id: UUID,
        session_id: UUID,
        impersonator: Impersonator,
        amr: tuple[str, ...],
        auth_time: int,
        ttl_seconds: int,
    ) -> IssuedToken:
        """A tenant access token of `user_id` acting for the administrator in `act`. AAL 2:
        the administrator signed in with a second factor; the user authenticated nothing."""
        claims = {
            "sub": str(user_id),
            "tid": str(tenant_id),
            "sid": str(session_id),
            "aal": 2,
            "amr": list(amr),
            "auth_time": auth_time,
            "act": {
                "sub": str(impersonator.admin_id),
                "sid": str(impersonator.platform_session_id),
            },
        }
        return self._sign(ACCESS_TOKEN_TYPE, claims, ttl_seconds)

    def verify_access_token(self, token: str) -> AccessClaims:
        """Every failure is the same Unauthenticated: the reason is logged, not returned."""
        try:
            claims = self._decode(token, ACCESS_TOKEN_TYPE, self._access_claims)
            return AccessClaims(
                user_id=UUID(str(claims["sub"])),
                tenant_id=UUID(str(claims["tid"])),
                session_id=UUID(str(claims["sid"])),
                aal=int(claims["aal"]),
                amr=_amr(claims["amr"]),
                auth_time=int(claims["auth_time"]),
                token_id=str(claims["jti"]),
                expires_at=int(claims["exp"]),
                impersonator=_impersonator(claims["act"]) if "act" in claims else None,
            )
        except (JoseError, ValueError, TypeError, KeyError, Unauthenticated):
            raise Unauthenticated("Invalid access token") from None

    def issue_platform_token(
        self, *, admin_id: UUID, session_id: UUID, amr: tuple[str, ...], auth_time: int
    ) -> IssuedToken:
        """An access token of a platform administrator: no tenant, the platform audience."""
        claims: dict[str, Any] = {
            "sub": str(admin_id),
            "sid": str(session_id),
            "amr": list(amr),
            "auth_time": auth_time,
        }
        return self._sign(
            PLATFORM_ACCESS_TOKEN_TYPE,
            claims,
            self.platform_ttl_seconds,
            audience=self.platform_audience,
        )

    def verify_platform_token(self, token: str) -> PlatformClaims:
        try:
            claims = self._decode(token, PLATFORM_ACCESS_TOKEN_TYPE, self._platform_claims)
            if "tid" in claims:  # a platform principal belongs to no tenant
                raise ValueError("a platform token names a tenant")
            if "act" in claims:  # nobody acts through an administrator
                raise ValueError("a platform token names an actor")
            return PlatformClaims(
                admin_id=UUID(str(claims["sub"])),
                session_id=UUID(str(claims["sid"])),
                amr=_amr(claims["amr"]),
                auth_time=int(claims["auth_time"]),
                token_id=str(claims["jti"]),
                expires_at=int(claims["exp"]),
            )
        except (JoseError, ValueError, TypeError, KeyError, Unauthenticated):
            raise Unauthenticated("Invalid access token") from None

    def verify_bearer(self, token: str) -> AccessClaims | PlatformClaims:
        """A bearer token of either principal kind, told apart by its `typ`; the verifier of
        that kind then pins `typ`, audience and claims again, so a forged `typ` gains nothing."""
        try:
            typ = jws.extract_compact(token.encode()).headers().get("typ")
        except (JoseError, ValueError, TypeError, UnicodeError):
            raise Unauthenticated("Invalid access token") from None
        if typ == PLATFORM_ACCESS_TOKEN_TYPE:
            return self.verify_platform_token(token)
        return self.verify_access_token(token)

    def issue_challenge(
        self, typ: str, *, user_id: UUID, tenant_id: UUID, amr: tuple[str, ...]
    ) -> IssuedToken:
        """A short-lived token naming a user whose sign-in needs a second step."""
        claims = {"sub": str(user_id), "tid": str(tenant_id), "amr": list(amr)}
        return self._sign(typ, claims, self.challenge_ttl_seconds)

    def verify_challenge(self, typ: str, token: str) -> ChallengeClaims:
        try:
            claims = self._decode(token, typ, self._challenge_claims)
            if "act" in claims:  # an impersonator never completes a sign-in
                raise ValueError("a challenge names an actor")
            return ChallengeClaims(
                user_id=UUID(str(claims["sub"])),
                tenant_id=UUID(str(claims["tid"])),
                amr=_amr(claims["amr"]),
                token_id=str(claims["jti"]),
                expires_at=int(claims["exp"]),
            )
        except (JoseError, ValueError, TypeError, KeyError, Unauthenticated):
            raise Unauthenticated("Invalid or expired challenge") from None


def _impersonator(value: object) -> Impersonator:
    # Exactly the two members issued: a nested `act` (a chain of delegation) or anything
    # else is a token this server never signs.
    if not isinstance(value, dict) or set(value) != {"sub", "sid"}:
        raise ValueError("act must name exactly sub and sid")
    return Impersonator(UUID(str(value["sub"])), UUID(str(value["sid"])))


def _amr(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("amr must be a list of strings")
    return tuple(value)


# Opaque single-purpose secrets (refresh tokens, invitation and reset tokens):
# `<kind>.<tenant id hex>.<secret>`. The tenant part lets the server bind the right tenant
# before looking the token up under row-level security; a forged tenant part just finds
# nothing. Only a SHA-256 of the whole token is stored: the secret has 256 bits of entropy,
# so a slow hash would add nothing.
_OPAQUE_SECRET_BYTES = 32


@dataclass(frozen=True)
class OpaqueToken:
    token: str
    tenant_id: UUID
    digest: bytes


def new_opaque_token(kind: str, tenant_id: UUID) -> OpaqueToken:
    token = f"{kind}.{tenant_id.hex}.{secrets.token_urlsafe(_OPAQUE_SECRET_BYTES)}"
    return OpaqueToken(token, tenant_id, token_digest(token))


def parse_opaque_token(kind: str, token: str) -> OpaqueToken | None:
    """The token's tenant and digest, or None when it is not a well-formed `kind` token."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != kind or len(parts[2]) < 40 or len(token) > 200:
        return None
    try:
        tenant_id = UUID(hex=parts[1])
    except ValueError:
        return None
    if tenant_id.hex != parts[1]:
        return None
    return OpaqueToken(token, tenant_id, token_digest(token))


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
