"""Tenant queries."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.accounts.mailer import mailer_for
from app.api.context import Info
from app.api.mutations import UserError, attempt, patch, patch_nullable, settle
from app.api.permissions import not_while_impersonating, public, requires, signed_in
from app.api.relations import result
from app.api.relay import encode_global_id
from app.auth.types import SignInPayload
from app.rbac.permissions import Permission
from app.tasks.models import TaskStatus
from app.tenants import service
from app.tenants.signup import SignUp, sign_up
from app.tenants.types import Tenant


@strawberry.type
class TenantQueries:
    @strawberry.field(description="The tenant of the signed-in user.", extensions=signed_in())
    async def tenant(self, info: Info) -> Tenant:
        return Tenant.from_model(await service.current_tenant(info.context.session))


@strawberry.type(description="The result of a mutation of a tenant (settings, lifecycle).")
class TenantPayload:
    tenant: Tenant | None = result(
        Tenant, description="The tenant as it is now; null when `errors` is not empty."
    )
    errors: list[UserError] = strawberry.field(description="Why nothing was changed.")


@strawberry.input(description="Tenant settings to change; omitted ones keep their value.")
class TenantSettingsInput:
    mfa_required: bool | None = strawberry.field(
        default=strawberry.UNSET, description="Require a second factor of every user."
    )
    session_lifetime_hours: int | None = strawberry.field(
        default=strawberry.UNSET,
        description="Session lifetime, 1-2160 hours (90 days); null: the server's default. "
        "Applies to sessions opened from now on.",
    )
    default_task_status: TaskStatus | None = strawberry.field(
        default=strawberry.UNSET, description="The status of new tasks given none."
    )
    cors_origins: list[str] | None = strawberry.field(
        default=strawberry.UNSET,
        description="Replaces the browser origins allowed to call the API on the tenant's own "
        "host: at most 20, each `scheme://host[:port]` (http or https, no path, no wildcard), "
        "e.g. `https://app.example.com`; `[]` allows none beyond the server's own list.",
    )


@strawberry.input(description="A new organisation and its first user, its owner.")
class SignUpInput:
    organization_name: str = strawberry.field(description="Display name of the organisation.")
    slug: str = strawberry.field(
        description="URL-safe unique name (1-63 lowercase letters, digits, hyphens), used to "
        "sign in and as the subdomain."
    )
    email: str = strawberry.field(description="The owner's email, to sign in with.")
    password: str = strawberry.field(description="The owner's password.")
    display_name: str | None = strawberry.field(
        default=None, description="The owner's name (default: from the email)."
    )


@strawberry.type(description="The new organisation, and its owner signed in (as by `signIn`).")
class SignUpPayload(SignInPayload):
    tenant_id: strawberry.ID | None = strawberry.field(
        default=None, description="The new tenant's global ID; null when `errors` is not empty."
    )
    slug: str | None = strawberry.field(
        default=None, description="The new tenant's slug; null when `errors` is not empty."
    )


@strawberry.type
class TenantMutations:
    @strawberry.mutation(
        description="Create an organisation on the default plan with yourself as its owner, "
        "and sign in. Only where the server enables self-service sign-up; attempts are "
        "limited per client address.",
        extensions=not_while_impersonating(public()),
    )
    async def sign_up(
        self,
        info: Info,
        input: Annotated[SignUpInput, strawberry.argument(description="The organisation.")],
    ) -> SignUpPayload:
        ctx = info.context
        request = SignUp(
            organization_name=input.organization_name,
            slug=input.slug,
            email=input.email,
            password=input.password,
            display_name=input.display_name,
        )
        outcome = await settle(
            lambda: sign_up(
                ctx.database,
                ctx.tokens,
                ctx.settings,
                ctx.store,
                mailer_for(ctx.settings),
                ctx.request_meta,
                request,
            )
        )
        done = outcome.value
        if done is None:
            return SignUpPayload.failed(outcome.errors)
        payload = SignUpPayload.of_result(done.sign_in)
        payload.tenant_id = strawberry.ID(encode_global_id("Tenant", done.tenant.id))
        payload.slug = done.tenant.slug
        return payload

    @strawberry.mutation(
        description="Change the tenant's settings: MFA required, session lifetime, default task "
        "status, allowed browser origins.",
        extensions=not_while_impersonating(requires(Permission.TENANT_SETTINGS)),
    )
    async def update_tenant_settings(
        self,
        info: Info,
        input: Annotated[TenantSettingsInput, strawberry.argument(description="The changes.")],
    ) -> TenantPayload:
        meta, store = info.context.request_meta, info.context.store

        def changes() -> service.SettingsChanges:
            return service.SettingsChanges(
                mfa_required=patch(input.mfa_required, field="mfaRequired"),
                session_lifetime_hours=patch_nullable(input.session_lifetime_hours),
                default_task_status=patch(input.default_task_status, field="defaultTaskStatus"),
                cors_origins=patch(input.cors_origins, field="corsOrigins"),
            )

        outcome = await attempt(
            info,
            lambda s, actor: service.update_settings(
                s, meta, actor=actor, store=store, changes=changes()
            ),
        )
        return TenantPayload(tenant=Tenant.maybe(outcome.value), errors=outcome.errors)

    @strawberry.mutation(
        description="Require a second factor of every user of the tenant (or stop requiring "
        "it). Users without one must enrol at their next sign-in.",
        extensions=not_while_impersonating(requires(Permission.TENANT_SETTINGS)),
    )
    async def set_mfa_required(
        self,
        info: Info,
        required: Annotated[bool, strawberry.argument(description="Whether MFA is required.")],
    ) -> TenantPayload:
        meta = info.context.request_meta
        outcome = await attempt(
            info,
            lambda s, actor: service.set_mfa_required(s, meta, actor=actor, required=required),
        )
        return TenantPayload(tenant=Tenant.maybe(outcome.value), errors=outcome.errors)
