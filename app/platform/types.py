"""GraphQL types of platform administration."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Self
from uuid import UUID

import strawberry

from app.api.context import Info
from app.api.mutations import UserError
from app.api.permissions import Rule, needs_platform
from app.api.relations import Argument, listing, result
from app.api.relay import copy_model, encode_global_id
from app.audit.types import AuditEntryFields, audit_listing
from app.core.tables import Ordering, Table
from app.platform import directory
from app.platform.impersonation import Impersonation
from app.platform.models import PLATFORM_AUDIT_LOG, AdminStatus, PlatformAdmin
from app.platform.permissions import PlatformPermission
from app.platform.service import PlatformSignIn
from app.tenants.models import TENANTS, TenantStatus
from app.tenants.types import FeatureFlagType, Tenant

strawberry.enum(AdminStatus, name="PlatformAdminStatus", description="Whether it may sign in.")


@strawberry.type(
    name="PlatformAdmin",
    description="A platform administrator: runs Tenantry itself and belongs to no tenant.",
)
class PlatformAdminType:
    pk: strawberry.Private[UUID]
    email: str = strawberry.field(description="Signs in with it (any case).")
    name: str = strawberry.field(description="Display name.")
    permissions: list[str] = strawberry.field(
        description="Platform permissions held now (docs/permissions.md)."
    )
    status: AdminStatus = strawberry.field(description="ACTIVE or DISABLED.")
    created_at: datetime = strawberry.field(description="When an operator created it.")
    last_sign_in_at: datetime | None = strawberry.field(description="The latest sign-in.")

    @strawberry.field(description="The administrator's id (raw UUID).")
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.pk))

    @classmethod
    def of(cls, admin: PlatformAdmin) -> Self:
        return copy_model(cls, admin)


@strawberry.type(description="One recorded event of the platform (append-only).")
class PlatformAuditLogEntry(AuditEntryFields):
    pk: strawberry.Private[UUID]
    table: ClassVar[Table[Any]] = PLATFORM_AUDIT_LOG
    read_rule: ClassVar[Rule | None] = needs_platform(PlatformPermission.PLATFORM_AUDIT)

    @strawberry.field(description="The acting administrator's id (raw UUID), if one acted.")
    def actor_admin_id(self) -> strawberry.ID | None:
        return None if self.actor_id is None else strawberry.ID(str(self.actor_id))

    @classmethod
    def from_model(cls, model: Any) -> Self:
        return copy_model(cls, model)


@strawberry.type(description="A platform access token, or why sign-in failed.")
class PlatformSignInPayload:
    access_token: str | None = strawberry.field(
        description="Send as `Authorization: Bearer <token>` to this endpoint. There is no "
        "refresh token: sign in again when it expires. Null when `errors` is not empty."
    )
    token_type: str = strawberry.field(default="Bearer", description="Always `Bearer`.")
    expires_at: datetime | None = strawberry.field(description="When the token expires.")
    admin: PlatformAdminType | None = strawberry.field(description="Who signed in.")
    errors: list[UserError] = strawberry.field(description="Why sign-in failed.")

    @classmethod
    def of(cls, done: PlatformSignIn) -> Self:
        return cls(
            access_token=done.access_token.token,
            expires_at=datetime.fromtimestamp(done.access_token.expires_at, UTC),
            admin=PlatformAdminType.of(done.admin),
            errors=[],
        )

    @classmethod
    def failed(cls, errors: list[UserError]) -> Self:
        return cls(access_token=None, expires_at=None, admin=None, errors=errors)


@strawberry.type(description="The result of ending the platform session.")
class PlatformSignOutPayload:
    signed_out: bool = strawberry.field(description="The session has ended.")
    errors: list[UserError] = strawberry.field(description="Why nothing was changed.")


@strawberry.type(description="The tenant user an impersonation token acts as.")
class ImpersonatedUser:
    id: strawberry.ID = strawberry.field(description="The user's global ID (as in the tenant).")
    email: str = strawberry.field(description="The user's email.")
    display_name: str = strawberry.field(description="The user's display name.")


@strawberry.type(description="A break-glass impersonation token, or why none was issued.")
class ImpersonateUserPayload:
    access_token: str | None = strawberry.field(
        description="A tenant access token of the user that names the administrator (`act` "
        "claim). Send as `Authorization: Bearer <token>`. There is no refresh token; it ends "
        "at `expiresAt`, or earlier when the platform session does. Null when `errors` is not "
        "empty."
    )
    token_type: str = strawberry.field(default="Bearer", description="Always `Bearer`.")
    expires_at: datetime | None = strawberry.field(description="When the token expires.")
    user: ImpersonatedUser | None = strawberry.field(description="Whom the token acts as.")
    tenant: Tenant | None = result(Tenant, description="The user's tenant.")
    admin_id: strawberry.ID | None = strawberry.field(
        description="The administrator acting (raw UUID), as the tenant's audit log names them."
    )
    errors: list[UserError] = strawberry.field(description="Why no token was issued.")

    @classmethod
    def of(cls, done: Impersonation) -> Self:
        return cls(
            access_token=done.access_token.token,
            expires_at=datetime.fromtimestamp(done.access_token.expires_at, UTC),
            user=ImpersonatedUser(
                id=strawberry.ID(encode_global_id("User", done.user.id)),
                email=done.user.email,
                display_name=done.user.display_name,
            ),
            tenant=Tenant.from_model(done.tenant),
            admin_id=strawberry.ID(str(done.admin_id)),
            errors=[],
        )

    @classmethod
    def failed(cls, errors: list[UserError]) -> Self:
        return cls(
            access_token=None, expires_at=None, user=None, tenant=None, admin_id=None, errors=errors
        )


@strawberry.type(description="The result of createTenant.")
class CreateTenantPayload:
    tenant: Tenant | None = result(
        Tenant, description="The tenant; null when `errors` is not empty."
    )
    created: bool = strawberry.field(
        description="False when an earlier request with the same idempotency key created it "
        "(this one changed nothing)."
    )
    errors: list[UserError] = strawberry.field(description="Why nothing was created.")


@strawberry.type(description="The result of purgeTenant.")
class PurgeTenantPayload:
    purged_id: strawberry.ID | None = strawberry.field(
        description="The global ID of the purged tenant; null when `errors` is not empty."
    )
    rows_deleted: int = strawberry.field(
        description="Rows deleted, in every tenant table together (the tenant row included)."
    )
    errors: list[UserError] = strawberry.field(description="Why nothing was purged.")


@strawberry.type(description="How much a tenant holds and when it was last used.")
class TenantUsage:
    users: int = strawberry.field(description="Users, in any status.")
    projects: int = strawberry.field(description="Projects, archived ones included.")
    tasks: int = strawberry.field(description="Tasks.")
    storage_bytes: int = strawberry.field(
        description="Estimated size of its data: its rows in the content tables and the audit "
        "log (indexes and free space not counted)."
    )
    last_activity_at: datetime | None = strawberry.field(
        description="The latest session use or audited action; null if none."
    )


@strawberry.type(description="A tenant as platform administrators see it (tenant:read).")
class PlatformTenant:
    pk: strawberry.Private[UUID]
    table: ClassVar[Table[Any]] = TENANTS
    read_rule: ClassVar[Rule | None] = needs_platform(PlatformPermission.TENANT_READ)
    slug: str = strawberry.field(description="URL-safe unique name.")
    name: str = strawberry.field(description="Display name of the organisation.")
    status: TenantStatus = strawberry.field(description="Lifecycle state.")
    plan: str = strawberry.field(description="The subscription plan.")
    mfa_required: bool = strawberry.field(description="Every user must use a second factor.")
    created_at: datetime = strawberry.field(description="When the tenant was created.")
    updated_at: datetime = strawberry.field(description="When the tenant last changed.")
    deleted_at: datetime | None = strawberry.field(
        description="When it was deleted; restorable until the retention period ends."
    )

    @strawberry.field(description="The tenant's global ID (as lifecycle mutations take it).")
    def id(self) -> strawberry.ID:
        return strawberry.ID(encode_global_id(Tenant.graphql_name(), self.pk))

    @strawberry.field(description="Users, projects, tasks, storage and last activity.")
    async def usage(self, info: Info) -> TenantUsage:
        found = await info.context.loaders.batch("tenant_usage", directory.usage).load(self.pk)
        assert found is not None
        return TenantUsage(**vars(found))

    @strawberry.field(
        description="The feature flags set for this tenant, by key (unset ones are absent)."
    )
    async def features(self, info: Info) -> list[FeatureFlagType]:
        loader = info.context.loaders.batch("tenant_features", directory.feature_flags)
        return [FeatureFlagType.of(f) for f in await loader.load(self.pk) or []]

    @classmethod
    def from_model(cls, model: Any) -> Self:
        return copy_model(cls, model)


PLATFORM_AUDIT_LISTING = audit_listing(PlatformAuditLogEntry)

# The tenant directory: newest first, filtered by status, plan or a text in name or slug.
TENANT_DIRECTORY = listing(
    PlatformTenant,
    order=Ordering("t.created_at", "timestamptz", descending=True),
    arguments=[
        Argument("status", TenantStatus, "Only tenants in this state."),
        Argument("plan", str, "Only tenants on this plan."),
        Argument("search", str, "Text in the name or slug, in any case."),
    ],
    filters=directory.filters,
)


@strawberry.type(description="A tenant's feature flags after a change.")
class TenantFeaturesPayload:
    features: list[FeatureFlagType] | None = strawberry.field(
        description="Every flag of the tenant, by key; null when `errors` is not empty."
    )
    errors: list[UserError] = strawberry.field(description="Why nothing was changed.")
