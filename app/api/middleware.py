"""Pure-ASGI middleware: request ids, the body-size cap, and bearer-token verification.

Token verification happens here, before any GraphQL work. A request without a token, or
with one that does not verify, proceeds anonymously (sign-in and token refresh need that);
whatever is not `@public` then answers UNAUTHENTICATED without executing
(app/api/extensions.py).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol
from uuid import UUID

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api import ratelimit_fields
from app.api.context import NamedTenant, Principal
from app.api.errors import error_body
from app.core import telemetry
from app.core.db import Database
from app.core.errors import OperationAborted, TenantSuspended, Unauthenticated
from app.core.ratelimit import PlanRates, Rate, TokenBuckets
from app.core.request_meta import RequestMeta
from app.core.security import AccessClaims, TokenService
from app.core.store import Store, platform_key

logger = logging.getLogger("tenantry.auth")
errors_logger = logging.getLogger("tenantry.errors")


class TenantAccess(Protocol):
    """Whether a tenant may be used now, and its plan's rates (app/api/fairness.py)."""

    @property
    def active(self) -> bool: ...

    @property
    def rates(self) -> PlanRates: ...

    @property
    def session_revoked(self) -> bool: ...


# The tenant's access and whether the request's session still stands, in one store round
# trip when cached (app/auth/revocation.py, injected by app/main.py).
TenantGate = Callable[[Database, Store, UUID, UUID], Awaitable[TenantAccess]]
# Whether an impersonation token's administrator, platform session and impersonation session
# are all still live (app/platform/impersonation.py, injected by app/main.py).
ImpersonationGate = Callable[[Database, AccessClaims], Awaitable[bool]]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


async def _send_json(
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: list[tuple[bytes, bytes]] | None = None,
    details: dict[str, object] | None = None,
) -> None:
    telemetry.error_code(code)
    body = error_body(code, message, details)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestIdMiddleware:
    """Accepts a sane X-Request-ID or makes one; echoes it on the response and in logs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get("x-request-id", "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["x-request-id"] = request_id
            await send(message)

        await self.app(scope, receive, send_with_id)


class ErrorBoundaryMiddleware:
    """Whatever fails before or around GraphQL (the tenant check reading the database, the
    pool) is answered as JSON with a stable code and the request id, and the connection stays
    open: Starlette's last resort would answer text/plain 500 and re-raise, and uvicorn then
    closes the connection and logs a traceback per request.

    The database out of reach is 503 UNAVAILABLE with `Retry-After`, logged once per outage
    by app/core/db.py; anything else is 500 INTERNAL_SERVER_ERROR, logged in full.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise  # half a response cannot be mended; the server closes the connection
            request_id = scope.get("state", {}).get("request_id")
            if isinstance(exc, OperationAborted):
                await _send_json(
                    send,
                    503,
                    exc.code,
                    exc.message,
                    [(b"retry-after", str(exc.retry_after).encode())],
                    {**exc.details(), "requestId": request_id},
                )
                return
            errors_logger.error("unexpected error (request %s)", request_id, exc_info=exc)
            await _send_json(
                send,
                500,
                "INTERNAL_SERVER_ERROR",
                "Internal server error",
                None,
                {"requestId": request_id},
            )


class BodyLimitMiddleware:
    """413 for bodies over the limit, declared or streamed, before anything parses them.

    Anonymous requests (no verified caller, `anonymous`) get `anonymous_max_bytes`: what they
    can do (sign in, introspect) fits in a few kilobytes, and a megabyte of one string literal or
    list variable costs graphql-core hundreds of milliseconds to lex or coerce.
    """

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, anonymous_max_bytes: int | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.anonymous_max_bytes = anonymous_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        limit = self.max_bytes
        if self.anonymous_max_bytes is not None and anonymous(scope):
            limit = min(limit, self.anonymous_max_bytes)
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _send_json(send, 413, "PAYLOAD_TOO_LARGE", "Request body too large")
            return
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not response_started:
                await _send_json(send, 413, "PAYLOAD_TOO_LARGE", "Request body too large")


