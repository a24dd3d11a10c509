"""GraphQL over HTTP: what a request may carry, and which media type and status answer it.

Follows the GraphQL-over-HTTP specification (draft), written for front ends in
docs/clients.md:

- **Media types.** `application/graphql-response+json` when the `Accept` header names it at
  least as gladly as `application/json`; `application/json` otherwise (no `Accept`, `*/*`,
  legacy clients); 406 when `Accept` allows neither.
- **Status codes.** With `application/graphql-response+json` the status says what the body
  says: 200 for data, 294 (the specification's "partial success") for data with errors,
  and for a request error (no `data`) the 4xx of its code (`REQUEST_ERROR_STATUS`).
  With `application/json` every GraphQL response to a well-formed request is 200, as the
  specification's earlier drafts require of that media type: legacy clients (Apollo Client
  3's error link, Relay's usual fetch function) read a body only from a 2xx answer.
  A request that is not well-formed (bad JSON, wrong method or content type) gets its 4xx
  whatever the media type, and the body is a GraphQL response all the same.
- **Every answer is GraphQL JSON**: `{"errors": [{"message", "extensions": {"code"}}]}`,
  never text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import mimeparse
from starlette.responses import Response

from app.api.encoding import json_bytes
from app.api.errors import error_document
from app.core import telemetry
from app.core.validation import json_value

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"

# The status of a request error (a response without `data`) with application/graphql-
# response+json, by its code; others are 400 (a server failure sets its own 5xx).
REQUEST_ERROR_STATUS: dict[str, int] = {
    "GRAPHQL_PARSE_FAILED": 400,
    "GRAPHQL_VALIDATION_FAILED": 422,
    "OPERATION_RESOLUTION_FAILURE": 422,
    "BAD_USER_INPUT": 422,
    # An input no service could store (a NUL, a lone surrogate), refused before execution.
    "INVALID": 422,
    "QUERY_TOO_DEEP": 422,
    "TOO_MANY_ALIASES": 422,
    "QUERY_TOO_LARGE": 422,
    "QUERY_TOO_COMPLEX": 422,
    "UNAUTHENTICATED": 401,
    "FORBIDDEN": 403,
    "PERSISTED_QUERY_NOT_FOUND": 404,
    "PERSISTED_QUERY_NOT_SUPPORTED": 400,
    "PERSISTED_QUERY_HASH_MISMATCH": 400,
    "PERSISTED_QUERY_NOT_IN_LIST": 403,
    "INTERNAL_SERVER_ERROR": 500,
}
# "Partial success": data and errors together (the specification's recommendation).
PARTIAL_SUCCESS = 294


def response_media_type(accept: str | None) -> str | None:
    """The media type to answer in; None when `accept` allows neither JSON type (406).

    application/graphql-response+json only when named explicitly (`*/*` is what legacy
    clients send) with a quality at least that of application/json; ranges that do not
    parse ask for nothing, and a header of nothing but those counts as absent.
    """
    ranges = []
    # Media types are case-insensitive; so are the parameter names that matter here (q).
    for part in (accept or "").lower().split(","):
        try:
            ranges.append(mimeparse.parse_media_range(part))
        except mimeparse.MimeTypeParseException:
            continue
    if not ranges:
        return JSON
    named = max(
        (float(p["q"]) for kind, sub, p in ranges if f"{kind}/{sub}" == GRAPHQL_RESPONSE_JSON),
        default=0.0,
    )
    legacy = mimeparse.quality_parsed(JSON, ranges)
    if named > 0 and named >= legacy:
        return GRAPHQL_RESPONSE_JSON
    return JSON if legacy > 0 else None


class RequestError(Exception):
    """A request refused as a whole, before any operation runs, because it is not a
    well-formed GraphQL-over-HTTP request this server takes: answered with `status` (and
    `headers`, e.g. `Allow`) in either media type."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def graphql_response(
    body: object, *, status: int, media_type: str, headers: Mapping[str, str] | None = None
) -> Response:
    """`body` as the HTTP response: JSON in the negotiated media type."""
    encoded = json_bytes(body)
    content_type = f"{media_type}; charset=utf-8" if media_type == GRAPHQL_RESPONSE_JSON else JSON
    return Response(
        encoded, status_code=status, headers={**(headers or {}), "content-type": content_type}
    )


