"""The GraphQL HTTP endpoint: Strawberry's ASGI view with our context and offline GraphiQL."""

from __future__ import annotations

import json

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.schema import BaseSchema

from app.api.context import Authorizer, Context, ImpersonationRecorder, PlatformAuthorizer
from app.api.graphiql import graphiql_html
from app.core.db import Database
from app.core.security import TokenService
from app.core.settings import Settings

STATIC_PREFIX = "/static/graphiql"


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

    def decode_json(self, data: str | bytes) -> object:
        # Strawberry turns JSONDecodeError into a 400 but not the RecursionError of a body
        # nested thousands of levels deep, which would otherwise be a 500.
        try:
            return json.loads(data)
        except RecursionError:
            raise HTTPException(400, "Unable to parse request body as JSON") from None

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
