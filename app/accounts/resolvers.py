"""Account mutations: read arguments, call one service function, map the result."""

from __future__ import annotations

from typing import Annotated, TypeVar

import strawberry

from app.accounts import service
from app.accounts.mailer import mailer_for
from app.accounts.types import (
    AcceptInvitationInput,
    AccountPayload,
    ChangeEmailInput,
    ChangePasswordInput,
    ChangePasswordPayload,
    CompletePasswordResetInput,
    InviteUserInput,
    InviteUserPayload,
    RequestPasswordResetInput,
)
from app.api.context import Info
from app.api.mutations import attempt, settle
from app.api.permissions import not_while_impersonating, public, requires, signed_in
from app.auth.types import SignInPayload
from app.rbac.permissions import Permission
from app.tenants.resolution import tenant_to_use
from app.users.types import User

T = TypeVar("T")


@strawberry.type
class AccountMutations:
    @strawberry.mutation(
        description="Invite someone to this tenant by email. Inviting "
        "an email whose invitation is pending changes it (its role), which, as any action on a "
        "user, needs every permission of the roles they hold; only owners act on owners.",
        extensions=not_while_impersonating(requires(Permission.USER_INVITE)),
    )
    async def invite_user(
        self,
        info: Info,
        input: Annotated[InviteUserInput, strawberry.argument(description="The invitation.")],
    ) -> InviteUserPayload:
        ctx = info.context
        outcome = await attempt(
            info,
            lambda s, actor: service.invite_user(
                s,
                mailer_for(ctx.settings),
                ctx.settings,
                ctx.request_meta,
                actor=actor,
                email=input.email,
                role=input.role,
                display_name=input.display_name,
            ),
        )
        return InviteUserPayload(user=User.maybe(outcome.value), errors=outcome.errors)

    @strawberry.mutation(
        description="Accept an invitation: choose a password and sign in.",
        extensions=not_while_impersonating(public()),
    )
    async def accept_invitation(
        self,
        info: Info,
        input: Annotated[
            AcceptInvitationInput, strawberry.argument(description="The token and password.")
        ],
    ) -> SignInPayload:
        ctx = info.context
        outcome = await settle(
            lambda: service.accept_invitation(
                ctx.database,
                ctx.tokens,
                ctx.settings,
                ctx.request_meta,
                token=input.token,
                password=input.password,
                display_name=input.display_name,
            )
        )
        return SignInPayload.of_outcome(outcome)

    @strawberry.mutation(
        description="Mail a password-reset link. The answer is the same whether or not the "
        "account exists.",
        extensions=not_while_impersonating(public()),
    )
    async def request_password_reset(
        self,
        info: Info,
        input: Annotated[
            RequestPasswordResetInput, strawberry.argument(description="The account.")
        ],
    ) -> AccountPayload:
        ctx = info.context

        async def request() -> None:
            await service.request_password_reset(
                ctx.database,
                ctx.store,
                mailer_for(ctx.settings),
                ctx.settings,
                ctx.request_meta,
                tenant=await tenant_to_use(ctx.database, ctx.store, input.tenant, ctx.named_tenant),
                email=input.email,
            )

        outcome = await settle(request)
        return AccountPayload.failed(outcome.errors)

    @strawberry.mutation(
        description="Set a new password with a reset link's token; ends every session.",
        extensions=not_while_impersonating(public()),
    )
    async def complete_password_reset(
        self,
        info: Info,
        input: Annotated[
            CompletePasswordResetInput, strawberry.argument(description="The token and password.")
        ],
    ) -> AccountPayload:
        ctx = info.context
        outcome = await settle(
            lambda: service.complete_password_reset(
                ctx.database,
                ctx.tokens,
                ctx.store,
                ctx.request_meta,
                token=input.token,
                new_password=input.new_password,
            )
        )
        return AccountPayload.failed(outcome.errors)

    @strawberry.mutation(
        description="Change the signed-in user's password. Every session of the user ends, "
        "this one included; `signIn` holds new tokens.",
        extensions=not_while_impersonating(signed_in()),
    )
    async def change_password(
        self,
        info: Info,
        input: Annotated[ChangePasswordInput, strawberry.argument(description="The passwords.")],
    ) -> ChangePasswordPayload:
        ctx = info.context
        principal = ctx.require_principal()
        outcome = await attempt(
            info,
            lambda s, _: service.change_password(
                s,
                ctx.tokens,
                ctx.settings,
                ctx.store,
                ctx.request_meta,
                claims=principal.claims,
                current_password=input.current_password,
                new_password=input.new_password,
            ),
        )
        return ChangePasswordPayload(
            ok=outcome.value is not None,
            sign_in=None if outcome.value is None else SignInPayload.of_tokens(outcome.value),
            errors=outcome.errors,
        )

    @strawberry.mutation(
        description="Start changing the signed-in user's email: a link is mailed to the new one.",
        extensions=not_while_impersonating(signed_in()),
    )
    async def change_email(
        self,
        info: Info,
        input: Annotated[ChangeEmailInput, strawberry.argument(description="The new address.")],
    ) -> AccountPayload:
        ctx = info.context
        outcome = await attempt(
            info,
            lambda s, actor: service.request_email_change(
                s,
                mailer_for(ctx.settings),
                ctx.settings,
                ctx.request_meta,
                actor_id=actor.user_id,
                new_email=input.new_email,
            ),
        )
        return AccountPayload.failed(outcome.errors)

    @strawberry.mutation(
        description="Apply an email change from its verification link's token.",
        extensions=not_while_impersonating(public()),
    )
    async def verify_email(
        self,
        info: Info,
        token: Annotated[
            str, strawberry.argument(description="The `token` parameter of the link.")
        ],
    ) -> AccountPayload:
        ctx = info.context
        outcome = await settle(
            lambda: service.verify_email(ctx.database, ctx.request_meta, token=token)
        )
        return AccountPayload.failed(outcome.errors)
