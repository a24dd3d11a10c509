"""Cross-origin requests from browsers (CORS): Starlette's protocol, our allowlist.

An origin may call the API when it is in the server's list (TENANTRY_CORS_ORIGINS), or when
the request is made to a tenant's own host (`<slug>.<TENANTRY_BASE_DOMAIN>`) and the
tenant's admins listed it (`corsOrigins` in the tenant's settings). The host is the only
way a preflight can name a tenant: a browser sends it without the Authorization header and
without the values of any other header (X-Tenant included), so the decision for both the
preflight and the request that follows rests on what the preflight can show.

A refused origin gets no CORS header at all: a refused preflight is a 403 JSON error (the
browser then never sends the request), any other request is answered as usual but without
Access-Control-Allow-Origin, so the page cannot read it. Order and rules:
docs/security-model.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.encoding import JSONBody
from app.api.middleware import host_slug
from app.core.db import Database
from app.core.settings import BrowserSettings
from app.core.store import Store

# The origins a tenant's admins allowed, by the tenant's slug (empty for an unknown slug):
# app/tenants/service.py, cached in the store; injected by app/main.py.
TenantOrigins = Callable[[Database, Store, str], Awaitable[frozenset[str]]]

ALLOW_METHODS = ("GET", "POST")
# Headers a front end sends besides the CORS-safelisted ones: the token, the JSON content
# type, our own request id, tenant and idempotency headers, Apollo's CSRF marker and
# operation name, and W3C trace context.
ALLOW_HEADERS = (
    "authorization",
    "content-type",
    "x-request-id",
    "x-tenant",
    "idempotency-key",
    "apollo-require-preflight",
    "x-apollo-operation-name",
    "traceparent",
    "tracestate",
)
# Response headers a page may read beyond the safelisted ones: the request id to quote in a
# support request, when to retry, the rate-limit fields, and why a token was refused.
EXPOSE_HEADERS = (
    "x-request-id",
    "retry-after",
    "ratelimit",
    "ratelimit-policy",
    "www-authenticate",
)


class CorsMiddleware(CORSMiddleware):
    """Starlette's CORSMiddleware, asked only about origins this request may come from."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: BrowserSettings,
        store: Store,
        base_domain: str | None,
        tenant_origins: TenantOrigins,
    ) -> None:
        super().__init__(
            app,
            allow_origins=(),
            allow_methods=ALLOW_METHODS,
            allow_headers=ALLOW_HEADERS,
            allow_credentials=settings.cors_credentials,
            expose_headers=EXPOSE_HEADERS,
            max_age=settings.cors_max_age_seconds,
        )
        self.server_origins = frozenset(settings.cors_origins)
        self.store = store
        self.base_domain = base_domain
        self.tenant_origins = tenant_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        # Browsers send Origin with a same-origin POST too (GraphiQL's): no CORS applies, so
        # no lookup is spent on it.
        if origin == f"{scope.get('scheme', 'http')}://{headers.get('host', '')}":
            origin = None
        if origin is not None and await self._allows(scope, headers, origin):
            # The protocol itself (preflight answers, headers on the response) is Starlette's.
            await super().__call__(scope, receive, send)
            return
        if origin is not None and _is_preflight(scope, headers):
            await _refusal("origin")(scope, receive, send)
            return

        async def send_varying(message: Message) -> None:
            # Whether the answer carries CORS headers depends on the Origin: caches must
            # not hand this one to a request from another origin.
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).add_vary_header("Origin")
            await send(message)

        await self.app(scope, receive, send_varying)

    async def _allows(self, scope: Scope, headers: Headers, origin: str) -> bool:
        if origin in self.server_origins or "*" in self.server_origins:
            return True
        slug = host_slug(headers.get("host"), self.base_domain)
        if slug is None:
            return False
        database: Database = scope["state"]["database"]
        return origin in await self.tenant_origins(database, self.store, slug)

    def is_allowed_origin(self, origin: str) -> bool:
        # Starlette asks this while answering; it only ever answers requests whose origin
        # `_allows` admitted (that needs the request's host, which this signature lacks).
        return True

    def preflight_response(self, request_headers: Headers) -> Response:
        answer = super().preflight_response(request_headers)
        if answer.status_code == 200:
            return answer
        # A method or header we do not take: Starlette's CORS headers stay (so the browser's
        # console names the real reason), its text/plain body becomes our JSON error.
        kept = {
            k: v
            for k, v in answer.headers.items()
            if k.startswith("access-control-") or k == "vary"
        }
        refused = bytes(answer.body).decode().removeprefix("Disallowed CORS ")
        return _refusal(refused, kept)


def _is_preflight(scope: Scope, headers: Headers) -> bool:
    return scope["method"] == "OPTIONS" and "access-control-request-method" in headers


def _refusal(what: str, headers: dict[str, str] | None = None) -> Response:
    body = {
        "errors": [
            {
                "message": f"Cross-origin request refused: {what} not allowed",
                "extensions": {"code": "CORS_REFUSED"},
            }
        ]
    }
    return JSONBody(body, status_code=403, headers=headers)
