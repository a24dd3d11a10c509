"""A real OIDC identity provider for the tests: a JWKS served over HTTP on loopback by a
thread, and ID tokens signed with real joserfc keys (RSA, EC, Ed25519)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from uuid import UUID

from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

from app.core.db import Database
from tests.app_fixtures import GraphQL
from tests.factories import set_role as set_role

SigningKey = RSAKey | ECKey | OKPKey
AUDIENCE = "tenantry-client"

ADD_PROVIDER = """
mutation ($input: AddIdentityProviderInput!) {
  addIdentityProvider(input: $input) {
    identityProvider {
      id name issuer audience jwksUrl subjectClaim emailClaim nameClaim
      createUsers defaultRole enabled
    }
    errors { code message field }
  }
}
"""

EXCHANGE = """
mutation ($input: ExchangeTokenInput!) {
  exchangeToken(input: $input) {
    nextStep accessToken refreshToken
    errors { code message field }
  }
}
"""

VIEWER = "{ viewer { id email } }"


def new_key(alg: str = "RS256", kid: str | None = None) -> SigningKey:
    params: Any = {"kid": kid or secrets.token_hex(4)}
    if alg == "RS256":
        return RSAKey.generate_key(2048, parameters=params, private=True)
    if alg == "ES256":
        return ECKey.generate_key("P-256", parameters=params, private=True)
    return OKPKey.generate_key("Ed25519", parameters=params, private=True)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64json(value: object) -> str:
    return _b64(json.dumps(value).encode())


class FakeIdp:
    """An identity provider: publishes `published` keys at `jwks_url`, signs tokens."""

    def __init__(self) -> None:
        self.issuer = f"https://idp-{secrets.token_hex(4)}.example"
        self.published: list[SigningKey] = []
        self.requests = 0
        # What the JWKS URL answers instead, when set: (status, headers, body).
        self.response: tuple[int, dict[str, str], bytes] | None = None
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                idp.requests += 1
                keys = [k.as_dict(private=False) for k in idp.published]
                status, headers, body = idp.response or (
                    200 if self.path == "/jwks" else 404,
                    {"content-type": "application/json"},
                    json.dumps({"keys": keys}).encode(),
                )
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        port = self._server.server_address[1]
        self.jwks_url = f"http://127.0.0.1:{port}/jwks"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def claims(self, **changes: Any) -> dict[str, Any]:
        """Valid ID-token claims; a change to None drops that claim."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": f"subject-{secrets.token_hex(4)}",
            "email": f"{secrets.token_hex(4)}@people.example",
            "email_verified": True,
            "name": "Ada Lovelace",
            "iat": now,
            "exp": now + 300,
        }
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, key: SigningKey, claims: dict[str, Any] | None = None, **header: Any) -> str:
        alg = header.pop("alg", None) or _alg(key)
        full = {"alg": alg, "kid": key.kid, "typ": "JWT", **header}
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="EdDSA is deprecated")
            return jwt.encode(
                {k: v for k, v in full.items() if v is not None},
                claims or self.claims(),
                key,
                algorithms=[alg],
            )

    def unsigned(self, key: SigningKey, claims: dict[str, Any]) -> str:
        header = {"alg": "none", "kid": key.kid, "typ": "JWT"}
        return f"{_b64json(header)}.{_b64json(claims)}."

    def hs256_with_public_key(self, key: SigningKey, claims: dict[str, Any]) -> str:
        """Algorithm confusion: HMAC keyed with the provider's *public* key (PEM)."""
        secret = key.as_pem(private=False)
        signing_input = f"{_b64json({'alg': 'HS256', 'kid': key.kid})}.{_b64json(claims)}"
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(signature)}"


def _alg(key: SigningKey) -> str:
    if isinstance(key, RSAKey):
        return "RS256"
    if isinstance(key, ECKey):
        return "ES256"
    return "EdDSA"


async def set_status(database: Database, tenant_id: UUID, user_id: UUID, status: str) -> None:
    async with database.transaction(tenant_id) as session:
        await session.execute("UPDATE users SET status = $2 WHERE id = $1", user_id, status)


async def add_provider(
    gql: GraphQL, admin_token: str, idp: FakeIdp, **changes: Any
) -> dict[str, Any]:
    given: dict[str, Any] = {
        "name": "Corporate SSO",
        "issuer": idp.issuer,
        "audience": AUDIENCE,
        "jwksUrl": idp.jwks_url,
    }
    given.update(changes)
    data = await gql.data(ADD_PROVIDER, {"input": given}, token=admin_token)
    payload: dict[str, Any] = data["addIdentityProvider"]
    assert payload["errors"] == [], payload["errors"]
    return payload["identityProvider"]  # type: ignore[no-any-return]


async def exchange(
    gql: GraphQL, tenant: str, id_token: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    variables = {"input": {"tenant": tenant, "idToken": id_token}}
    data = await gql.data(EXCHANGE, variables, headers=headers)
    result: dict[str, Any] = data["exchangeToken"]
    return result


async def audit(database: Database, tenant_id: UUID, action: str) -> list[dict[str, Any]]:
    async with database.transaction(tenant_id, readonly=True) as session:
        rows = await session.fetch(
            "SELECT outcome, actor_id, target_id, metadata FROM audit_log"
            " WHERE action = $1 ORDER BY occurred_at, id",
            action,
        )
    return [
        {
            "outcome": r["outcome"],
            "actor_id": r["actor_id"],
            "target_id": r["target_id"],
            "metadata": json.loads(r["metadata"])
            if isinstance(r["metadata"], str)
            else r["metadata"],
        }
        for r in rows
    ]
