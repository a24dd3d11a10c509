"""Sign-in, refresh, sign-out and session management."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.api.context import Info
from app.api.mutations import attempt, settle
from app.api.permissions import not_while_impersonating, public, signed_in
from app.api.relay import decode_global_id
from app.auth import service, sessions
from app.auth.service import SignInResult
from app.auth.types import SESSION_TYPE, SignInPayload, SignOutPayload
from app.core.actor import Actor
from app.core.db import Session as DbSession
from app.core.errors import Invalid
from app.tenants.resolution import tenant_to_use


@strawberry.input(description="Credentials of a user of one tenant.")
class SignInInput:
    tenant: str | None = strawberry.field(
        default=None,
        description="The organisation's slug (or ID). Optional when the request names it by "
        "its subdomain or an X-Tenant header; both given must name the same one.",
    )
    email: str = strawberry.field(description="The user's email (any case).")
    password: str = strawberry.field(description="The user's password.")


@strawberry.type
class AuthMutations:
    @strawberry.mutation(
        description="Sign in with a tenant slug, email and password.",
        extensions=not_while_impersonating(public()),
    )
    async def sign_in(
        self,
        info: Info,
        input: Annotated[SignInInput, strawberry.argument(description="The credentials.")],
    ) -> SignInPayload:
        ctx = info.context

        async def run() -> SignInResult:
            return await service.sign_in(
                ctx.database,
                ctx.tokens,
                ctx.settings,
                ctx.store,
                ctx.request_meta,
                tenant=await tenant_to_use(ctx.database, ctx.store, input.tenant, ctx.named_tenant),
                email=input.email,
                password=input.password,
            )

        return SignInPayload.of_outcome(await settle(run))

    @strawberry.mutation(
        description="Exchange a refresh token for new tokens. Each refresh token works once; "
        "presenting a used one again ends the session.",
        extensions=not_while_impersonating(public()),
    )
    async def refresh_token(
        self,
        info: Info,
        refresh_token: Annotated[
            str, strawberry.argument(description="The latest refresh token of the session.")
        ],
    ) -> SignInPayload:
        ctx = info.context
        outcome = await settle(
            lambda: sessions.refresh(
                ctx.database, ctx.tokens, ctx.settings, ctx.store, ctx.request_meta, refresh_token
            )
        )
        return SignInPayload.of_outcome(outcome)

    @strawberry.mutation(
        description="End the current session (its refresh and access tokens).",
        extensions=signed_in(),
    )
    async def sign_out(self, info: Info) -> SignOutPayload:
        ctx = info.context

        async def run(session: DbSession, actor: Actor) -> int:
            principal = ctx.require_principal()
            await sessions.revoke_session(
                session,
                ctx.tokens,
                ctx.store,
                ctx.request_meta,
                actor_id=actor.user_id,
                session_id=principal.session_id,
                reason="sign_out",
            )
            return 1

        outcome = await attempt(info, run)
        return SignOutPayload(revoked_sessions=outcome.value or 0, errors=outcome.errors)

    @strawberry.mutation(
        description="End every session of the signed-in user, this one included.",
        extensions=not_while_impersonating(signed_in()),
    )
    async def sign_out_everywhere(self, info: Info) -> SignOutPayload:
        ctx = info.context

        async def run(session: DbSession, actor: Actor) -> int:
            return await sessions.revoke_user_sessions(
                session,
                ctx.tokens,
                ctx.store,
                ctx.request_meta,
                user_id=actor.user_id,
                actor_id=actor.user_id,
                reason="sign_out_everywhere",
            )

        outcome = await attempt(info, run)
        return SignOutPayload(revoked_sessions=outcome.value or 0, errors=outcome.errors)

    @strawberry.mutation(
        description="End one of the signed-in user's sessions (see `sessions`).",
        extensions=not_while_impersonating(signed_in()),
    )
    async def revoke_session(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The session's ID.")],
    ) -> SignOutPayload:
        ctx = info.context

        async def run(session: DbSession, actor: Actor) -> int:
            decoded = decode_global_id(str(id))
            if decoded is None or decoded[0] != SESSION_TYPE:
                raise Invalid("Not a valid Session ID", field="id")
            await sessions.revoke_session(
                session,
                ctx.tokens,
                ctx.store,
                ctx.request_meta,
                actor_id=actor.user_id,
                session_id=decoded[1],
                reason="revoked_by_user",
            )
            return 1

        outcome = await attempt(info, run)
        return SignOutPayload(revoked_sessions=outcome.value or 0, errors=outcome.errors)
