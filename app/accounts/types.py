"""GraphQL types of account flows: inputs and payloads."""

from __future__ import annotations

import strawberry

from app.accounts.models import Role
from app.api.mutations import UserError
from app.api.relations import result
from app.auth.types import SignInPayload
from app.users.types import User

strawberry.enum(Role, name="UserRole", description="What a user may do in their tenant.")


@strawberry.input(description="Whom to invite, and with which role.")
class InviteUserInput:
    email: str = strawberry.field(description="Where the invitation is mailed.")
    role: Role = strawberry.field(
        default=Role.MEMBER, description="The role they get (only owners can invite owners)."
    )
    display_name: str | None = strawberry.field(
        default=None, description="Their name until they choose one (default: from the email)."
    )


@strawberry.type(description="The result of inviting a user.")
class InviteUserPayload:
    user: User | None = result(
        User, description="The invited user (status INVITED); null when `errors` is not empty."
    )
    errors: list[UserError] = strawberry.field(description="Why nobody was invited.")


@strawberry.input(description="The invitation link's token and the new user's password.")
class AcceptInvitationInput:
    token: str = strawberry.field(description="The `token` parameter of the invitation link.")
    password: str = strawberry.field(
        description="8-1024 characters, any Unicode; not a commonly used password."
    )
    display_name: str | None = strawberry.field(
        default=None, description="The name shown to others (default: the invitation's)."
    )


@strawberry.input(description="Which account should get a password-reset link.")
class RequestPasswordResetInput:
    tenant: str | None = strawberry.field(
        default=None,
        description="The organisation's slug (or ID). Optional when the request names it by "
        "its subdomain or an X-Tenant header; both given must name the same one.",
    )
    email: str = strawberry.field(description="The account's email (any case).")


@strawberry.input(description="The reset link's token and the new password.")
class CompletePasswordResetInput:
    token: str = strawberry.field(description="The `token` parameter of the reset link.")
    new_password: str = strawberry.field(
        description="8-1024 characters, any Unicode; not a commonly used password."
    )


@strawberry.input(description="The signed-in user's current and new password.")
class ChangePasswordInput:
    current_password: str = strawberry.field(description="The password in use now.")
    new_password: str = strawberry.field(
        description="8-1024 characters, any Unicode; not a commonly used password."
    )


@strawberry.input(description="The address the signed-in user wants to use from now on.")
class ChangeEmailInput:
    new_email: str = strawberry.field(
        description="A verification link is mailed there; the email changes once it is followed."
    )


@strawberry.type(description="The result of a password change.")
class ChangePasswordPayload:
    ok: bool = strawberry.field(description="True when the password was changed.")
    sign_in: SignInPayload | None = strawberry.field(
        description="The new session's tokens: every earlier token of the user, this "
        "session's included, no longer works."
    )
    errors: list[UserError] = strawberry.field(description="Why nothing was changed.")


@strawberry.type(description="The result of an account action.")
class AccountPayload:
    ok: bool = strawberry.field(description="True when the action was done (or accepted).")
    errors: list[UserError] = strawberry.field(description="Why nothing was done.")

    @classmethod
    def done(cls) -> AccountPayload:
        return cls(ok=True, errors=[])

    @classmethod
    def failed(cls, errors: list[UserError]) -> AccountPayload:
        return cls(ok=not errors, errors=errors)
