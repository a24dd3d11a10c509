"""Self-service sign-up: a new customer creates their organisation and becomes its owner.

Off unless TENANTRY_SIGNUP is set. Every attempt counts against its client network (at most
TENANTRY_SIGNUP_PER_IP_PER_HOUR an hour) before any other work, so nobody can mass-create
tenants or probe slugs. The tenant, its system roles, its owner and the entries in its and
the platform's audit log are one transaction: a failure leaves none of them. The owner is
then signed in as by `signIn` (a session, or the MFA step a server policy asks for), and
mailed a link that confirms their address (`emailVerifiedAt` until then is null).
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import uuid4

import asyncpg

from app.accounts.email_change import request_verification
from app.accounts.mailer import Mailer
from app.audit.service import record
from app.auth.service import SignInResult, after_first_factor
from app.auth.throttle import TooManyAttempts, client_network
from app.core import validation
from app.core.db import Database
from app.core.errors import Forbidden
from app.core.passwords import check_password_policy
from app.core.request_meta import RequestMeta
from app.core.security import TokenService
from app.core.settings import Settings
from app.core.store import Store, platform_key
from app.tenants.models import Tenant
from app.tenants.plans import DEFAULT_PLAN
from app.tenants.resolution import forget_slug
from app.tenants.service import check_slug, provision, slug_taken
from app.users.service import create_user

_WINDOW_SECONDS = 3600


@dataclass(frozen=True)
class SignUp:
    organization_name: str
    slug: str
    email: str
    password: str
    display_name: str | None = None


@dataclass(frozen=True)
class SignedUp:
    tenant: Tenant
    sign_in: SignInResult


async def sign_up(
    database: Database,
    tokens: TokenService,
    settings: Settings,
    store: Store,
    mailer: Mailer,
    meta: RequestMeta,
    request: SignUp,
) -> SignedUp:
    if not settings.signup_enabled:
        raise Forbidden("Self-service sign-up is not enabled on this server")
    # Counted per client network (an IPv6 /64 is one client), every attempt before any work:
    # INCR returns the new count, so concurrent attempts cannot all pass.
    counted = await store.hit(
        platform_key("signup-attempts", "ip", client_network(meta.ip)),
        window_seconds=_WINDOW_SECONDS,
    )
    if counted.count > settings.signup_per_ip_per_hour:
        raise TooManyAttempts(counted.resets_in)
    name = validation.text(request.organization_name, field="organizationName", max_length=200)
    slug = check_slug(request.slug)
    email = validation.email(request.email)
    display_name = validation.text(
        request.display_name if request.display_name is not None else email.split("@", 1)[0],
        field="displayName",
        max_length=200,
    )
    check_password_policy(request.password)

    tenant_id = uuid4()
    try:
        # Bound to the new tenant, and in the platform scope for the platform's audit log.
        async with database.transaction(tenant_id, platform=True) as session:
            tenant = await provision(session, tenant_id, slug=slug, name=name, plan=DEFAULT_PLAN)
            owner = await create_user(
                session,
                email=email,
                display_name=display_name,
                password=request.password,
                role="owner",
            )
            details = {"slug": slug, "plan": DEFAULT_PLAN, "owner_id": str(owner.id)}
            # In the tenant's log the owner did it; in the platform's, nobody signed in did.
            for actor_id, platform in ((owner.id, False), (None, True)):
                await record(
                    session,
                    meta,
                    action="tenant.signed_up",
                    actor_id=actor_id,
                    target_type="tenant",
                    target_id=tenant_id,
                    metadata=details,
                    platform=platform,
                )
            signed_in = await after_first_factor(
                session, tokens, settings, meta, owner.id, tenant_id
            )
            # Last (an SMTP mailer sends at once): the address is confirmed by following it.
            await request_verification(
                session, mailer, settings, user_id=owner.id, email=owner.email
            )
    except asyncpg.UniqueViolationError:
        raise slug_taken(slug) from None
    # Requests naming the new slug (subdomain, X-Tenant) find it at once.
    await forget_slug(store, slug)
    return SignedUp(tenant, signed_in)
