"""GraphQL types of two-factor authentication."""

from __future__ import annotations

import strawberry

from app.api.mutations import UserError
from app.auth.types import SignInPayload
from app.mfa import models


@strawberry.type(description="What an authenticator app needs to add the account. Shown once.")
class TotpEnrollment:
    secret: str = strawberry.field(
        description="The base32 secret, for typing into an app that cannot scan a QR code."
    )
    otpauth_uri: str = strawberry.field(
        description="An `otpauth://totp/...` URI: show it as a QR code for the app to scan."
    )

    @classmethod
    def of(cls, model: models.TotpEnrollment) -> TotpEnrollment:
        return cls(secret=model.secret, otpauth_uri=model.otpauth_uri)


@strawberry.type(description="The signed-in user's second factors, without secrets.")
class MfaStatus:
    totp_enabled: bool = strawberry.field(
        description="Whether sign-in asks for an authenticator code."
    )
    totp_pending: bool = strawberry.field(
        description="Whether an enrolment was started and awaits `confirmTotpEnrollment`."
    )
    recovery_codes_remaining: int = strawberry.field(
        description="Unused recovery codes; regenerate them before they run out."
    )

    @classmethod
    def of(cls, model: models.MfaStatus) -> MfaStatus:
        return cls(
            totp_enabled=model.totp_enabled,
            totp_pending=model.totp_pending,
            recovery_codes_remaining=model.recovery_codes_remaining,
        )


@strawberry.type(description="The result of starting TOTP enrolment.")
class StartTotpEnrollmentPayload:
    enrollment: TotpEnrollment | None = strawberry.field(
        description="The new secret; null when `errors` is not empty."
    )
    errors: list[UserError] = strawberry.field(description="Why enrolment could not start.")


@strawberry.type(description="The result of confirming TOTP enrolment.")
class ConfirmTotpEnrollmentPayload:
    recovery_codes: list[str] | None = strawberry.field(
        description="Single-use codes for when the device is lost. Shown only now: ask the "
        "user to store them safely. Null when `errors` is not empty."
    )
    sign_in: SignInPayload | None = strawberry.field(
        description="The new session's tokens: earlier tokens of the user no longer work."
    )
    errors: list[UserError] = strawberry.field(description="Why enrolment was not confirmed.")


@strawberry.type(description="New recovery codes, replacing all earlier ones.")
class RecoveryCodesPayload:
    recovery_codes: list[str] | None = strawberry.field(
        description="Single-use codes, shown only now; null when `errors` is not empty."
    )
    errors: list[UserError] = strawberry.field(description="Why no codes were made.")


@strawberry.type(description="The result of turning two-factor authentication off.")
class DisableMfaPayload:
    disabled: bool = strawberry.field(description="Whether the factor was removed.")
    sign_in: SignInPayload | None = strawberry.field(
        description="The new session's tokens: earlier tokens of the user no longer work."
    )
    errors: list[UserError] = strawberry.field(description="Why nothing was changed.")