class _TooLarge(Exception):
    pass


class AnonymousRateLimitMiddleware:
    """Anonymous requests to `paths` (no verified caller, `anonymous`) take a token from their
    client address's bucket; with none left they get 429 (RATE_LIMITED, Retry-After) before
    anything else runs. The address is the peer's, or X-Forwarded-For's when uvicorn trusts
    the proxy (TENANTRY_FORWARDED_ALLOW_IPS); IPv6 addresses count per /64, the block one
    subscriber usually holds. Requests with a verified token are counted per tenant
    (TenantLimitMiddleware)."""

    def __init__(
        self, app: ASGIApp, *, buckets: TokenBuckets, rate: Rate, paths: frozenset[str]
    ) -> None:
        self.app = app
        self.buckets = buckets
        self.rate = rate
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths or not anonymous(scope):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        key = platform_key("anonymous", client_network(client[0] if client else None))
        taken = await self.buckets.take(key, self.rate)
        policy = [ratelimit_fields.policy_item("address", self.rate)]
        limit = [ratelimit_fields.limit_item("address", self.rate, taken)]
        if not taken.allowed:
            await _send_json(
                send,
                429,
                "RATE_LIMITED",
                "Too many requests without a token from this address; try again in"
                f" {taken.retry_after} seconds",
                [
                    (b"retry-after", str(taken.retry_after).encode()),
                    *ratelimit_fields.fields(policy, limit),
                ],
                {"retryAfterSeconds": taken.retry_after},
            )
            return

        async def with_fields(message: Message) -> None:
            if message["type"] == "http.response.start":
                ratelimit_fields.add_fields(message, policy, limit)
            await send(message)

        await self.app(scope, receive, with_fields)


def anonymous(scope: Scope) -> bool:
    """Whether the request has no verified caller: no token, or one AuthenticationMiddleware
    (which runs before the anonymous limits) refused."""
    state = scope.get("state", {})
    return state.get("principal") is None and state.get("platform_principal") is None


