"""GraphQL over HTTP (the specification's draft; docs/clients.md): media types, the status
codes of each, request errors without `data`, and never an answer that is not GraphQL JSON.

Each case runs with both media types: legacy `application/json` (200 for every GraphQL
response to a well-formed request) and `application/graphql-response+json` (the status
tells what the body says).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from app.api.transport import GRAPHQL_RESPONSE_JSON, JSON, response_media_type
from app.core.db import Database
from app.core.security import TokenService
from tests.api.test_relation_permissions import caller, content
from tests.app_fixtures import GraphQL, Org, without_cost

LEGACY = "application/json"


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),  # what legacy clients (Apollo Client 3) send
        ("application/json", JSON),
        ("application/*", JSON),
        ("application/graphql-response+json", GRAPHQL_RESPONSE_JSON),
        ("application/graphql-response+json, application/json;q=0.9", GRAPHQL_RESPONSE_JSON),
        # urql's: every type at q=1; ours is preferred among equals
        (
            "application/graphql-response+json, application/graphql+json, application/json,"
            " text/event-stream, multipart/mixed",
            GRAPHQL_RESPONSE_JSON,
        ),
        ("Application/GraphQL-Response+JSON", GRAPHQL_RESPONSE_JSON),
        ("application/json, application/graphql-response+json;q=0.5", JSON),
        ("application/graphql-response+json;q=0, application/json", JSON),
        ("text/html,application/xhtml+xml,*/*;q=0.8", JSON),  # a browser
        ("text/html", None),
        ("text/plain, image/png", None),
        ("application/graphql-response+json;q=0", None),
        ("not a media type", JSON),  # unparseable: as if absent
    ],
)
def test_the_media_type_follows_the_accept_header(accept: str | None, chosen: str | None) -> None:
    assert response_media_type(accept) == chosen


@dataclass(frozen=True)
class Case:
    """A request and what each media type answers it with."""

    legacy: int
    modern: int
    code: str | None  # the first error's code; None: no error
    has_data: bool = True
    body: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, Any] | None = None
    operation_name: str | None = None
    signed_in: bool = True


CASES: dict[str, tuple[str, Case]] = {
    "data": ("{ viewer { email } }", Case(200, 200, None)),
    "parse-error": ("{ viewer {", Case(200, 400, "GRAPHQL_PARSE_FAILED", has_data=False)),
    "validation-error": (
        "{ viewer { nope } }",
        Case(200, 422, "GRAPHQL_VALIDATION_FAILED", has_data=False),
    ),
    "depth-limit": (
        "{ viewer { assignedTasks(first: 1) { nodes { project { tasks(first: 1) { nodes {"
        " project { tasks(first: 1) { nodes { project { tasks(first: 1) { nodes { project {"
        " tasks(first: 1) { nodes { project { id } } } } } } } } } } } } } } } } }",
        Case(200, 422, "QUERY_TOO_DEEP", has_data=False),
    ),
    "bad-variables": (
        "query($n: Int!) { projects(first: $n) { totalCount } }",
        Case(200, 422, "BAD_USER_INPUT", has_data=False, variables={"n": "many"}),
    ),
    "unknown-operation": (
        "query A { viewer { id } }",
        Case(200, 422, "OPERATION_RESOLUTION_FAILURE", has_data=False, operation_name="B"),
    ),
    "ambiguous-operation": (
        "query A { viewer { id } } query B { viewer { id } }",
        Case(200, 422, "OPERATION_RESOLUTION_FAILURE", has_data=False),
    ),
    "unstorable-input": (
        "query($a: String) { projects(after: $a) { totalCount } }",
        Case(200, 422, "INVALID", has_data=False, variables={"a": "x\u0000y"}),
    ),
    "unauthenticated": (
        "{ viewer { id } }",
        Case(200, 401, "UNAUTHENTICATED", has_data=False, signed_in=False),
    ),
}


@pytest.mark.parametrize("media", [LEGACY, GRAPHQL_RESPONSE_JSON])
@pytest.mark.parametrize("name", list(CASES))
async def test_status_and_body_of_each_outcome(
    http: httpx.AsyncClient, org: Org, statements: list[str], media: str, name: str
) -> None:
    # given
    document, case = CASES[name]
    headers = {"accept": media}
    if case.signed_in:
        headers["authorization"] = f"Bearer {org.token}"
    payload: dict[str, Any] = {"query": document}
    if case.variables is not None:
        payload["variables"] = case.variables
    if case.operation_name is not None:
        payload["operationName"] = case.operation_name

    # when
    response = await http.post("/graphql", json=payload, headers=headers)

    # then
    body = response.json()
    assert response.status_code == (case.legacy if media == LEGACY else case.modern), body
    assert response.headers["content-type"].startswith(media)
    assert ("data" in body) is case.has_data
    if case.code is None:
        assert "errors" not in body
    else:
        assert body["errors"][0]["extensions"]["code"] == case.code
    if not case.has_data:
        # A request error: refused before execution, so no SQL beyond the caller's checks.
        assert not [s for s in statements if "FROM users" in s or "projects" in s], statements


@pytest.mark.parametrize("media", [LEGACY, GRAPHQL_RESPONSE_JSON])
async def test_partial_data_is_294_with_the_graphql_media_type(
    http: httpx.AsyncClient, database: Database, tokens: TokenService, media: str
) -> None:
    # given: a project reader who may not read users, asking for tasks' assignees
    world = await content(database, tokens)
    _, token = await caller(database, tokens, world, ["project:read"])

    # when
    response = await http.post(
        "/graphql",
        json={"query": "{ tasks { nodes { title assignee { email } } } }"},
        headers={"authorization": f"Bearer {token}", "accept": media},
    )

    # then: the data that could be read, the refusal at its path
    body = response.json()
    assert response.status_code == (200 if media == LEGACY else 294)
    assert body["data"] == {"tasks": {"nodes": [{"title": "Secret task", "assignee": None}]}}
    assert [e["path"] for e in body["errors"]] == [["tasks", "nodes", 0, "assignee"]]


@pytest.mark.parametrize("media", [LEGACY, GRAPHQL_RESPONSE_JSON])
async def test_a_field_error_that_nulls_the_data_keeps_data_null(
    http: httpx.AsyncClient, database: Database, tokens: TokenService, media: str
) -> None:
    # given: a caller without the permission of a mutation (a non-null root field)
    world = await content(database, tokens)
    _, token = await caller(database, tokens, world, ["project:read"])

    # when
    response = await http.post(
        "/graphql",
        json={"query": 'mutation { createProject(input: {name: "x"}) { errors { code } } }'},
        headers={"authorization": f"Bearer {token}", "accept": media},
    )

    # then: execution began (a field error), so `data` is there, null
    body = response.json()
    assert response.status_code == (200 if media == LEGACY else 294)
    assert body["data"] is None
    assert body["errors"][0]["path"] == ["createProject"]
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize("media", [LEGACY, GRAPHQL_RESPONSE_JSON])
async def test_a_refused_nullable_root_field_is_null_beside_its_siblings(
    http: httpx.AsyncClient, database: Database, tokens: TokenService, media: str
) -> None:
    # given: a caller without the audit log's permission (a nullable root field)
    world = await content(database, tokens)
    _, token = await caller(database, tokens, world, ["project:read"])

    # when
    response = await http.post(
        "/graphql",
        json={"query": "{ auditLog { totalCount } projects { totalCount } }"},
        headers={"authorization": f"Bearer {token}", "accept": media},
    )

    # then: a partial success: the projects, and the refusal at its path
    body = response.json()
    assert response.status_code == (200 if media == LEGACY else 294)
    assert body["data"] == {"auditLog": None, "projects": {"totalCount": 1}}
    assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [
        (["auditLog"], "FORBIDDEN")
    ]


# Requests that are not well-formed GraphQL-over-HTTP requests this server takes: the same
# 4xx whatever the media type, and still a GraphQL response.
MALFORMED: dict[str, tuple[dict[str, Any], int, str]] = {
    "bad-json": ({"content": b'{"query":', "type": "application/json"}, 400, "BAD_REQUEST"),
    "empty-body": ({"content": b"", "type": "application/json"}, 400, "BAD_REQUEST"),
    "deep-json": (
        {"content": b"[" * 100_000 + b"]" * 100_000, "type": "application/json"},
        400,
        "BAD_REQUEST",
    ),
    "not-an-object": (
        {"content": b'"{ viewer { id } }"', "type": "application/json"},
        422,
        "BAD_REQUEST",
    ),
    "missing-query": (
        {"content": b'{"qeury": "{ __typename }"}', "type": "application/json"},
        422,
        "BAD_REQUEST",
    ),
    "query-not-a-string": (
        {"content": b'{"query": 1}', "type": "application/json"},
        422,
        "BAD_REQUEST",
    ),
    "variables-not-an-object": (
        {"content": b'{"query": "{ __typename }", "variables": [7]}', "type": "application/json"},
        422,
        "BAD_REQUEST",
    ),
    "text-plain": (
        {"content": b'{"query": "{ __typename }"}', "type": "text/plain"},
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    ),
    "form": (
        {"content": b"query=%7B__typename%7D", "type": "application/x-www-form-urlencoded"},
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    ),
    "no-content-type": (
        {"content": b'{"query": "{ __typename }"}', "type": None},
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    ),
    "latin-1": (
        {"content": b'{"query": "{ __typename }"}', "type": "application/json; charset=latin-1"},
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    ),
    "batch-when-off": (
        {"content": b'[{"query": "{ __typename }"}]', "type": "application/json"},
        422,
        "BATCHING_NOT_ENABLED",
    ),
    "put": (
        {"method": "PUT", "content": b'{"query": "{ __typename }"}', "type": "application/json"},
        405,
        "METHOD_NOT_ALLOWED",
    ),
    "delete": ({"method": "DELETE"}, 405, "METHOD_NOT_ALLOWED"),
    "get-without-query": ({"method": "GET", "params": {}}, 422, "BAD_REQUEST"),
    "get-bad-variables": (
        {"method": "GET", "params": {"query": "{ __typename }", "variables": "{"}},
        400,
        "BAD_REQUEST",
    ),
    "get-mutation": (
        {"method": "GET", "params": {"query": "mutation { signOut { revokedSessions } }"}},
        405,
        "METHOD_NOT_ALLOWED",
    ),
    "empty-query": ({"content": b'{"query": ""}', "type": "application/json"}, 422, "BAD_REQUEST"),
}
ALLOW = {"put": "GET, POST", "delete": "GET, POST", "get-mutation": "POST"}


@pytest.mark.parametrize("media", [LEGACY, GRAPHQL_RESPONSE_JSON])
@pytest.mark.parametrize("name", list(MALFORMED))
async def test_malformed_requests_get_their_4xx_as_graphql_json(
    http: httpx.AsyncClient, org: Org, statements: list[str], media: str, name: str
) -> None:
    # given
    request, status, code = MALFORMED[name]
    headers = {"accept": media, "authorization": f"Bearer {org.token}"}
    if request.get("type") is not None:
        headers["content-type"] = request["type"]

    # when
    response = await http.request(
        request.get("method", "POST"),
        "/graphql",
        content=request.get("content"),
        params=request.get("params"),
        headers=headers,
    )

    # then
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(media)
    body = response.json()
    assert set(body) == {"errors"}
    [error] = body["errors"]
    assert error["extensions"] == {"code": code}
    assert error["message"]
    assert response.headers.get("allow") == ALLOW.get(name)
    assert not [s for s in statements if "projects" in s], statements


async def test_what_nothing_acceptable_asks_for_is_406_in_json(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"accept": "text/plain"}
    )

    assert response.status_code == 406
    assert response.headers["content-type"] == "application/json"
    assert response.json()["errors"][0]["extensions"]["code"] == "NOT_ACCEPTABLE"


@pytest.mark.parametrize("media", [LEGACY, GRAPHQL_RESPONSE_JSON])
async def test_queries_over_get(http: httpx.AsyncClient, org: Org, media: str) -> None:
    # when: parameters in the URL, variables as JSON, an empty operationName as absent
    response = await http.get(
        "/graphql",
        params={
            "query": "query Me($n: Int) { viewer { email } projects(first: $n) { totalCount } }",
            "variables": json.dumps({"n": 1}),
            "operationName": "",
        },
        headers={"accept": media, "authorization": f"Bearer {org.token}"},
    )

    # then
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media)
    assert without_cost(response.json()) == {
        "data": {"viewer": {"email": org.members[0].email}, "projects": {"totalCount": 0}}
    }


async def test_graphiql_is_still_served_to_browsers(http: httpx.AsyncClient) -> None:
    response = await http.get("/graphql", headers={"accept": "text/html"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")


async def test_an_unknown_parameter_is_ignored(gql: GraphQL, org: Org) -> None:
    response = await gql.http.post(
        "/graphql",
        json={"query": "{ viewer { email } }", "somethingElse": [1, 2]},
        headers={"authorization": f"Bearer {org.token}"},
    )

    assert without_cost(response.json()) == {"data": {"viewer": {"email": org.members[0].email}}}
