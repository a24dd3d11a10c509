"""The typed per-operation context every resolver receives."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

import strawberry
from starlette.requests import Request

from app.api.limits import BatchBudget
from app.api.loaders import Loaders
from app.core.actor import Actor, PlatformActor
from app.core.db import Database, Session
from app.core.errors import Forbidden, Unauthenticated
from app.core.request_meta import RequestMeta
from app.core.security import AccessClaims, PlatformClaims, TokenService
from app.core.settings import Settings
from app.core.store import Store

if TYPE_CHECKING:
    from starlette.responses import Response

# Resolves a user's effective permissions in the session's tenant (app/rbac, injected by
# app/main.py: this layer knows no domain).
Authorizer = Callable[[Session, Store, UUID], Awaitable[Actor]]
# Resolves a platform administrator's live session and permissions (app/platform), in a
# short transaction of its own: platform mutations such as createTenant run their work in
# transactions of their own too, and must not wait for a second pooled connection while
# the operation's session holds one (with concurrent requests, the pool runs dry).
PlatformAuthorizer = Callable[[Database, PlatformClaims], Awaitable[PlatformActor]]


@dataclass(frozen=True)
class OperationSummary:
    """One GraphQL operation run under an impersonation token, as its audit entry names it."""

    kind: str
    name: str | None
    fields: tuple[str, ...]


# Records an operation run under an impersonation token in the tenant's audit log, in a
# short transaction of its own before the operation runs (app/platform/impersonation.py).
ImpersonationRecorder = Callable[
    [Database, AccessClaims, RequestMeta, OperationSummary], Awaitable[None]
]


@dataclass(frozen=True)
class Principal:
    """Who is calling: a verified user of exactly one tenant, in one session."""

    user_id: UUID
    tenant_id: UUID
    claims: AccessClaims

    @classmethod
    def of(cls, claims: AccessClaims) -> Principal:
        return cls(user_id=claims.user_id, tenant_id=claims.tenant_id, claims=claims)

    @property
    def session_id(self) -> UUID:
        return self.claims.session_id

    @property
    def impersonated(self) -> bool:
        """A platform administrator is acting as this user (break-glass impersonation)."""
        return self.claims.impersonator is not None


@dataclass(frozen=True)
class NamedTenant:
    """The tenant a request names by subdomain or header: the name as given, and the id it
    stands for (None: no such tenant)."""

    name: str
    id: UUID | None


@dataclass
class Context:
    request: Request
    response: Response
    settings: Settings
    database: Database
    tokens: TokenService
    store: Store
    # A tenant user, or a platform administrator, or neither; never both.
    principal: Principal | None
    platform: PlatformClaims | None
    # The operation's one transaction, bound to the principal's tenant (or to none).
    session: Session
    authorize: Authorizer
    authorize_platform: PlatformAuthorizer
    # Required for operations under an impersonation token: without it they are refused.
    record_impersonated: ImpersonationRecorder | None = None
    # Set for the operations of a batched request (app/api/view.py), shared among them.
    batch_budget: BatchBudget | None = None
    loaders: Loaders = field(init=False)
    # The operation's static cost (app/api/limits.py), once its document is analysed.
    cost: int | None = field(init=False, default=None)
    _actor: Actor | PlatformActor | None = field(init=False, default=None)
    _actor_lock: asyncio.Lock = field(init=False, default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.session)

    async def actor(self) -> Actor:
        """The signed-in user with their effective permissions, resolved once per operation
        (sibling resolvers share it); Unauthenticated without a principal."""
        principal = self.require_principal()
        async with self._actor_lock:
            if self._actor is None:
                self._actor = await self.authorize(self.session, self.store, principal.user_id)
            assert isinstance(self._actor, Actor)
            return self._actor

    def resolved_actor(self) -> Actor | None:
        """The signed-in user's actor if this operation resolved it already, without waiting:
        field rules ask it for every row (app/api/permissions.py)."""
        return self._actor if isinstance(self._actor, Actor) else None

    async def platform_actor(self) -> PlatformActor:
        """The platform administrator in a live session with their platform permissions,
        resolved once per operation; Forbidden for a tenant user, Unauthenticated for
        anyone else."""
        claims = self.require_platform()
        async with self._actor_lock:
            if self._actor is None:
                self._actor = await self.authorize_platform(self.database, claims)
            assert isinstance(self._actor, PlatformActor)
            return self._actor

    async def record_impersonated_operation(self, operation: OperationSummary) -> None:
        """Record an operation of an impersonation token before it runs; fails closed."""
        assert self.principal is not None
        assert self.principal.impersonated
        if self.record_impersonated is None:
            raise RuntimeError("no recorder for operations under impersonation")
        await self.record_impersonated(
            self.database, self.principal.claims, self.request_meta, operation
        )

    def forget(self) -> None:
        """Drop what this operation has read: after a mutation, whose writes (roles
        included) the next field of the same document must see."""
        self.loaders.clear()
        self._actor = None

    @property
    def named_tenant(self) -> NamedTenant | None:
        """The tenant the request names by subdomain or X-Tenant header, if any."""
        named: NamedTenant | None = getattr(self.request.state, "named_tenant", None)
        return named

    @property
    def request_meta(self) -> RequestMeta:
        """Where the request came from, for audit entries."""
        client = self.request.client
        return RequestMeta(
            ip=client.host if client is not None else None,
            user_agent=self.request.headers.get("user-agent", ""),
            request_id=getattr(self.request.state, "request_id", None),
        )

    def require_principal(self) -> Principal:
        """The tenant user calling; a platform administrator's token never acts in a tenant."""
        if self.principal is None:
            if self.platform is not None:
                raise Forbidden("Platform administrators cannot act as users of a tenant")
            raise Unauthenticated("Sign in required")
        return self.principal

    def require_platform(self) -> PlatformClaims:
        """The platform administrator calling; a tenant user's token is never one."""
        if self.platform is None:
            if self.principal is not None:
                raise Forbidden("This needs a platform administrator")
            raise Unauthenticated("Sign in as a platform administrator")
        return self.platform


Info = strawberry.Info[Context, Any]
