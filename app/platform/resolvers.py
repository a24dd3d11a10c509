"""Platform administrators' own API: sign-in, who am I, sign-out, the platform audit log.

Every field here is for platform administrators only (or public, for sign-in); the tenant
lifecycle fields are in app/platform/tenant_resolvers.py (docs/platform.md).
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.api.context import Info
from app.api.mutations import attempt_platform, settle
from app.api.permissions import (
    not_while_impersonating,
    platform_signed_in,
    public,
    requires_platform,
)
from app.api.relations import connection
from app.api.relay import parse_id
from app.platform import impersonation, service
from app.platform.permissions import PlatformPermission
from app.platform.types import (
    PLATFORM_AUDIT_LISTING,
    ImpersonateUserPayload,
    PlatformAdminType,
    PlatformSignInPayload,
    PlatformSignOutPayload,
)
from app.tenants.types import Tenant
from app.users.types import User


@strawberry.input(description="A platform administrator's credentials: MFA is always required.")
class PlatformSignInInput:
    email: str = strawberry.field(description="The administrator's email (any case).")
    password: str = strawberry.field(description="The administrator's password.")
    code: str = strawberry.field(description="The current code of their authenticator app.")


@strawberry.input(
    description="Whom to act as, and why. Name the user by `userId` or by `email`, not both."
)
class ImpersonateUserInput:
    tenant_id: strawberry.ID = strawberry.field(description="The tenant's global ID.")
    user_id: strawberry.ID | None = strawberry.field(
        default=None, description="The user's global ID."
    )
    email: str | None = strawberry.field(default=None, description="The user's email.")
    reason: str = strawberry.field(
        description="Why, for both audit logs (1-500 characters), e.g. a support ticket."
    )


@strawberry.type
class PlatformQueries:
    @strawberry.field(
        description="The signed-in platform administrator.", extensions=platform_signed_in()
    )
    async def platform_viewer(self, info: Info) -> PlatformAdminType:
        actor = await info.context.platform_actor()
        return PlatformAdminType.of(await service.current_admin(info.context.session, actor))

    platform_audit_log = connection(
        PLATFORM_AUDIT_LISTING,
        nullable=True,
        description="The platform audit log (sign-ins, operators' changes, tenant lifecycle), "
        "newest first.",
    )


@strawberry.type
class PlatformMutations:
    @strawberry.mutation(
        description="Sign in as a platform administrator with email, password and the current "
        "authenticator code. The token works only on platform fields, never in a tenant.",
        extensions=not_while_impersonating(public()),
    )
    async def platform_sign_in(
        self,
        info: Info,
        input: Annotated[PlatformSignInInput, strawberry.argument(description="Credentials.")],
    ) -> PlatformSignInPayload:
        ctx = info.context
        outcome = await settle(
            lambda: service.sign_in(
                ctx.database,
                ctx.tokens,
                ctx.settings,
                ctx.store,
                ctx.request_meta,
                email=input.email,
                password=input.password,
                code=input.code,
            )
        )
        if outcome.value is None:
            return PlatformSignInPayload.failed(outcome.errors)
        return PlatformSignInPayload.of(outcome.value)

    @strawberry.mutation(
        description="End the current platform session: its token stops working at once.",
        extensions=platform_signed_in(),
    )
    async def platform_sign_out(self, info: Info) -> PlatformSignOutPayload:
        meta = info.context.request_meta
        outcome = await attempt_platform(info, lambda s, actor: service.sign_out(s, meta, actor))
        return PlatformSignOutPayload(signed_out=not outcome.errors, errors=outcome.errors)

    @strawberry.mutation(
        description="Break-glass: act as an active, non-owner user of an active tenant for a "
        "few minutes. Returns a non-refreshable tenant access token naming you in its `act` "
        "claim; every operation under it is recorded in the tenant's audit log with both "
        "identities, and credentials, sessions, membership and security settings are refused "
        "under it. It dies with your platform session or your tenant:impersonate permission.",
        extensions=requires_platform(PlatformPermission.TENANT_IMPERSONATE),
    )
    async def impersonate_user(
        self,
        info: Info,
        input: Annotated[ImpersonateUserInput, strawberry.argument(description="Who and why.")],
    ) -> ImpersonateUserPayload:
        ctx = info.context
        actor = await ctx.platform_actor()
        outcome = await settle(
            lambda: impersonation.impersonate(
                ctx.database,
                ctx.tokens,
                ctx.settings,
                ctx.request_meta,
                actor=actor,
                tenant_id=parse_id(input.tenant_id, Tenant, field="tenantId"),
                user_id=None
                if input.user_id is None
                else parse_id(input.user_id, User, field="userId"),
                email=input.email,
                reason=input.reason,
            ),
        )
        if outcome.value is None:
            return ImpersonateUserPayload.failed(outcome.errors)
        return ImpersonateUserPayload.of(outcome.value)
