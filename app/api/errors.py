"""The one boundary where failures become GraphQL errors with a stable `extensions.code`.

Domain errors keep their message and code. Syntax and validation errors keep graphql-core's
message (it describes the client's own document). Anything else is logged in full with the
request id and reaches the client only as "Internal server error".
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import asyncpg
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from app.core.errors import DomainError, translate_database_error

logger = logging.getLogger("tenantry.errors")

INTERNAL = "INTERNAL_SERVER_ERROR"
VALIDATION = "GRAPHQL_VALIDATION_FAILED"


def error_body(code: str, message: str, details: dict[str, object] | None = None) -> bytes:
    """A GraphQL-shaped error document for answers given outside GraphQL execution (the
    middleware's refusals, a request body that is not a GraphQL request)."""
    extensions = {"code": code, **(details or {})}
    return json.dumps({"errors": [{"message": message, "extensions": extensions}]}).encode()


def to_client_error(error: GraphQLError, request_id: str | None) -> GraphQLError:
    original = error.original_error
    if isinstance(original, asyncpg.PostgresError):
        original = translate_database_error(original) or original
    if isinstance(original, DomainError):
        extensions: dict[str, Any] = {"code": original.code}
        if original.field:
            extensions["field"] = original.field
        extensions.update(original.details())
        return GraphQLError(
            original.message, nodes=error.nodes, path=error.path, extensions=extensions
        )
    # graphql-core's own errors describe the client's document or variables (a variable
    # missing a required input field wraps one): never ours, shown as they are.
    if original is None or isinstance(original, GraphQLError):
        return GraphQLError(
            error.message, nodes=error.nodes, path=error.path, extensions={"code": VALIDATION}
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
    """Rewrites every error of the result through `to_client_error`."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if not errors:
            return
        context = self.execution_context.context
        request_id = getattr(getattr(context, "request", None), "state", None)
        rid = getattr(request_id, "request_id", None)
        result.errors = [to_client_error(e, rid) for e in errors]  # type: ignore[union-attr]
