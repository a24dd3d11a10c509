"""Tenant queries."""

from __future__ import annotations

import strawberry

from app.api.context import Info
from app.tenants import service
from app.tenants.types import Tenant


@strawberry.type
class TenantQueries:
    @strawberry.field(description="The tenant of the signed-in user.")
    async def tenant(self, info: Info) -> Tenant:
        info.context.require_principal()
        return Tenant.from_model(await service.current_tenant(info.context.session))