def client_network(host: str | None) -> str:
    """What per-address limits count: an IPv4 address, or an IPv6 address's /64."""
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return host or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class AuthenticationMiddleware:
    """Verifies `Authorization: Bearer` and stores who is calling in the request state:
    `principal` for a tenant user, `platform_principal` for a platform administrator
    (app/core/security.py keeps the two token kinds apart). A token that does not verify, or
    whose session, tenant or impersonation is no longer live, makes no caller: the request
    goes on anonymously with `refused_credential` set, and counts as anonymous for every
    limit after this middleware."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        tokens: TokenService,
        store: Store,
        tenant_access: TenantGate,
        impersonation_live: ImpersonationGate,
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.store = store
        self.tenant_access = tenant_access
        self.impersonation_live = impersonation_live

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["principal"] = None
        state["platform_principal"] = None
        state["refused_credential"] = None
        header = Headers(scope=scope).get("authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            try:
                if scheme.lower() != "bearer" or not token.strip():
                    raise Unauthenticated("Invalid access token")
                claims = self.tokens.verify_bearer(token.strip())
                if isinstance(claims, AccessClaims):
                    # A suspended organisation's users are refused before anything runs.
                    # (Suspension also revokes their sessions: this answer comes first.)
                    database: Database = state["database"]
                    access = await self.tenant_access(
                        database, self.store, claims.tenant_id, claims.session_id
                    )
                    if not access.active:
                        raise TenantSuspended("This organisation is suspended")
                    # A revoked session's access tokens die with it, not at their expiry. (A
                    # platform session is checked in the database by every operation.)
                    if access.session_revoked:
                        raise Unauthenticated("Invalid access token")
                    # An administrator acting as the user: checked in the database on every
                    # request, as their own platform operations are, so signing them out,
                    # disabling them or taking the permission away ends it at once.
                    if claims.impersonator is not None and not await self.impersonation_live(
                        database, claims
                    ):
                        raise Unauthenticated("Invalid access token")
                    # Applied by TenantLimitMiddleware (app/api/fairness.py), next.
                    state["plan_rates"] = access.rates
            except TenantSuspended as exc:
                await _send_json(send, 403, exc.code, exc.message)
                return
            except Unauthenticated as exc:
                # Not answered here: the request goes on without a caller, so `@public`
                # operations (signIn, refreshToken) still run, and anything else gets the
                # same UNAUTHENTICATED error as a request without a token
                # (app/api/extensions.py: SignInRequired).
                logger.info("rejected bearer token (request %s)", state.get("request_id"))
                state["refused_credential"] = exc
            else:
                if isinstance(claims, AccessClaims):
                    state["principal"] = Principal.of(claims)
                else:
                    state["platform_principal"] = claims
        await self.app(scope, receive, send)


# Resolves a tenant name (slug or id) to its id, and records a mismatch in the signed-in
# user's tenant (app/tenants/resolution.py, injected by app/main.py).
TenantNameResolver = Callable[[Database, Store, str], Awaitable[UUID | None]]
MismatchRecorder = Callable[[Database, Principal, RequestMeta, dict[str, str]], Awaitable[None]]


def host_slug(host: str | None, base_domain: str | None) -> str | None:
    """The first label of `<slug>.<base_domain>[:port]`; None for any other host."""
    if not host or not base_domain:
        return None
    name = host.rsplit(":", 1)[0].strip().lower().rstrip(".")
    suffix = "." + base_domain
    if not name.endswith(suffix):
        return None
    label = name[: -len(suffix)]
    return label if label and "." not in label else None


class TenantResolutionMiddleware:
    """Requests name their tenant by token, `X-Tenant` header or subdomain; all that are
    present must agree, or the request is refused (403 TENANT_MISMATCH) before anything
    runs, and recorded in the signed-in user's tenant. Order and rules: docs/security-model.md.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        store: Store,
        base_domain: str | None,
        resolve: TenantNameResolver,
        on_mismatch: MismatchRecorder,
    ) -> None:
        self.app = app
        self.store = store
        self.base_domain = base_domain
        self.resolve = resolve
        self.on_mismatch = on_mismatch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        headers = Headers(scope=scope)
        named: dict[str, str] = {}
        if header := headers.get("x-tenant", "").strip():
            named["header"] = header
        if slug := host_slug(headers.get("host"), self.base_domain):
            named["host"] = slug
        principal: Principal | None = state.get("principal")
        state["named_tenant"] = None
        # A platform administrator belongs to no tenant.
        if named and state.get("platform_principal") is None:
            database: Database = state["database"]
            ids = {await self.resolve(database, self.store, v) for v in named.values()}
            if principal is not None:
                ids.add(principal.tenant_id)
            # One name alone has nothing to disagree with, even an unknown one: signing in
            # to it fails as with an unknown slug, and nothing else is anonymous.
            agree = len(ids) == 1 and (None not in ids or (len(named) == 1 and principal is None))
            if not agree:
                if principal is not None:
                    meta = _request_meta(scope, headers, state)
                    await self.on_mismatch(database, principal, meta, named)
                await _send_json(
                    send, 403, "TENANT_MISMATCH", "The request names more than one organisation"
                )
                return
            # What anonymous operations (signIn, ...) use when not given a tenant: the
            # subdomain (always a slug) before the header (a slug or an id).
            state["named_tenant"] = NamedTenant(named.get("host") or named["header"], ids.pop())
        await self.app(scope, receive, send)


def _request_meta(scope: Scope, headers: Headers, state: dict[str, object]) -> RequestMeta:
    client = scope.get("client")
    request_id = state.get("request_id")
    return RequestMeta(
        ip=client[0] if client else None,
        user_agent=headers.get("user-agent", ""),
        request_id=request_id if isinstance(request_id, str) else None,
    )
