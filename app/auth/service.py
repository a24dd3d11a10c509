"""Sign-in: a tenant slug, an email and a password become a short-lived access token.

Every failure (unknown tenant, suspended tenant, unknown email, wrong password, disabled
user) is the same error after the same work (one Argon2 verification), so responses do
not reveal which accounts or tenants exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core.db import Database
from app.core.errors import Unauthenticated
from app.core.passwords import verify_password
from app.core.security import IssuedToken, TokenService
from app.tenants.models import TenantStatus
from app.tenants.service import lookup_slug
from app.users.models import User, UserStatus
from app.users.service import credentials, get_user


class InvalidCredentials(Unauthenticated):
    code = "INVALID_CREDENTIALS"


@dataclass(frozen=True)
class SignedIn:
    user: User
    token: IssuedToken


async def sign_in(
    database: Database, tokens: TokenService, *, tenant: str, email: str, password: str
) -> SignedIn:
    failure = InvalidCredentials("Invalid organisation, email or password")
    ref = await lookup_slug(database, tenant)
    if ref is None or ref.status is not TenantStatus.ACTIVE:
        await verify_password(None, password)
        raise failure
    async with database.transaction(ref.id, readonly=True) as session:
        found = await credentials(session, email)
        ok = await verify_password(found.password_hash if found else None, password)
        if found is None or not ok or found.status is not UserStatus.ACTIVE:
            raise failure
        user = await get_user(session, found.user_id)
    return SignedIn(user, tokens.issue_access_token(user_id=user.id, tenant_id=ref.id))
