"""Identity providers (admin) and token exchange (anyone holding a trusted ID token)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.api.context import Info
from app.api.mutations import DeletePayload, attempt, patch, settle
from app.api.permissions import not_while_impersonating, public, requires
from app.api.relay import ObjectId, parse_id
from app.auth.service import SignInResult
from app.auth.types import SignInPayload
from app.core.actor import Actor
from app.core.db import Session
from app.core.settings import Settings
from app.identity import exchange, models, service
from app.identity.jwks import JwksCache
from app.identity.models import ProviderRole
from app.identity.service import ProviderInput
from app.identity.types import IdentityProvider, IdentityProviderPayload
from app.rbac.permissions import Permission
from app.tenants.resolution import tenant_to_use

_CACHE_STATE = "identity_jwks"


@strawberry.input(description="A new trusted OIDC issuer.")
class AddIdentityProviderInput:
    name: str = strawberry.field(description="A label for people, 1-200 characters.")
    issuer: str = strawberry.field(description="The exact `iss` of the provider's ID tokens.")
    audience: str = strawberry.field(description="The `aud` the tokens must carry.")
    jwks_url: str = strawberry.field(description="The provider's JWKS URL (https).")
    subject_claim: str = strawberry.field(default="sub", description="Claim naming the user.")
    email_claim: str = strawberry.field(default="email", description="Claim with the email.")
    name_claim: str = strawberry.field(default="name", description="Claim with the name.")
    create_users: bool = strawberry.field(
        default=False, description="Create unknown users (with a verified email) on sign-in."
    )
    default_role: ProviderRole = strawberry.field(
        default=ProviderRole.MEMBER, description="Role of created users."
    )


@strawberry.input(description="Changes to an identity provider; omitted fields are kept.")
class UpdateIdentityProviderInput:
    id: strawberry.ID = strawberry.field(description="The provider to change.")
    name: str | None = strawberry.field(default=strawberry.UNSET, description="New label.")
    issuer: str | None = strawberry.field(default=strawberry.UNSET, description="New issuer.")
    audience: str | None = strawberry.field(default=strawberry.UNSET, description="New audience.")
    jwks_url: str | None = strawberry.field(default=strawberry.UNSET, description="New JWKS URL.")
    subject_claim: str | None = strawberry.field(default=strawberry.UNSET, description="Claim.")
    email_claim: str | None = strawberry.field(default=strawberry.UNSET, description="Claim.")
    name_claim: str | None = strawberry.field(default=strawberry.UNSET, description="Claim.")
    create_users: bool | None = strawberry.field(
        default=strawberry.UNSET, description="Create unknown users on sign-in."
    )
    default_role: ProviderRole | None = strawberry.field(
        default=strawberry.UNSET, description="Role of created users."
    )
    enabled: bool | None = strawberry.field(
        default=strawberry.UNSET, description="Accept the provider's tokens (or stop for now)."
    )


@strawberry.input(description="An ID token to exchange for Tenantry tokens.")
class ExchangeTokenInput:
    tenant: str | None = strawberry.field(
        default=None,
        description="The organisation's slug (or ID). Optional when the request names it by "
        "its subdomain or an X-Tenant header; both given must name the same one.",
    )
    id_token: str = strawberry.field(description="An ID token of a provider the tenant trusts.")


def jwks_cache(info: Info) -> JwksCache:
    """The application's provider-key cache, built once by `install_jwks_cache`."""
    cache = getattr(info.context.request.app.state, _CACHE_STATE)
    assert isinstance(cache, JwksCache)
    return cache


def install_jwks_cache(state: object, settings: Settings) -> None:
    """One cache per application, made at start-up (app/main.py)."""
    setattr(state, _CACHE_STATE, JwksCache(allow_insecure=_insecure_allowed(settings)))


def _insecure_allowed(settings: Settings) -> bool:
    # http and loopback JWKS URLs for local providers in development only.
    return settings.environment == "development"


def _allow_insecure(info: Info) -> bool:
    return _insecure_allowed(info.context.settings)


