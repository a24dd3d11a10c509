"""The one boundary where failures become GraphQL errors with a stable `extensions.code`.

Domain errors keep their message and code. Request errors of graphql-core's keep its message
(it describes the client's own document) and locations, with a code telling them apart:
GRAPHQL_PARSE_FAILED (syntax), QUERY_TOO_LARGE (the token limit), GRAPHQL_VALIDATION_FAILED
and BAD_USER_INPUT (variables), as Apollo Server names them. Anything else is logged in full
with the request id and reaches the client only as "Internal server error".

An error that aborts the operation (the database out of reach, an unknown commit outcome)
becomes the response's only error, with no data, HTTP 503 and `Retry-After`: whatever the
fields had computed was not saved. Errors raised by extensions (the transaction's commit, the
idempotency check) pass through the same translation, never unmasked.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import asyncpg
from graphql import GraphQLError, GraphQLSyntaxError
from strawberry.exceptions import MissingQueryError
from strawberry.extensions import SchemaExtension
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError

from app.api.encoding import json_bytes
from app.core import telemetry
from app.core.errors import DomainError, OperationAborted, translate_database_error

logger = logging.getLogger("tenantry.errors")

INTERNAL = "INTERNAL_SERVER_ERROR"
VALIDATION = "GRAPHQL_VALIDATION_FAILED"
PARSE = "GRAPHQL_PARSE_FAILED"
VARIABLES = "BAD_USER_INPUT"
# graphql-core's parser, stopped by the token limit (app/api/extensions.py: TokenLimit).
_TOKEN_LIMIT = re.compile(r"Document contains more than (\d+) tokens")


def _request_error_code(error: GraphQLError) -> tuple[str, dict[str, Any]]:
    """The stable code of a request error of graphql-core's, by what it refused: the text
    (parse; the token limit is the size limit of the text), the document (validation, whose
    errors app/api/extensions.py marks) or else the variables (coerced at execution)."""
    if isinstance(error, GraphQLSyntaxError):
        limit = _TOKEN_LIMIT.search(error.message)
        if limit is not None:
            return "QUERY_TOO_LARGE", {"limit": "tokens", "maximum": int(limit.group(1))}
        return PARSE, {}
    marked = (error.extensions or {}).get("code")
    if isinstance(marked, str):
        return marked, {}
    return VARIABLES, {}


def error_document(
    code: str, message: str, details: dict[str, object] | None = None
) -> dict[str, Any]:
    """A GraphQL response of one error and no data, for answers given outside GraphQL
    execution (the middleware's refusals, a request that is not a GraphQL request, a
    persisted document that cannot be had)."""
    extensions = {"code": code, **(details or {})}
    return {"errors": [{"message": message, "extensions": extensions}]}


def error_body(code: str, message: str, details: dict[str, object] | None = None) -> bytes:
    """`error_document` encoded as JSON."""
    return json_bytes(error_document(code, message, details))


def to_client_error(error: GraphQLError, request_id: str | None) -> GraphQLError:
    original = error.original_error
    if isinstance(original, asyncpg.PostgresError):
        original = translate_database_error(original) or original
    if isinstance(original, OperationAborted):
        # A failure of the server's, not of the request: the id finds it in the log.
        return GraphQLError(
            original.message,
            extensions={"code": original.code, **original.details(), "requestId": request_id},
        )
    if isinstance(original, DomainError):
        extensions: dict[str, Any] = {"code": original.code}
        if original.field:
            extensions["field"] = original.field
        extensions.update(original.details())
        return GraphQLError(
            original.message, nodes=error.nodes, path=error.path, extensions=extensions
        )
    # graphql-core's own errors before execution describe the client's document or
    # variables (a variable missing a required input field wraps one): never ours, shown as
    # they are, with the code of what was refused.
    if (original is None or isinstance(original, GraphQLError)) and error.path is None:
        code, details = _request_error_code(error)
        return GraphQLError(
            error.message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            extensions={"code": code, **details},
        )
    logger.error(
        "unexpected error in %s (request %s)",
        ".".join(map(str, error.path or [])) or "operation",
        request_id,
        exc_info=original,
    )
    return GraphQLError(
        "Internal server error",
        nodes=error.nodes,
        path=error.path,
        extensions={"code": INTERNAL, "requestId": request_id},
    )


class ErrorMasking(SchemaExtension):
    """Rewrites every error of the result through `to_client_error`, including an exception
    another extension raised (Strawberry would otherwise answer its bare message)."""

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context.context
        rid = getattr(getattr(getattr(context, "request", None), "state", None), "request_id", None)
        try:
            yield
        except _HTTP_ERRORS:
            raise  # Strawberry's view answers these as HTTP errors (400, 405)
        except Exception as exc:
            error = (
                exc if isinstance(exc, GraphQLError) else GraphQLError(str(exc), original_error=exc)
            )
            _answer_unavailable(context, error)
            masked = to_client_error(error, rid)
            # The operation ends without a result for OperationObserver to read its code from.
            telemetry.error_code(str((masked.extensions or {}).get("code", INTERNAL)))
            raise masked from None
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if not errors:
            return
        aborting = next((e for e in errors if _aborts(e)), None)
        if aborting is not None:
            # Nothing of the operation was saved: no field's data may suggest otherwise.
            result.data = None  # type: ignore[union-attr]
            errors = [aborting]
            _answer_unavailable(context, aborting)
        result.errors = [to_client_error(e, rid) for e in errors]  # type: ignore[union-attr]


_HTTP_ERRORS = (MissingQueryError, CannotGetOperationTypeError, InvalidOperationTypeError)


def _aborts(error: GraphQLError) -> bool:
    return isinstance(error.original_error, OperationAborted)


def _answer_unavailable(context: object, error: GraphQLError) -> None:
    """HTTP 503 with `Retry-After` for an error that aborts the operation."""
    response = getattr(context, "response", None)
    if not _aborts(error) or response is None:
        return
    response.status_code = 503
    response.headers["retry-after"] = str(getattr(error.original_error, "retry_after", 1))
