"""The GraphQL HTTP endpoint: Strawberry's ASGI view with our context and offline GraphiQL."""

from __future__ import annotations

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.schema import BaseSchema

from app.api.context import Authorizer, Context, ImpersonationRecorder, PlatformAuthorizer
from app.api.errors import error_body
from app.api.graphiql import graphiql_html
from app.core.db import Database
from app.core.security import TokenService
from app.core.settings import Settings
from app.core.validation import json_value

STATIC_PREFIX = "/static/graphiql"
# The `extensions.code` of each HTTP error Strawberry raises (anything else: BAD_REQUEST).
_HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


class GraphQLView(GraphQL[Context, None]):
    def __init__(
        self,
        schema: BaseSchema,
        *,
        settings: Settings,
        tokens: TokenService,
        authorize: Authorizer,
        authorize_platform: PlatformAuthorizer,
        record_impersonated: ImpersonationRecorder,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql else None,
            allow_queries_via_get=True,
            multipart_uploads_enabled=False,
        )
        self.settings = settings
        self.tokens = tokens
        self.authorize = authorize
        self.authorize_platform = authorize_platform
        self.record_impersonated = record_impersonated

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        try:
            response = await self.run(Request(scope=scope, receive=receive))
        except HTTPException as exc:
            # Strawberry answers a request it cannot take (not JSON, no query, an unknown
            # operation name, ...) in text/plain; ours are GraphQL JSON with a stable code.
            response = Response(
                error_body(_HTTP_CODES.get(exc.status_code, "BAD_REQUEST"), exc.reason),
                status_code=exc.status_code,
                media_type="application/json",
            )
        await response(scope, receive, send)

    def decode_json(self, data: str | bytes) -> object:
        # The POST body (bytes) and the `variables` and `extensions` of a GET (str). Strawberry
        # turns a JSONDecodeError into a 400, but neither a body that is not UTF-8 nor one
        # nested thousands of levels deep (both were 500s).
        try:
            value = json_value(data)
        except ValueError:
            raise HTTPException(400, "Unable to parse request body as JSON") from None
        if isinstance(data, bytes) and not isinstance(value, dict | list):
            # A number, string or null: Strawberry would look a query up in it (a 500).
            raise HTTPException(400, "The request body must be a JSON object")
        return value

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        assert isinstance(request, Request)
        assert isinstance(response, Response)
        principal = request.state.principal
        platform = request.state.platform_principal
        tenant_id = principal.tenant_id if principal is not None else None
        impersonator = principal.claims.impersonator if principal is not None else None
        # The pool lives in the lifespan state (app/main.py), created at start-up.
        database: Database = request.state.database
        return Context(
            request=request,
            response=response,
            settings=self.settings,
            database=database,
            tokens=self.tokens,
            store=request.state.store,
            principal=principal,
            platform=platform,
            # Opened lazily on first query; the operation extension sets read-only for
            # queries and closes it once. Only a platform administrator's operation runs
            # in the platform scope; it binds no tenant. An impersonation token's operation is
            # the user's, in the tenant scope only, on behalf of the administrator.
            session=database.session(
                tenant_id,
                readonly=True,
                platform=platform is not None,
                impersonator_id=None if impersonator is None else impersonator.admin_id,
            ),
            authorize=self.authorize,
            authorize_platform=self.authorize_platform,
            record_impersonated=self.record_impersonated,
        )

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(
            graphiql_html(endpoint=str(request.url.path), static_prefix=STATIC_PREFIX),
            headers={"content-security-policy": _GRAPHIQL_CSP},
        )


# Scripts only from our own static files (app/api/graphiql.py has no inline script). Styles
# need 'unsafe-inline': GraphiQL's dialogs inject a <style> element. Fonts and icons are data: URIs.
# No plugins, no <base> or form redirecting anything elsewhere, and no framing (clickjacking):
# those directives do not fall back to default-src.
_GRAPHIQL_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
