"""The signIn mutation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import strawberry

from app.api.context import Info
from app.api.mutations import UserError
from app.auth import service
from app.core.errors import DomainError


@strawberry.input(description="Credentials of a user of one tenant.")
class SignInInput:
    tenant: str = strawberry.field(description="The organisation's slug.")
    email: str = strawberry.field(description="The user's email (any case).")
    password: str = strawberry.field(description="The user's password.")


@strawberry.type(description="An access token, or why none was issued.")
class SignInPayload:
    access_token: str | None = strawberry.field(
        description="Send as `Authorization: Bearer <token>`; null when `errors` is not empty."
    )
    token_type: str = strawberry.field(default="Bearer", description="Always `Bearer`.")
    expires_at: datetime | None = strawberry.field(description="When the token stops working.")
    errors: list[UserError] = strawberry.field(description="Why sign-in failed.")


@strawberry.type
class AuthMutations:
    @strawberry.mutation(description="Sign in with a tenant slug, email and password.")
    async def sign_in(
        self,
        info: Info,
        input: Annotated[SignInInput, strawberry.argument(description="The credentials.")],
    ) -> SignInPayload:
        ctx = info.context
        try:
            done = await service.sign_in(
                ctx.database,
                ctx.tokens,
                tenant=input.tenant,
                email=input.email,
                password=input.password,
            )
        except DomainError as error:
            return SignInPayload(
                access_token=None,
                expires_at=None,
                errors=[UserError.of(error)],
            )
        return SignInPayload(
            access_token=done.token.token,
            expires_at=datetime.fromtimestamp(done.token.expires_at, UTC),
            errors=[],
        )
