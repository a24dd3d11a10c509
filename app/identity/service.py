"""Managing a tenant's trusted identity providers.

Listing, adding, changing and removing providers needs `tenant:settings`; every change is
audited.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from app.audit.service import record
from app.core import validation
from app.core.actor import Actor, refuse_impersonation
from app.core.db import Session
from app.core.errors import Conflict, Invalid, NotFound
from app.core.request_meta import RequestMeta
from app.core.tables import delete_row, insert_row, lock_row, update_row
from app.core.validation import MISSING, Patch
from app.identity import queries
from app.identity.jwks import check_url
from app.identity.models import IDENTITY_PROVIDERS, IdentityProvider, ProviderRole
from app.rbac.permissions import Permission

_URL_MAX = 2000
_CLAIM = re.compile(r"^[A-Za-z0-9_:./-]{1,100}$")


@dataclass(frozen=True)
class ProviderInput:
    """A provider's settings as given; `Patch` fields may be MISSING in updates."""

    name: Patch[str] = MISSING
    issuer: Patch[str] = MISSING
    audience: Patch[str] = MISSING
    jwks_url: Patch[str] = MISSING
    subject_claim: Patch[str] = MISSING
    email_claim: Patch[str] = MISSING
    name_claim: Patch[str] = MISSING
    create_users: Patch[bool] = MISSING
    default_role: Patch[ProviderRole] = MISSING
    enabled: Patch[bool] = MISSING


def _token(value: str, field: str) -> str:
    cleaned = validation.text(value, field=field, max_length=_URL_MAX)
    if any(c.isspace() for c in cleaned):
        raise Invalid(f"`{field}` must not contain spaces", field=field)
    return cleaned


def _claim(value: str, field: str) -> str:
    if not _CLAIM.match(value):
        raise Invalid(f"`{field}` is not a valid claim name", field=field)
    return value


def _columns(given: ProviderInput, *, allow_insecure: bool) -> dict[str, object]:
    """Validated column values of the given fields."""
    columns: dict[str, object] = {}
    if given.name is not MISSING:
        columns["name"] = validation.text(given.name, field="name", max_length=200)
    if given.issuer is not MISSING:
        columns["issuer"] = _token(given.issuer, "issuer")
    if given.audience is not MISSING:
        columns["audience"] = _token(given.audience, "audience")
    if given.jwks_url is not MISSING:
        url = _token(given.jwks_url, "jwksUrl")
        problem = check_url(url, allow_insecure=allow_insecure)
        if problem is not None:
            raise Invalid(f"`jwksUrl` {problem}", field="jwksUrl")
        columns["jwks_url"] = url
    for name, field in (
        ("subject_claim", "subjectClaim"),
        ("email_claim", "emailClaim"),
        ("name_claim", "nameClaim"),
    ):
        value = getattr(given, name)
        if value is not MISSING:
            columns[name] = _claim(value, field)
    if given.create_users is not MISSING:
        columns["create_users"] = given.create_users
    if given.default_role is not MISSING:
        columns["default_role"] = given.default_role.value
    if given.enabled is not MISSING:
        columns["enabled"] = given.enabled
    return columns


def _conflict() -> Conflict:
    return Conflict("This tenant already trusts a provider with this issuer", field="issuer")


async def list_providers(session: Session, actor: Actor) -> list[IdentityProvider]:
    """The tenant's providers, oldest first."""
    actor.require(Permission.TENANT_SETTINGS)
    return await queries.providers(session)


async def add_provider(
    session: Session,
    meta: RequestMeta,
    actor: Actor,
    given: ProviderInput,
    *,
    allow_insecure: bool,
) -> IdentityProvider:
    """Trust a new issuer for `exchangeToken` in the session's tenant."""
    refuse_impersonation(session, "Changing identity providers")
    actor.require(Permission.TENANT_SETTINGS)
    for required in ("name", "issuer", "audience", "jwks_url"):
        if getattr(given, required) is MISSING:
            raise Invalid(f"`{required}` is required", field=required)
    columns = _columns(given, allow_insecure=allow_insecure)
    try:
        async with session.atomic():
            provider = await insert_row(session, IDENTITY_PROVIDERS, columns)
    except asyncpg.UniqueViolationError:
        raise _conflict() from None
    await _audit(session, meta, actor, "identity_provider.added", provider)
    return provider


async def update_provider(
    session: Session,
    meta: RequestMeta,
    actor: Actor,
    provider_id: UUID,
    given: ProviderInput,
    *,
    allow_insecure: bool,
) -> IdentityProvider:
    """Change some settings of a provider; omitted ones are kept."""
    refuse_impersonation(session, "Changing identity providers")
    actor.require(Permission.TENANT_SETTINGS)
    columns = _columns(given, allow_insecure=allow_insecure)
    current = await lock_row(session, IDENTITY_PROVIDERS, provider_id)
    if current is None:
        raise NotFound("Identity provider not found", field="id")
    if not columns:
        return current
    try:
        async with session.atomic():
            updated = await update_row(session, IDENTITY_PROVIDERS, provider_id, columns)
    except asyncpg.UniqueViolationError:
        raise _conflict() from None
    assert updated is not None
    await _audit(
        session, meta, actor, "identity_provider.updated", updated, changed=sorted(columns)
    )
    return updated


async def remove_provider(
    session: Session, meta: RequestMeta, actor: Actor, provider_id: UUID
) -> None:
    """Stop trusting a provider; its users stay, their links to it are deleted."""
    refuse_impersonation(session, "Changing identity providers")
    actor.require(Permission.TENANT_SETTINGS)
    provider = await lock_row(session, IDENTITY_PROVIDERS, provider_id)
    if provider is None or not await delete_row(session, IDENTITY_PROVIDERS, provider_id):
        raise NotFound("Identity provider not found", field="id")
    await _audit(session, meta, actor, "identity_provider.removed", provider)


async def _audit(
    session: Session,
    meta: RequestMeta,
    actor: Actor,
    action: str,
    provider: IdentityProvider,
    *,
    changed: list[str] | None = None,
) -> None:
    metadata: dict[str, object] = {"issuer": provider.issuer, "name": provider.name}
    if changed is not None:
        metadata["changed"] = changed
    await record(
        session,
        meta,
        action=action,
        actor_id=actor.user_id,
        target_type="identity_provider",
        target_id=provider.id,
        metadata=metadata,
    )
