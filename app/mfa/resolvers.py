"""Two-factor authentication: enrol, verify at sign-in, regenerate recovery codes, disable.

The service functions keep their own savepoints (a rejected code's audit entry and
attempt count must outlive the rolled-back attempt), so these resolvers call them directly
instead of through `attempt`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import strawberry

from app.api.context import Context, Info, Principal
from app.api.mutations import Outcome, settle
from app.api.permissions import not_while_impersonating, public, signed_in
from app.auth.types import SignInPayload
from app.mfa import service
from app.mfa.types import (
    ConfirmTotpEnrollmentPayload,
    DisableMfaPayload,
    MfaStatus,
    RecoveryCodesPayload,
    StartTotpEnrollmentPayload,
    TotpEnrollment,
)

T = TypeVar("T")

_Challenge = Annotated[
    str | None,
    strawberry.argument(
        description="The challenge of a sign-in that must enrol first "
        "(MFA_ENROLLMENT_REQUIRED); omit when signed in."
    ),
]


@strawberry.input(description="The second step of a sign-in: one of `code` or `recoveryCode`.")
class VerifyMfaInput:
    challenge: str = strawberry.field(description="The challenge `signIn` returned.")
    code: str | None = strawberry.field(
        default=None, description="The 6-digit code of the authenticator app."
    )
    recovery_code: str | None = strawberry.field(
        default=None, description="One of the recovery codes (each works once)."
    )


def _env(ctx: Context) -> service.MfaEnv:
    return service.MfaEnv(ctx.tokens, ctx.store, ctx.settings, ctx.request_meta)


async def _signed_in(
    info: Info, action: Callable[[Context, Principal], Awaitable[T]]
) -> Outcome[T]:
    ctx = info.context
    principal = ctx.require_principal()
    try:
        return await settle(lambda: action(ctx, principal))
    finally:
        ctx.loaders.clear()


@strawberry.type
class MfaQueries:
    @strawberry.field(
        description="The signed-in user's two-factor authentication.", extensions=signed_in()
    )
    async def mfa_status(self, info: Info) -> MfaStatus:
        principal = info.context.require_principal()
        return MfaStatus.of(await service.mfa_status(info.context.session, principal.user_id))


@strawberry.type
class MfaMutations:
    @strawberry.mutation(
        description="Complete a sign-in that returned MFA_REQUIRED, with an authenticator "
        "code or a recovery code.",
        extensions=not_while_impersonating(public()),
    )
    async def verify_mfa(
        self,
        info: Info,
        input: Annotated[VerifyMfaInput, strawberry.argument(description="Challenge and code.")],
    ) -> SignInPayload:
        ctx = info.context
        outcome = await settle(
            lambda: service.verify_sign_in(
                ctx.database,
                _env(ctx),
                challenge=input.challenge,
                code=input.code,
                recovery_code=input.recovery_code,
            )
        )
        return SignInPayload.of_outcome(outcome)

    @strawberry.mutation(
        description="Start adding an authenticator app: returns its secret. Signed in, or with "
        "the challenge of a sign-in that must enrol first.",
        extensions=not_while_impersonating(public()),
    )
    async def start_totp_enrollment(
        self, info: Info, challenge: _Challenge = None
    ) -> StartTotpEnrollmentPayload:
        ctx = info.context
        if challenge is not None:
            outcome = await settle(
                lambda: service.start_enrollment_with_challenge(
                    ctx.database, _env(ctx), challenge=challenge
                )
            )
        else:
            outcome = await _signed_in(
                info,
                lambda c, p: service.start_enrollment(c.session, _env(c), user_id=p.user_id),
            )
        return StartTotpEnrollmentPayload(
            enrollment=None if outcome.value is None else TotpEnrollment.of(outcome.value),
            errors=outcome.errors,
        )

    @strawberry.mutation(
        description="Finish adding an authenticator app with its first code; returns recovery "
        "codes and new tokens (`signIn`): every earlier session of the user ends, this one "
        "included. With a challenge, this completes that sign-in.",
        extensions=not_while_impersonating(public()),
    )
    async def confirm_totp_enrollment(
        self,
        info: Info,
        code: Annotated[str, strawberry.argument(description="The app's current 6-digit code.")],
        challenge: _Challenge = None,
    ) -> ConfirmTotpEnrollmentPayload:
        ctx = info.context
        if challenge is not None:
            outcome = await settle(
                lambda: service.confirm_enrollment_with_challenge(
                    ctx.database, _env(ctx), challenge=challenge, code=code
                )
            )
        else:
            outcome = await _signed_in(
                info,
                lambda c, p: service.confirm_enrollment_signed_in(
                    c.session, _env(c), claims=p.claims, code=code
                ),
            )
        done = outcome.value
        return ConfirmTotpEnrollmentPayload(
            recovery_codes=None if done is None else done.recovery_codes,
            sign_in=(
                None
                if done is None or done.signed_in is None
                else SignInPayload.of_tokens(done.signed_in)
            ),
            errors=outcome.errors,
        )

    @strawberry.mutation(
        description="Replace all recovery codes with new ones. Needs a recent sign-in with "
        "the second factor (else FRESH_AUTH_REQUIRED).",
        extensions=not_while_impersonating(signed_in()),
    )
    async def regenerate_recovery_codes(self, info: Info) -> RecoveryCodesPayload:
        outcome = await _signed_in(
            info,
            lambda c, p: service.regenerate_recovery_codes(c.session, _env(c), claims=p.claims),
        )
        return RecoveryCodesPayload(recovery_codes=outcome.value, errors=outcome.errors)

    @strawberry.mutation(
        description="Turn two-factor authentication off. Every session of the user ends, this "
        "one included; `signIn` holds new tokens. Needs a recent sign-in with the second factor "
        "(else FRESH_AUTH_REQUIRED).",
        extensions=not_while_impersonating(signed_in()),
    )
    async def disable_mfa(self, info: Info) -> DisableMfaPayload:
        outcome = await _signed_in(
            info, lambda c, p: service.disable(c.session, _env(c), claims=p.claims)
        )
        return DisableMfaPayload(
            disabled=outcome.value is not None,
            sign_in=None if outcome.value is None else SignInPayload.of_tokens(outcome.value),
            errors=outcome.errors,
        )
