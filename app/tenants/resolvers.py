"""Tenant queries."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.api.context import Info
from app.api.mutations import UserError, attempt
from app.api.permissions import requires, signed_in
from app.rbac.permissions import Permission
from app.tenants import service
from app.tenants.types import Tenant


@strawberry.type
class TenantQueries:
    @strawberry.field(description="The tenant of the signed-in user.", extensions=signed_in())
    async def tenant(self, info: Info) -> Tenant:
        return Tenant.from_model(await service.current_tenant(info.context.session))


@strawberry.type(description="The result of a mutation of a tenant (settings, lifecycle).")
class TenantPayload:
    tenant: Tenant | None = strawberry.field(
        description="The tenant as it is now; null when `errors` is not empty."
    )
    errors: list[UserError] = strawberry.field(description="Why nothing was changed.")


@strawberry.type
class TenantMutations:
    @strawberry.mutation(
        description="Require a second factor of every user of the tenant (or stop requiring "
        "it). Users without one must enrol at their next sign-in.",
        extensions=requires(Permission.TENANT_SETTINGS),
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
