"""GraphQL types of identity providers."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import strawberry

from app.api.mutations import UserError
from app.api.permissions import Rule, needs
from app.api.relations import result
from app.api.relay import Node
from app.core.tables import Table
from app.identity.models import IDENTITY_PROVIDERS, ProviderRole
from app.rbac.permissions import Permission

strawberry.enum(ProviderRole, description="The role of users an identity provider creates.")


@strawberry.type(
    description="An external OIDC issuer the tenant trusts: its ID tokens can be exchanged "
    "for Tenantry tokens with `exchangeToken`. Visible with `tenant:settings` only."
)
class IdentityProvider(Node):
    table: ClassVar[Table[Any]] = IDENTITY_PROVIDERS
    read_rule: ClassVar[Rule | None] = needs(Permission.TENANT_SETTINGS)
    name: str = strawberry.field(description="A label for people, e.g. `Corporate SSO`.")
    issuer: str = strawberry.field(description="The exact `iss` of the provider's tokens.")
    audience: str = strawberry.field(
        description="The `aud` the tokens must carry (the client id at the provider)."
    )
    jwks_url: str = strawberry.field(description="Where the provider publishes its public keys.")
    subject_claim: str = strawberry.field(description="The claim naming the user (`sub`).")
    email_claim: str = strawberry.field(description="The claim holding the email (`email`).")
    name_claim: str = strawberry.field(description="The claim holding the display name.")
    create_users: bool = strawberry.field(
        description="Whether an unknown user with a verified email is created on first sign-in."
    )
    default_role: ProviderRole = strawberry.field(description="The role of created users.")
    enabled: bool = strawberry.field(description="Whether its tokens are accepted now.")
    created_at: datetime = strawberry.field(description="When the provider was added.")
    updated_at: datetime = strawberry.field(description="When its settings last changed.")


@strawberry.type(description="The result of adding or changing an identity provider.")
class IdentityProviderPayload:
    identity_provider: IdentityProvider | None = result(
        IdentityProvider, description="The provider as it is now; null when `errors` is not empty."
    )
    errors: list[UserError] = strawberry.field(description="Why nothing was changed.")
