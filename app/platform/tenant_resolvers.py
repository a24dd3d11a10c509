"""The tenant lifecycle for platform administrators: the tenant directory, provisioning,
changes, feature flags, suspension, deletion and purge (app/platform/lifecycle.py)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.accounts.mailer import mailer_for
from app.api.context import Info
from app.api.mutations import patch, settle
from app.api.permissions import requires_platform
from app.api.relations import connection
from app.api.relay import ObjectId, parse_id
from app.platform import directory, lifecycle
from app.platform.permissions import PlatformPermission
from app.platform.types import (
    TENANT_DIRECTORY,
    CreateTenantPayload,
    PlatformTenant,
    PurgeTenantPayload,
    TenantFeaturesPayload,
)
from app.tenants.plans import DEFAULT_PLAN
from app.tenants.resolvers import TenantPayload
from app.tenants.types import FeatureFlagType, Tenant


@strawberry.input(description="The first owner of a new tenant.")
class TenantOwnerInput:
    email: str = strawberry.field(description="The owner's email.")
    display_name: str | None = strawberry.field(
        default=None, description="Display name (default: the email's local part)."
    )
    password: str | None = strawberry.field(
        default=None,
        description="An initial password. Absent: the owner is invited by mail and chooses one.",
    )


@strawberry.input(description="A new tenant, provisioned in one transaction.")
class CreateTenantInput:
    slug: str = strawberry.field(
        description="Lowercase letters, digits and hyphens, 1-63; unique; not a reserved name."
    )
    name: str = strawberry.field(description="The organisation's display name.")
    plan: str = strawberry.field(default=DEFAULT_PLAN, description="free, team or enterprise.")
    owner: TenantOwnerInput = strawberry.field(description="The first owner.")
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="Retrying with the same key returns the tenant the first request created "
        "(the same key with different input is a CONFLICT).",
    )
    reason: str | None = strawberry.field(
        default=None, description="Why, for the audit logs (at most 500 characters)."
    )


@strawberry.input(description="A tenant to suspend, and why.")
class SuspendTenantInput:
    id: strawberry.ID = strawberry.field(description="The tenant's global ID.")
    reason: str = strawberry.field(description="Why, for the audit logs (1-500 characters).")


@strawberry.input(description="A suspended tenant to reactivate.")
class ReactivateTenantInput:
    id: strawberry.ID = strawberry.field(description="The tenant's global ID.")
    reason: str | None = strawberry.field(
        default=None, description="Why, for the audit logs (at most 500 characters)."
    )


@strawberry.input(description="A tenant to delete (restorable during the retention period).")
class DeleteTenantInput:
    id: strawberry.ID = strawberry.field(description="The tenant's global ID.")
    reason: str = strawberry.field(description="Why, for the audit logs (1-500 characters).")


@strawberry.input(description="A deleted tenant to restore.")
class RestoreTenantInput:
    id: strawberry.ID = strawberry.field(description="The tenant's global ID.")
    reason: str | None = strawberry.field(
        default=None, description="Why, for the audit logs (at most 500 characters)."
    )


@strawberry.input(description="A tenant's new name or plan; omitted fields keep their value.")
class UpdateTenantInput:
    id: strawberry.ID = strawberry.field(description="The tenant's global ID.")
    name: str | None = strawberry.field(default=strawberry.UNSET, description="New name.")
    plan: str | None = strawberry.field(
        default=strawberry.UNSET, description="New plan: free, team or enterprise."
    )
    reason: str | None = strawberry.field(
        default=None, description="Why, for the audit logs (at most 500 characters)."
    )


@strawberry.input(description="A feature flag to set for one tenant.")
class SetTenantFeatureInput:
    id: strawberry.ID = strawberry.field(description="The tenant's global ID.")
    key: str = strawberry.field(description="The feature: 1-64 of a-z, 0-9, '.', '_', '-'.")
    enabled: bool = strawberry.field(default=True, description="On (default) or off.")


@strawberry.input(description="A feature flag to remove from one tenant.")
class UnsetTenantFeatureInput:
    id: strawberry.ID = strawberry.field(description="The tenant's global ID.")
    key: str = strawberry.field(description="The feature.")


async def _set_feature(
    info: Info, tenant: strawberry.ID, key: str, enabled: bool | None
) -> TenantFeaturesPayload:
    ctx = info.context
    actor = await ctx.platform_actor()
    outcome = await settle(
        lambda: lifecycle.set_feature(
            ctx.database,
            ctx.request_meta,
            actor=actor,
            tenant_id=parse_id(tenant, Tenant),
            key=key,
            enabled=enabled,
        ),
    )
    flags = outcome.value
    return TenantFeaturesPayload(
        features=None if flags is None else [FeatureFlagType.of(f) for f in flags],
        errors=outcome.errors,
    )


@strawberry.input(description="A deleted tenant to erase for good.")
class PurgeTenantInput:
    id: strawberry.ID = strawberry.field(description="The tenant's global ID.")
    reason: str | None = strawberry.field(
        default=None, description="Why, for the platform audit log (at most 500 characters)."
    )


async def _change(
    info: Info, tenant: strawberry.ID, change: lifecycle.Change, reason: str | None
) -> TenantPayload:
    ctx = info.context
    actor = await ctx.platform_actor()
    outcome = await settle(
        lambda: lifecycle.change_status(
            ctx.database,
            ctx.tokens,
            ctx.store,
            ctx.settings,
            ctx.request_meta,
            actor=actor,
            tenant_id=parse_id(tenant, Tenant),
            change=change,
            reason=reason,
        ),
    )
    return TenantPayload(tenant=Tenant.maybe(outcome.value), errors=outcome.errors)


@strawberry.type
class TenantDirectoryQueries:
    tenants = connection(
        TENANT_DIRECTORY,
        nullable=True,
        description="Every tenant, newest first, filtered by status, plan or a text in its name "
        "or slug.",
    )

    @strawberry.field(
        description="One tenant by its global ID; null if there is none.",
        extensions=requires_platform(PlatformPermission.TENANT_READ),
    )
    async def platform_tenant(self, info: Info, id: ObjectId) -> PlatformTenant | None:
        tenant = await directory.get_tenant(info.context.session, parse_id(id, Tenant))
        return None if tenant is None else PlatformTenant.from_model(tenant)


@strawberry.type
class TenantLifecycleMutations:
    @strawberry.mutation(
        description="Create a tenant with its system roles and first owner, in one transaction.",
        extensions=requires_platform(PlatformPermission.TENANT_CREATE),
    )
    async def create_tenant(
        self,
        info: Info,
        input: Annotated[CreateTenantInput, strawberry.argument(description="The tenant.")],
    ) -> CreateTenantPayload:
        ctx = info.context
        owner = input.owner
        actor = await ctx.platform_actor()
        outcome = await settle(
            lambda: lifecycle.create_tenant(
                ctx.database,
                ctx.store,
                mailer_for(ctx.settings),
                ctx.settings,
                ctx.request_meta,
                actor=actor,
                slug=input.slug,
                name=input.name,
                plan=input.plan,
                owner=lifecycle.OwnerSpec(owner.email, owner.display_name, owner.password),
                idempotency_key=input.idempotency_key,
                reason=input.reason,
            ),
        )
        done = outcome.value
        return CreateTenantPayload(
            tenant=None if done is None else Tenant.from_model(done.tenant),
            created=done is not None and done.created,
            errors=outcome.errors,
        )

    @strawberry.mutation(
        description="Rename a tenant or move it to another plan.",
        extensions=requires_platform(PlatformPermission.TENANT_CREATE),
    )
    async def update_tenant(
        self,
        info: Info,
        input: Annotated[UpdateTenantInput, strawberry.argument(description="The changes.")],
    ) -> TenantPayload:
        ctx = info.context
        actor = await ctx.platform_actor()
        outcome = await settle(
            lambda: lifecycle.update_tenant(
                ctx.database,
                ctx.store,
                ctx.request_meta,
                actor=actor,
                tenant_id=parse_id(input.id, Tenant),
                name=patch(input.name, field="name"),
                plan=patch(input.plan, field="plan"),
                reason=input.reason,
            ),
        )
        return TenantPayload(tenant=Tenant.maybe(outcome.value), errors=outcome.errors)

    @strawberry.mutation(
        description="Switch a feature on or off for one tenant; its users see it in "
        "`tenant.features`.",
        extensions=requires_platform(PlatformPermission.TENANT_CREATE),
    )
    async def set_tenant_feature(
        self,
        info: Info,
        input: Annotated[SetTenantFeatureInput, strawberry.argument(description="The flag.")],
    ) -> TenantFeaturesPayload:
        return await _set_feature(info, input.id, input.key, input.enabled)

    @strawberry.mutation(
        description="Remove a feature flag from one tenant (the product's default applies).",
        extensions=requires_platform(PlatformPermission.TENANT_CREATE),
    )
    async def unset_tenant_feature(
        self,
        info: Info,
        input: Annotated[UnsetTenantFeatureInput, strawberry.argument(description="The flag.")],
    ) -> TenantFeaturesPayload:
        return await _set_feature(info, input.id, input.key, None)

    @strawberry.mutation(
        description="Suspend a tenant: its users are refused (TENANT_SUSPENDED) from their next "
        "request, sign-in or refresh, and every session of theirs ends. Other tenants are "
        "unaffected.",
        extensions=requires_platform(PlatformPermission.TENANT_SUSPEND),
    )
    async def suspend_tenant(
        self,
        info: Info,
        input: Annotated[SuspendTenantInput, strawberry.argument(description="The tenant.")],
    ) -> TenantPayload:
        return await _change(info, input.id, lifecycle.Change.SUSPEND, input.reason)

    @strawberry.mutation(
        description="Reactivate a suspended tenant: its users sign in again (sessions ended by "
        "the suspension stay ended).",
        extensions=requires_platform(PlatformPermission.TENANT_SUSPEND),
    )
    async def reactivate_tenant(
        self,
        info: Info,
        input: Annotated[ReactivateTenantInput, strawberry.argument(description="The tenant.")],
    ) -> TenantPayload:
        return await _change(info, input.id, lifecycle.Change.REACTIVATE, input.reason)

    @strawberry.mutation(
        description="Delete a tenant: blocked like a suspended one, restorable with "
        "restoreTenant during the retention period, then only purged.",
        extensions=requires_platform(PlatformPermission.TENANT_DELETE),
    )
    async def delete_tenant(
        self,
        info: Info,
        input: Annotated[DeleteTenantInput, strawberry.argument(description="The tenant.")],
    ) -> TenantPayload:
        return await _change(info, input.id, lifecycle.Change.DELETE, input.reason)

    @strawberry.mutation(
        description="Restore a deleted tenant within the retention period: it is active again "
        "(sessions ended by the deletion stay ended).",
        extensions=requires_platform(PlatformPermission.TENANT_DELETE),
    )
    async def restore_tenant(
        self,
        info: Info,
        input: Annotated[RestoreTenantInput, strawberry.argument(description="The tenant.")],
    ) -> TenantPayload:
        return await _change(info, input.id, lifecycle.Change.RESTORE, input.reason)

    @strawberry.mutation(
        description="Erase a deleted tenant: every row of it in every tenant table, in batches, "
        "then the tenant itself. It cannot be restored afterwards; the platform audit log "
        "keeps the record (`tenant.purged`, with the rows deleted per table).",
        extensions=requires_platform(PlatformPermission.TENANT_DELETE),
    )
    async def purge_tenant(
        self,
        info: Info,
        input: Annotated[PurgeTenantInput, strawberry.argument(description="The tenant.")],
    ) -> PurgeTenantPayload:
        ctx = info.context
        actor = await ctx.platform_actor()
        outcome = await settle(
            lambda: lifecycle.purge_tenant(
                ctx.database,
                ctx.store,
                ctx.request_meta,
                actor=actor,
                tenant_id=parse_id(input.id, Tenant),
                reason=input.reason,
            ),
        )
        done = outcome.value
        return PurgeTenantPayload(
            purged_id=None if done is None else input.id,
            rows_deleted=0 if done is None else done.total,
            errors=outcome.errors,
        )
