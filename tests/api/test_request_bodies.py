"""A request the GraphQL endpoint cannot read is a 4xx with a GraphQL JSON error and a stable
code: never text/plain, never a 500 (400 for what is not JSON, 422 for JSON that is not a
GraphQL request, 415 for another content type: GraphQL over HTTP's statuses). Opaque values a
client passes back (cursors, tokens) that hide malformed or absurdly nested JSON are INVALID,
not internal errors."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from tests.app_fixtures import GraphQL, Org, without_cost

JSON = {"content-type": "application/json"}
VIEWER = "{ viewer { id } }"


def assert_bad_request(
    response: httpx.Response, message: str, status: int = 400, code: str = "BAD_REQUEST"
) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"errors": [{"message": message, "extensions": {"code": code}}]}


@pytest.mark.parametrize(
    "content",
    [
        b'{"query": "{ viewer { id } }", "x": "\xff"}',
        b'{"query": "\xe2\x82"}',  # a truncated three-byte sequence
        b'{"query": "\xc0\xaf"}',  # an overlong encoding of "/"
        b'{"query": "\xed\xa0\x80"}',  # a surrogate encoded as UTF-8 (CESU-8)
        b"\xff\xfe\x00",
        '{"query": "{ viewer { id } }"}'.encode("utf-16"),
        b"{",
        b"",
        b'{"query": "' + b"[" * 50_000,
        b'{"query": "{ viewer { id } }", "variables": {"v": ' + b"[" * 100_000 + b"}}",
    ],
    ids=[
        "invalid-byte",
        "truncated-sequence",
        "overlong",
        "encoded-surrogate",
        "bom-like",
        "utf-16",
        "truncated-json",
        "empty",
        "unterminated-string",
        "nested-too-deep",
    ],
)
async def test_an_undecodable_body_is_a_json_400(
    http: httpx.AsyncClient, org: Org, content: bytes
) -> None:
    # Signed in: the larger bodies here are over the limit for requests without a token.
    headers = {**JSON, "authorization": f"Bearer {org.token}"}
    response = await http.post("/graphql", content=content, headers=headers)

    assert_bad_request(response, "Unable to parse request body as JSON")
    assert (await http.get("/healthz")).json() == {"status": "ok"}


async def test_a_leading_byte_order_mark_is_ignored(http: httpx.AsyncClient) -> None:
    # RFC 8259 lets a parser ignore it (and so did the server before).
    content = b'\xef\xbb\xbf{"query": "{ __typename }"}'

    response = await http.post("/graphql", content=content, headers=JSON)

    assert without_cost(response.json()) == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize("content", [b"1", b'"{ viewer { id } }"', b"null", b"true"])
async def test_a_body_that_is_not_an_object_is_a_json_400(
    http: httpx.AsyncClient, content: bytes
) -> None:
    response = await http.post("/graphql", content=content, headers=JSON)

    assert_bad_request(response, "The request body must be a JSON object", 422)


@pytest.mark.parametrize(
    ("payload", "message", "code"),
    [
        (
            {},
            "No GraphQL query found: send `query` (or a persisted document's id, see"
            " docs/clients.md)",
            "BAD_REQUEST",
        ),
        ({"query": 1}, "The request's `query` must be a string or null", "BAD_REQUEST"),
        (
            {"query": VIEWER, "variables": [1]},
            "The request's `variables` must be an object or null",
            "BAD_REQUEST",
        ),
        (
            [{"query": VIEWER}],
            "Batched requests (a JSON array of operations) are not enabled on this server",
            "BATCHING_NOT_ENABLED",
        ),
    ],
    ids=["no-query", "query-not-a-string", "variables-not-an-object", "batch"],
)
async def test_a_request_that_is_not_a_graphql_request_is_a_json_422(
    http: httpx.AsyncClient, payload: Any, message: str, code: str
) -> None:
    response = await http.post("/graphql", content=json.dumps(payload), headers=JSON)

    assert_bad_request(response, message, 422, code)


async def test_an_unknown_operation_name_is_a_request_error(http: httpx.AsyncClient) -> None:
    # The request is well-formed; GraphQL's GetOperation() refuses it (200 in application/json).
    payload = {"query": VIEWER, "operationName": "Nope"}
    response = await http.post("/graphql", content=json.dumps(payload), headers=JSON)

    assert response.status_code == 200
    assert response.json() == {
        "errors": [
            {
                "message": "Unknown operation named 'Nope'",
                "extensions": {"code": "OPERATION_RESOLUTION_FAILURE"},
            }
        ]
    }


@pytest.mark.parametrize(
    "variables", ["{", "[" * 100_000, "1"], ids=["not-json", "nested-too-deep", "not-an-object"]
)
async def test_undecodable_get_variables_are_a_json_400(
    http: httpx.AsyncClient, variables: str
) -> None:
    # (8000 levels: as deep as a URL carries, and deeper than the parser recurses.)
    response = await http.get("/graphql", params={"query": VIEWER, "variables": variables[:8000]})

    # Not JSON: 400; JSON but not an object: not a GraphQL request, 422.
    assert response.status_code == (422 if variables == "1" else 400), response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["errors"][0]["extensions"] == {"code": "BAD_REQUEST"}


async def test_an_unsupported_content_type_is_a_json_415(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/graphql", content=json.dumps({"query": VIEWER}), headers={"content-type": "text/plain"}
    )

    assert_bad_request(
        response,
        "Send GraphQL requests as `Content-Type: application/json` (UTF-8)",
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    )


def _cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        _cursor(b"[" * 100_000),
        _cursor(b'[{"a": ' * 20_000),
        _cursor(b'{"a": 1, "b": 2}'),
        _cursor(b"\xff\xfe"),
        _cursor(json.dumps(["x", "not-a-uuid"]).encode()),
    ],
    ids=["nested-lists", "nested-objects", "an-object", "not-utf8", "not-an-id"],
)
async def test_a_forged_cursor_is_invalid(gql: GraphQL, org: Org, cursor: str) -> None:
    body = await gql(
        "query($a: String) { projects(after: $a) { totalCount } }", {"a": cursor}, token=org.token
    )

    [error] = body["errors"]
    assert error["extensions"] == {"code": "INVALID", "field": "after"}, body
    assert error["message"] == "Invalid cursor"
