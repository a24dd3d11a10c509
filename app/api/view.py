"""The GraphQL HTTP endpoint: Strawberry's ASGI view with our context, GraphQL over HTTP's
media types and status codes (app/api/transport.py), persisted documents
(app/api/documents.py), optional batching, and offline GraphiQL.

Every answer is a GraphQL response in JSON: a request refused before any operation runs (not
a well-formed GraphQL-over-HTTP request) as a `RequestError` with its 4xx, each operation's
outcome as its GraphQL result, without `data` when it was refused before execution.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import MissingQueryError
from strawberry.http import process_result
from strawberry.schema import BaseSchema
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from app.api.context import (
    Authorizer,
    Context,
    ImpersonationRecorder,
    PlatformAuthorizer,
)
from app.api.documents import DocumentRefused, Documents, owner_of
from app.api.errors import error_document
from app.api.graphiql import graphiql_html
from app.api.limits import BatchBudget
from app.api.transport import (
    JSON,
    OperationRequest,
    RequestError,
    body_operations,
    graphql_response,
    query_parameters,
    refusal,
    response_media_type,
    status_of,
)
from app.core import telemetry
from app.core.db import Database
from app.core.security import TokenService
from app.core.settings import Settings

STATIC_PREFIX = "/static/graphiql"

# Refusals of a document's text: a document refused so is never kept for its hash.
DOCUMENT_REFUSALS = frozenset(
    {
        "GRAPHQL_PARSE_FAILED",
        "GRAPHQL_VALIDATION_FAILED",
        "OPERATION_RESOLUTION_FAILURE",
        "QUERY_TOO_DEEP",
        "TOO_MANY_ALIASES",
        "QUERY_TOO_LARGE",
        "QUERY_TOO_COMPLEX",
    }
)
# The idempotency key header (app/idempotency) names one request, hence one operation.
_IDEMPOTENCY_HEADER = "idempotency-key"


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
        documents: Documents,
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
        self.documents = documents

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        response = await self.answer(Request(scope, receive))
        await response(scope, receive, send)

    async def answer(self, request: Request) -> Response:
        """The answer to one HTTP request: GraphiQL's page, or GraphQL JSON (never text)."""
        media_type = response_media_type(request.headers.get("accept"))
        try:
            if request.method not in ("GET", "POST"):
                raise RequestError(
                    405,
                    "METHOD_NOT_ALLOWED",
                    "GraphQL requests are GET (queries) or POST",
                    {"allow": "GET, POST"},
                )
            if self.graphql_ide is not None and _wants_the_ide(request):
                return await self.render_graphql_ide(request)
            if media_type is None:
                raise RequestError(
                    406,
                    "NOT_ACCEPTABLE",
                    "GraphQL responses are application/graphql-response+json or"
                    " application/json: accept one of them",
                )
            operations = await self._operations(request)
            if isinstance(operations, list):
                return await self._batch(request, operations, media_type)
            body, sub_response = await self._run(request, operations)
        except RequestError as error:
            return refusal(error, media_type or JSON)
        status = sub_response.status_code or status_of(body, media_type)
        return self._respond(body, status, media_type, [sub_response])

    async def _operations(self, request: Request) -> OperationRequest | list[OperationRequest]:
        if request.method == "GET":
            return query_parameters(request.query_params)
        return body_operations(
            request.headers.get("content-type"),
            await request.body(),
            max_batch=self.settings.transport.max_batch_operations,
        )

    async def _batch(
        self, request: Request, operations: list[OperationRequest], media_type: str
    ) -> Response:
        """Each operation in turn, each its own operation (transaction, idempotency key,
        limits) but for the cost limit, which bounds the batch's sum; one array answer."""
        if _IDEMPOTENCY_HEADER in request.headers:
            raise RequestError(
                422,
                "BAD_REQUEST",
                "An Idempotency-Key header names one operation: in a batch, give each"
                " mutation its own `@idempotent(key:)`",
            )
        budget = BatchBudget(self.settings.limits.max_nodes)
        bodies: list[dict[str, Any]] = []
        sub_responses: list[Response] = []
        for operation in operations:
            body, sub_response = await self._run(request, operation, budget)
            bodies.append(body)
            sub_responses.append(sub_response)
        # The array as a whole succeeded; each element says how its operation fared.
        return self._respond(bodies, 200, media_type, sub_responses)

    async def _run(
        self,
        request: Request,
        operation: OperationRequest,
        budget: BatchBudget | None = None,
    ) -> tuple[dict[str, Any], Response]:
        """One operation's GraphQL response (and the response its resolvers set headers or
        a status on)."""
        sub_response = await self.get_sub_response(request)
        owner = owner_of(request.state)
        try:
            document = await self.documents.document(operation, owner)
        except DocumentRefused as refused:
            telemetry.error_code(refused.code)
            return error_document(refused.code, refused.message), sub_response
        context = await self.get_context(request, sub_response)
        context.batch_budget = budget
        get = request.method == "GET"
        try:
            result = await self.schema.execute(
                document,
                variable_values=operation.variables,
                context_value=context,
                operation_name=operation.operation_name,
                allowed_operation_types=(
                    {OperationType.QUERY} if get else {OperationType.QUERY, OperationType.MUTATION}
                ),
                operation_extensions=operation.extensions,
            )
        except InvalidOperationTypeError as error:
            if get and error.operation_type is OperationType.MUTATION:
                raise RequestError(
                    405,
                    "METHOD_NOT_ALLOWED",
                    "Mutations are POST requests: GET only reads",
                    {"allow": "POST"},
                ) from None
            return _unresolved("Subscriptions are not served over HTTP"), sub_response
        except CannotGetOperationTypeError as error:
            name = error.operation_name
            message = (
                "Cannot tell which operation to run: the document needs exactly one, or"
                " `operationName` naming one"
                if name is None
                else f"Unknown operation named '{name}'"
            )
            return _unresolved(message), sub_response
        except MissingQueryError:
            raise RequestError(422, "BAD_REQUEST", "The GraphQL query is empty") from None
        body = self._body(result)
        if not _codes(body) & DOCUMENT_REFUSALS:
            await self.documents.remember(operation, document, owner)
        return body, sub_response

    def _body(self, result: ExecutionResult) -> dict[str, Any]:
        body: dict[str, Any] = dict(process_result(result))
        # Refused before execution (parse, validation, limits, variables, the caller): a
        # request error has no `data` at all; `data: null` says execution began.
        if result.data is None and result.errors and all(e.path is None for e in result.errors):
            body.pop("data", None)
        return body

    def _respond(
        self, body: object, status: int, media_type: str, sub_responses: Sequence[Response]
    ) -> Response:
        response = graphql_response(body, status=status, media_type=media_type)
        # The headers resolvers and extensions set; in a batch, each name once (the last
        # operation's value: e.g. the RateLimit fields after the whole batch).
        merged: dict[bytes, bytes] = {}
        for sub_response in sub_responses:
            merged.update(sub_response.headers.raw)
        response.headers.raw.extend(merged.items())
        return response

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


def _wants_the_ide(request: Request) -> bool:
    """A browser opening the endpoint: a GET asking for HTML, with no GraphQL parameter (an
    Apollo link's GET of a persisted query's hash has no `query` either)."""
    parameters = ("query", "extensions", "documentId")
    return (
        request.method == "GET"
        and "text/html" in request.headers.get("accept", "")
        and not any(request.query_params.get(name) for name in parameters)
    )


def _unresolved(message: str) -> dict[str, Any]:
    """GetOperation() failed: a request error of its own code."""
    telemetry.error_code("OPERATION_RESOLUTION_FAILURE")
    error = GraphQLError(message, extensions={"code": "OPERATION_RESOLUTION_FAILURE"})
    return {"errors": [error.formatted]}


def _codes(body: dict[str, Any]) -> set[str]:
    return {str((e.get("extensions") or {}).get("code")) for e in body.get("errors") or ()}


# Scripts only from our own static files (app/api/graphiql.py has no inline script). Styles
# need 'unsafe-inline': GraphiQL's dialogs inject a <style> element. Fonts and icons are data: URIs.
# No plugins, no <base> or form redirecting anything elsewhere, and no framing (clickjacking):
# those directives do not fall back to default-src.
_GRAPHIQL_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