@strawberry.type
class IdentityQueries:
    @strawberry.field(
        description="The tenant's trusted identity providers.",
        extensions=requires(Permission.TENANT_SETTINGS),
    )
    async def identity_providers(self, info: Info) -> list[IdentityProvider] | None:
        found = await service.list_providers(info.context.session, await info.context.actor())
        return [IdentityProvider.from_model(p) for p in found]


@strawberry.type
class IdentityMutations:
    @strawberry.mutation(
        description="Trust an OIDC issuer for `exchangeToken`.",
        extensions=not_while_impersonating(requires(Permission.TENANT_SETTINGS)),
    )
    async def add_identity_provider(
        self,
        info: Info,
        input: Annotated[AddIdentityProviderInput, strawberry.argument(description="Provider.")],
    ) -> IdentityProviderPayload:
        given = ProviderInput(
            name=input.name,
            issuer=input.issuer,
            audience=input.audience,
            jwks_url=input.jwks_url,
            subject_claim=input.subject_claim,
            email_claim=input.email_claim,
            name_claim=input.name_claim,
            create_users=input.create_users,
            default_role=input.default_role,
        )
        meta, insecure = info.context.request_meta, _allow_insecure(info)
        outcome = await attempt(
            info,
            lambda s, actor: service.add_provider(s, meta, actor, given, allow_insecure=insecure),
        )
        return IdentityProviderPayload(
            identity_provider=IdentityProvider.maybe(outcome.value), errors=outcome.errors
        )

    @strawberry.mutation(
        description="Change an identity provider's settings.",
        extensions=not_while_impersonating(requires(Permission.TENANT_SETTINGS)),
    )
    async def update_identity_provider(
        self,
        info: Info,
        input: Annotated[
            UpdateIdentityProviderInput, strawberry.argument(description="Provider and changes.")
        ],
    ) -> IdentityProviderPayload:
        meta, insecure = info.context.request_meta, _allow_insecure(info)

        async def run(s: Session, actor: Actor) -> models.IdentityProvider:
            given = ProviderInput(
                name=patch(input.name, field="name"),
                issuer=patch(input.issuer, field="issuer"),
                audience=patch(input.audience, field="audience"),
                jwks_url=patch(input.jwks_url, field="jwksUrl"),
                subject_claim=patch(input.subject_claim, field="subjectClaim"),
                email_claim=patch(input.email_claim, field="emailClaim"),
                name_claim=patch(input.name_claim, field="nameClaim"),
                create_users=patch(input.create_users, field="createUsers"),
                default_role=patch(input.default_role, field="defaultRole"),
                enabled=patch(input.enabled, field="enabled"),
            )
            provider_id = parse_id(input.id, IdentityProvider)
            return await service.update_provider(
                s, meta, actor, provider_id, given, allow_insecure=insecure
            )

        outcome = await attempt(info, run)
        return IdentityProviderPayload(
            identity_provider=IdentityProvider.maybe(outcome.value), errors=outcome.errors
        )

    @strawberry.mutation(
        description="Stop trusting an identity provider. Its users stay.",
        extensions=not_while_impersonating(requires(Permission.TENANT_SETTINGS)),
    )
    async def remove_identity_provider(self, info: Info, id: ObjectId) -> DeletePayload:
        meta = info.context.request_meta
        outcome = await attempt(
            info,
            lambda s, actor: service.remove_provider(
                s, meta, actor, parse_id(id, IdentityProvider)
            ),
        )
        return DeletePayload.of(outcome, id)

    @strawberry.mutation(
        description="Exchange an ID token of a provider the tenant trusts for Tenantry tokens. "
        "Any problem gives the same INVALID_CREDENTIALS error.",
        extensions=not_while_impersonating(public()),
    )
    async def exchange_token(
        self,
        info: Info,
        input: Annotated[ExchangeTokenInput, strawberry.argument(description="Tenant and token.")],
    ) -> SignInPayload:
        ctx = info.context

        async def run() -> SignInResult:
            return await exchange.exchange_token(
                ctx.database,
                ctx.tokens,
                ctx.settings,
                ctx.store,
                ctx.request_meta,
                jwks_cache(info),
                tenant=await tenant_to_use(ctx.database, ctx.store, input.tenant, ctx.named_tenant),
                id_token=input.id_token,
            )

        return SignInPayload.of_outcome(await settle(run))