def refusal(error: RequestError, media_type: str) -> Response:
    """The answer to a request refused as a whole."""
    telemetry.error_code(error.code)
    return graphql_response(
        error_document(error.code, error.message),
        status=error.status,
        media_type=media_type,
        headers=error.headers,
    )


def status_of(response: Mapping[str, Any], media_type: str) -> int:
    """The status of one GraphQL response to a well-formed request (see the module)."""
    if media_type == JSON:
        return 200
    errors = response.get("errors") or []
    if "data" not in response:
        code = (errors[0].get("extensions") or {}).get("code") if errors else None
        return REQUEST_ERROR_STATUS.get(str(code), 400)
    return PARTIAL_SUCCESS if errors else 200


@dataclass(frozen=True)
class OperationRequest:
    """One operation as the client asked for it (GraphQL-over-HTTP's request parameters,
    with `documentId` of its persisted-documents appendix)."""

    query: str | None
    variables: dict[str, Any] | None = None
    operation_name: str | None = None
    extensions: dict[str, Any] | None = None
    document_id: str | None = None

    @property
    def persisted_query(self) -> object:
        """Apollo's `extensions.persistedQuery`, if sent."""
        return (self.extensions or {}).get("persistedQuery")


_PARAMETERS = {
    "query": str,
    "operationName": str,
    "variables": dict,
    "extensions": dict,
    "documentId": str,
}


def _parameters(given: object) -> OperationRequest:
    if not isinstance(given, dict):
        raise RequestError(422, "BAD_REQUEST", "The request body must be a JSON object")
    values: dict[str, Any] = {}
    for name, kind in _PARAMETERS.items():
        value = given.get(name)
        # Unknown parameters are ignored; null stands for absent (the specification).
        if value is not None and not isinstance(value, kind):
            what = "a string" if kind is str else "an object"
            raise RequestError(422, "BAD_REQUEST", f"The request's `{name}` must be {what} or null")
        values[name] = value
    request = OperationRequest(
        query=values["query"],
        variables=values["variables"],
        operation_name=values["operationName"],
        extensions=values["extensions"],
        document_id=values["documentId"],
    )
    if request.query is None and request.document_id is None and request.persisted_query is None:
        raise RequestError(
            422,
            "BAD_REQUEST",
            "No GraphQL query found: send `query` (or a persisted document's id, see"
            " docs/clients.md)",
        )
    return request


def _json(text: str | bytes, what: str) -> object:
    try:
        return json_value(text)
    except ValueError:
        raise RequestError(400, "BAD_REQUEST", f"Unable to parse {what} as JSON") from None


def query_parameters(params: Mapping[str, str]) -> OperationRequest:
    """The operation of a GET request: parameters in the URL, `variables` and `extensions`
    as JSON; an empty parameter is an absent one."""
    given: dict[str, object] = {}
    for name in _PARAMETERS:
        value = params.get(name)
        if value is None or value == "":
            continue
        given[name] = value if name not in ("variables", "extensions") else _json(value, name)
    return _parameters(given)


def body_operations(
    content_type: str | None, body: bytes, *, max_batch: int
) -> OperationRequest | list[OperationRequest]:
    """The operation(s) of a POST: a JSON object, or a JSON array of them where batching is
    on (`max_batch` > 0). Only `application/json`: the "simple" types a cross-site form or
    fetch may send without a CORS preflight (form, multipart, text/plain) are refused."""
    kind, subtype, params = _content_type(content_type)
    if (kind, subtype) != ("application", "json") or params.get("charset", "utf-8").lower() not in (
        "utf-8",
        "utf8",
    ):
        raise RequestError(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "Send GraphQL requests as `Content-Type: application/json` (UTF-8)",
        )
    parsed = _json(body, "request body")
    if not isinstance(parsed, list):
        return _parameters(parsed)
    if max_batch <= 0:
        raise RequestError(
            422,
            "BATCHING_NOT_ENABLED",
            "Batched requests (a JSON array of operations) are not enabled on this server",
        )
    if not parsed or len(parsed) > max_batch:
        raise RequestError(
            422,
            "TOO_MANY_OPERATIONS",
            f"A batch holds between 1 and {max_batch} operations, not {len(parsed)}",
        )
    return [_parameters(item) for item in parsed]


def _content_type(header: str | None) -> tuple[str, str, dict[str, str]]:
    try:
        kind, subtype, params = mimeparse.parse_mime_type(header or "")
    except mimeparse.MimeTypeParseException:
        return "", "", {}
    return kind.lower(), subtype.lower(), params
