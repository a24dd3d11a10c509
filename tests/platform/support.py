"""Platform administrators for tests: created through the service (as `tenantry admin
create` does), signed in through the API with their password and a real TOTP code."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from app.core.db import Database
from app.core.request_meta import RequestMeta
from app.core.settings import Settings
from app.mfa import crypto
from app.platform import service
from app.platform.permissions import PlatformPermission
from tests.app_fixtures import GraphQL

ALL = [p.value for p in PlatformPermission]
PASSWORD = "platform horse battery staple"

SIGN_IN = """
mutation ($input: PlatformSignInInput!) {
  platformSignIn(input: $input) {
    accessToken tokenType expiresAt
    admin { id email name permissions status }
    errors { code message field }
  }
}"""
VIEWER = "{ platformViewer { id email permissions status lastSignInAt } }"
AUDIT = """
query ($action: String) {
  platformAuditLog(first: 50, action: $action) {
    nodes { action outcome actorKind actorAdminId targetType targetId metadata }
  }
}"""
SIGN_OUT = "mutation { platformSignOut { signedOut errors { code } } }"


@dataclass
class Admin:
    id: UUID
    email: str
    password: str
    secret: str
    # TOTP steps relative to now still unused: each sign-in takes the next (a code works once,
    # and only a later step's code after it).
    _offsets: list[int]

    def code(self) -> str:
        """The next unused code: the current step's, then the next one's. (A code of the
        previous step would fail whenever a step boundary passes before the server checks
        it; a third code in one step would need one of a step not yet accepted.)"""
        offset = self._offsets.pop(0)
        return crypto.code_at_step(self.secret, crypto.current_step() + offset)

    def credentials(self, **overrides: str) -> dict[str, Any]:
        values = {"email": self.email, "password": self.password}
        values.update(overrides)
        if "code" not in values:
            values["code"] = self.code()
        return {"input": values}


async def new_admin(
    database: Database, settings: Settings, *, permissions: list[str] | None = None
) -> Admin:
    email = f"admin-{secrets.token_hex(5)}@platform.example"
    created = await service.create_admin(
        database,
        settings,
        RequestMeta.none(),
        email=email,
        name="Test Admin",
        password=PASSWORD,
        permissions=ALL if permissions is None else permissions,
    )
    return Admin(created.admin.id, email, PASSWORD, created.totp_secret, [0, 1])


async def sign_in(gql: GraphQL, admin: Admin) -> str:
    data = await gql.data(SIGN_IN, admin.credentials())
    payload = data["platformSignIn"]
    assert payload["errors"] == [], payload
    token: str = payload["accessToken"]
    return token


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]
