"""Validation of an external ID token against its provider: signature, algorithm, claims.

Only asymmetric algorithms are accepted (never `none` or HMAC, which a public key could
"sign"), the algorithm must match the key, and iss / aud / exp / nbf / iat are checked
with a small clock leeway. Every failure is a `Rejected` whose reason is for the log and
the audit entry only; callers return one undifferentiated error.
"""

from __future__ import annotations

import warnings
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError

from app.core.validation import json_value
from app.identity.jwks import JwksCache
from app.identity.models import ExternalIdentity, IdentityProvider

ALGORITHMS = ("RS256", "ES256", "EdDSA", "Ed25519")
LEEWAY_SECONDS = 60
MAX_TOKEN_BYTES = 16 * 1024
_SUBJECT_MAX = 500


class Rejected(Exception):
    """The token is not acceptable; `reason` is a short code for logs and audit."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def unverified_issuer(token: str) -> tuple[str, dict[str, Any]]:
    """The `iss` and header of a token *before* verification: only to pick the provider."""
    if len(token) > MAX_TOKEN_BYTES:
        raise Rejected("too_large")
    try:
        compact = jws.extract_compact(token.encode("ascii"))
        header = compact.headers()
        claims = json_value(compact.payload)
    except (JoseError, ValueError, UnicodeError):
        raise Rejected("malformed") from None
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    if not isinstance(issuer, str) or not issuer:
        raise Rejected("no_issuer")
    return issuer, dict(header)


async def verify_id_token(
    token: str, header: dict[str, Any], provider: IdentityProvider, jwks: JwksCache
) -> ExternalIdentity:
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise Rejected("algorithm")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise Rejected("malformed")
    key = await jwks.key(provider.jwks_url, kid)
    if key is None:
        raise Rejected("unknown_key")
    try:
        with warnings.catch_warnings():
            # RFC 9864 deprecates the name "EdDSA" in favour of "Ed25519"; providers still use it.
            warnings.filterwarnings("ignore", message="EdDSA is deprecated")
            decoded = jwt.decode(token, key, algorithms=[alg])
    except (JoseError, ValueError, TypeError):
        raise Rejected("signature") from None
    registry = jwt.JWTClaimsRegistry(
        leeway=LEEWAY_SECONDS,
        iss={"essential": True, "value": provider.issuer},
        aud={"essential": True, "value": provider.audience},
        exp={"essential": True},
        iat={"essential": True},
    )
    claims = decoded.claims
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise Rejected(f"claim_{getattr(exc, 'claim', 'invalid')}") from None
    return _identity(claims, provider)


def _identity(claims: dict[str, Any], provider: IdentityProvider) -> ExternalIdentity:
    subject = claims.get(provider.subject_claim)
    if not isinstance(subject, str) or not 1 <= len(subject) <= _SUBJECT_MAX:
        raise Rejected("claim_subject")
    email = claims.get(provider.email_claim)
    name = claims.get(provider.name_claim)
    return ExternalIdentity(
        subject=subject,
        email=email if isinstance(email, str) and email else None,
        # Only a JSON true counts; "true" strings and missing claims do not.
        email_verified=claims.get("email_verified") is True,
        name=name if isinstance(name, str) and name.strip() else None,
    )
