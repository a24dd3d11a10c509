"""Request hardening (SECURITY.md "Cases: GraphQL" and "Cases: authentication"), each case
against the real server on loopback.

"Nothing executed" is checked with `statements` (every SQL statement the server ran) and, for
mutations, by counting the tenant's rows afterwards through the server's role.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OctKey

from app.api.relay import encode_global_id
from app.core.db import Database
from app.core.keys import KeyRing, generate_signing_key, load_or_create_keys
from app.core.security import TokenService
from app.core.settings import Limits, Settings
from tests.app_fixtures import COST_1, GraphQL, Org, start_server, stop_server, without_cost
from tests.conftest import TestDatabase
from tests.factories import mint_access_token, session_of


@pytest.fixture
async def org(org: Org, gql: GraphQL) -> Org:
    """The shared org, with its status already known to the server (authentication reads it
    at most every few seconds): `statements` then sees only what a request itself runs."""
    await gql("{ __typename }", token=org.token)
    return org


# The server under test runs with the default limits (tests/app_fixtures.py).
LIMITS = Limits()

# --- Documents --------------------------------------------------------------------------------

VIEWER = "{ viewer { id email } }"
PROJECT_COUNT = "{ projects { totalCount } }"
CREATE_PROJECT = """
mutation ($name: String!) {
  createProject(input: {name: $name}) { project { id name } errors { code message field } }
}
"""
CREATE_TASK = """
mutation ($projectId: ID!, $title: String!) {
  createTask(input: {projectId: $projectId, title: $title}) { task { id } errors { code } }
}
"""
UPDATE_PROJECT = """
mutation ($id: ID!, $name: String!) {
  updateProject(input: {id: $id, name: $name}) { project { name } errors { code message field } }
}
"""
PROJECT_NAME = "query ($id: ID!) { project(id: $id) { name } }"
CREATE_VIA_FORM = 'mutation { createProject(input: {name: "csrf"}) { errors { code } } }'


def _chain(levels: int, *, edges: bool = False) -> str:
    """`projects → tasks → project → tasks → …`, `levels` object levels deep, ending in `id`.

    Depth counts object levels: a connection with its `nodes` (or `edges { node }`) is one
    level. `first: 1` keeps every chain far under the cost limit, which is tested on its own.
    """
    inner = "id"
    for level in reversed(range(levels)):
        page = f"edges {{ node {{ {inner} }} }}" if edges else f"nodes {{ {inner} }}"
        if level == 0:
            inner = f"projects(first: 1) {{ {page} }}"
        elif level % 2:
            inner = f"tasks(first: 1) {{ {page} }}"
        else:
            inner = f"project {{ {inner} }}"
    return f"{{ {inner} }}"


def _object_levels_to(value: Any, leaf: dict[str, str]) -> int | None:
    """How many object fields (not counting `nodes`, `edges`, `node`) lead to `leaf`."""
    if value == leaf:
        return 0
    children: list[tuple[str | None, Any]] = []
    if isinstance(value, dict):
        children = list(value.items())
    elif isinstance(value, list):
        children = [(None, item) for item in value]
    for key, child in children:
        below = _object_levels_to(child, leaf)
        if below is not None:
            return below + (0 if key in (None, "nodes", "edges", "node") else 1)
    return None


AT_DEPTH_LIMIT = _chain(LIMITS.max_depth)
AT_DEPTH_LIMIT_WITH_EDGES = _chain(LIMITS.max_depth, edges=True)
OVER_DEPTH_LIMIT = _chain(LIMITS.max_depth + 1)
# The same depth 11, spread over named and inline fragments so no single selection looks deep.
OVER_DEPTH_LIMIT_IN_FRAGMENTS = """
query { projects(first: 1) { ...P } }
fragment P on ProjectConnection { nodes { tasks(first: 1) { ...T } } }
fragment T on TaskConnection { edges { node { project { ...Q } } } }
fragment Q on Project {
  tasks(first: 1) { nodes { ... on Task { project { tasks(first: 1) { ...U } } } } }
}
fragment U on TaskConnection {
  nodes { project { tasks(first: 1) { nodes { project { tasks(first: 1) { nodes {
    project { id }
  } } } } } } }
}
"""


def _aliases(n: int) -> str:
    return "{ " + " ".join(f"a{i}: viewer {{ id }}" for i in range(n)) + " }"


AT_ALIAS_LIMIT = _aliases(LIMITS.max_aliases)
OVER_ALIAS_LIMIT = _aliases(LIMITS.max_aliases + 1)
OVER_ALIAS_LIMIT_IN_FRAGMENT = (
    "{ ...V } fragment V on Query { "
    + " ".join(f"a{i}: viewer {{ id }}" for i in range(LIMITS.max_aliases + 1))
    + " }"
)


def _status_list(n: int) -> str:
    # 16 lexer tokens around n enum values. (Padding with repeated fields would trip
    # graphql-core's own field-comparison budget first, not the token limit.)
    return "{ tasks(filter: {status: [" + "TODO " * n + "]}) { totalCount } }"


AT_TOKEN_LIMIT = _status_list(LIMITS.max_tokens - 16)
OVER_TOKEN_LIMIT = _status_list(LIMITS.max_tokens - 15)

PROJECTS_PAGE = """
query ($first: Int, $after: String) {
  projects(first: $first, after: $after) {
    totalCount
    edges { cursor node { name } }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
}
"""
FIRST_ON_EVERY_CONNECTION = {
    "projects": "query ($first: Int) { projects(first: $first) { totalCount } }",
    "tasks": "query ($first: Int) { tasks(first: $first) { totalCount } }",
    "users": "query ($first: Int) { users(first: $first) { totalCount } }",
    "project.tasks": """
        query ($id: ID!, $first: Int) { project(id: $id) { tasks(first: $first) { totalCount } } }
    """,
}
TASKS_AFTER = """
query ($after: String, $field: TaskOrderField!) {
  tasks(after: $after, orderBy: {field: $field}) { totalCount }
}
"""
PROJECTS_AFTER = """
query ($after: String, $field: ProjectOrderField!) {
  projects(after: $after, orderBy: {field: $field}) { totalCount }
}
"""
INTROSPECTION = "{ __schema { types { name } } }"
MISSPELLED = "{ viewr { email } }"
TENANT = "{ tenant { slug } }"

MASKED_MESSAGE = "Internal server error"
INTERNAL = "INTERNAL_SERVER_ERROR"
GENERATED_REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")


# --- Helpers ----------------------------------------------------------------------------------


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _b64json(value: object) -> str:
    return _b64(json.dumps(value).encode())


async def _count_projects(database: Database, tenant_id: UUID) -> int:
    async with database.transaction(tenant_id, readonly=True) as session:
        return int(await session.fetchval("SELECT count(*) FROM projects"))


async def _seed_projects(database: Database, tenant_id: UUID, n: int) -> None:
    async with database.transaction(tenant_id) as session:
        await session.execute(
            "INSERT INTO projects (tenant_id, name) "
            "SELECT app.current_tenant_id(), 'Project ' || g FROM generate_series(1, $1) g",
            n,
        )


def _errors(body: dict[str, Any]) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = body.get("errors") or []
    return errors


def _only_error(body: dict[str, Any]) -> dict[str, Any]:
    errors = _errors(body)
    assert len(errors) == 1, body
    return errors[0]


async def _create_project(gql: GraphQL, org: Org, name: str = "Alpha") -> str:
    data = await gql.data(CREATE_PROJECT, {"name": name}, token=org.token)
    assert data["createProject"]["errors"] == []
    project_id: str = data["createProject"]["project"]["id"]
    return project_id


# --- Depth, aliases, tokens -------------------------------------------------------------------


async def test_statements_fixture_sees_the_servers_sql(
    gql: GraphQL, org: Org, statements: list[str]
) -> None:
    # given: the "no SQL ran" assertions below mean something only if this one holds

    # when
    await gql.data(VIEWER, token=org.token)

    # then
    assert any("FROM users" in sql for sql in statements), statements


@pytest.mark.parametrize(
    "document",
    [OVER_DEPTH_LIMIT, OVER_DEPTH_LIMIT_IN_FRAGMENTS],
    ids=["inline", "in-fragments"],
)
async def test_query_deeper_than_the_limit_is_rejected_before_any_sql(
    gql: GraphQL, org: Org, statements: list[str], document: str
) -> None:
    # when
    body = await gql(document, token=org.token)

    # then
    assert "data" not in body
    error = _only_error(body)
    assert f"nests {LIMITS.max_depth + 1} levels deep" in error["message"]
    assert error["extensions"] == {
        "code": "QUERY_TOO_DEEP",
        "limit": "depth",
        "maximum": LIMITS.max_depth,
    }
    assert statements == []


@pytest.mark.parametrize(
    "document", [AT_DEPTH_LIMIT, AT_DEPTH_LIMIT_WITH_EDGES], ids=["nodes", "edges-node"]
)
async def test_query_exactly_at_the_depth_limit_is_answered(
    gql: GraphQL, org: Org, document: str
) -> None:
    # given a project with a task, so the deepest selection reaches real rows
    project_id = await _create_project(gql, org)
    created = await gql.data(CREATE_TASK, {"projectId": project_id, "title": "T"}, token=org.token)
    task_id = created["createTask"]["task"]["id"]

    # when
    data = await gql.data(document, token=org.token)

    # then: the task's id, ten object levels down (its project's tasks, and so on)
    assert json.dumps(data).count(task_id) == 1
    assert _object_levels_to(data, {"id": task_id}) == LIMITS.max_depth


@pytest.mark.parametrize(
    "document", [OVER_ALIAS_LIMIT, OVER_ALIAS_LIMIT_IN_FRAGMENT], ids=["inline", "in-fragment"]
)
async def test_too_many_aliases_are_rejected_before_any_sql(
    gql: GraphQL, org: Org, statements: list[str], document: str
) -> None:
    # when
    body = await gql(document, token=org.token)

    # then
    assert "data" not in body
    error = _only_error(body)
    assert f"uses {LIMITS.max_aliases + 1} aliases" in error["message"]
    assert error["extensions"] == {
        "code": "TOO_MANY_ALIASES",
        "limit": "aliases",
        "maximum": LIMITS.max_aliases,
    }
    assert statements == []


async def test_aliases_at_the_limit_are_answered(gql: GraphQL, org: Org) -> None:
    # when
    data = await gql.data(AT_ALIAS_LIMIT, token=org.token)

    # then
    assert len(data) == LIMITS.max_aliases
    assert {v["id"] for v in data.values()} == {encode_global_id("User", org.members[0].id)}


async def test_too_many_tokens_are_rejected_before_any_sql(
    gql: GraphQL, org: Org, statements: list[str]
) -> None:
    # when
    body = await gql(OVER_TOKEN_LIMIT, token=org.token)

    # then: the size limit of the text, in its own words and code
    assert "data" not in body
    error = _only_error(body)
    assert f"more than {LIMITS.max_tokens} tokens" in error["message"]
    assert error["extensions"] == {
        "code": "QUERY_TOO_LARGE",
        "limit": "tokens",
        "maximum": LIMITS.max_tokens,
    }
    assert statements == []


async def test_tokens_at_the_limit_are_answered(gql: GraphQL, org: Org) -> None:
    # when
    data = await gql.data(AT_TOKEN_LIMIT, token=org.token)

    # then
    assert data["tasks"]["totalCount"] == 0


@pytest.mark.parametrize(
    ("document", "code"),
    [
        (OVER_TOKEN_LIMIT, "QUERY_TOO_LARGE"),
        ("{ viewer {", "GRAPHQL_PARSE_FAILED"),
        ("{ viewr { id } }", "GRAPHQL_VALIDATION_FAILED"),
    ],
    ids=["tokens", "syntax", "validation"],
)
async def test_rejected_documents_carry_a_stable_error_code(
    gql: GraphQL, org: Org, document: str, code: str
) -> None:
    # when
    body = await gql(document, token=org.token)

    # then: one code per kind of refusal (limits, parse, validation), and no data at all
    assert _only_error(body).get("extensions", {}).get("code") == code
    assert "data" not in body


async def test_a_syntax_error_keeps_its_location(gql: GraphQL, org: Org) -> None:
    # when
    body = await gql("{\n  viewer {\n    id\n", token=org.token)

    # then
    assert _only_error(body)["locations"] == [{"line": 4, "column": 1}]


@pytest.mark.parametrize(
    ("document", "variables", "named"),
    [
        (CREATE_PROJECT, {"name": None}, "$name"),
        (
            "mutation ($input: CreateProjectInput!) {"
            " createProject(input: $input) { __typename } }",
            {"input": {"description": "no name"}},
            "'name'",
        ),
        (
            "mutation ($input: SignInInput!) { signIn(input: $input) { __typename } }",
            {"input": {"password": "no email"}},
            "'email'",
        ),
    ],
    ids=["null-variable", "missing-input-field", "anonymous"],
)
async def test_invalid_variables_are_bad_user_input_naming_the_field(
    gql: GraphQL,
    org: Org,
    statements: list[str],
    document: str,
    variables: dict[str, Any],
    named: str,
) -> None:
    # when
    body = await gql(document, variables, token=org.token)

    # then: the client's own mistake, explained (not an internal error), and nothing ran
    assert "data" not in body
    error = _only_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert named in error["message"]
    assert not any("projects" in sql for sql in statements), statements


# --- Pagination -------------------------------------------------------------------------------


# (A `first` so large that the operation could return more than max_nodes objects is
# refused earlier, by the cost limit: tests/api/test_cost.py.)
@pytest.mark.parametrize("first", [LIMITS.max_page_size + 1, -1, 10 * LIMITS.max_page_size])
@pytest.mark.parametrize("connection", list(FIRST_ON_EVERY_CONNECTION))
async def test_first_outside_the_page_size_range_is_invalid(
    gql: GraphQL, org: Org, connection: str, first: int
) -> None:
    # given
    variables: dict[str, Any] = {"first": first}
    if connection == "project.tasks":
        variables["id"] = await _create_project(gql, org)

    # when
    body = await gql(FIRST_ON_EVERY_CONNECTION[connection], variables, token=org.token)

    # then
    error = _only_error(body)
    assert error["extensions"] == {"code": "INVALID", "field": "first"}
    assert str(LIMITS.max_page_size) in error["message"]


async def test_without_first_a_page_has_the_default_size_and_the_rest_follows(
    gql: GraphQL, org: Org, database: Database
) -> None:
    # given
    await _seed_projects(database, org.id, LIMITS.default_page_size + 5)

    # when
    first_page = (await gql.data(PROJECTS_PAGE, token=org.token))["projects"]
    after = first_page["pageInfo"]["endCursor"]
    second_page = (await gql.data(PROJECTS_PAGE, {"after": after}, token=org.token))["projects"]

    # then
    assert first_page["totalCount"] == LIMITS.default_page_size + 5
    assert len(first_page["edges"]) == LIMITS.default_page_size
    assert first_page["pageInfo"]["hasNextPage"] is True
    assert len(second_page["edges"]) == 5
    assert second_page["pageInfo"] == {
        "hasNextPage": False,
        "hasPreviousPage": True,
        "endCursor": second_page["edges"][-1]["cursor"],
    }
    names = [e["node"]["name"] for e in first_page["edges"] + second_page["edges"]]
    assert sorted(names) == sorted(f"Project {i}" for i in range(1, LIMITS.default_page_size + 6))


async def test_first_zero_gives_no_edges_but_says_more_exist(
    gql: GraphQL, org: Org, database: Database
) -> None:
    # given
    await _seed_projects(database, org.id, 3)

    # when
    page = (await gql.data(PROJECTS_PAGE, {"first": 0}, token=org.token))["projects"]

    # then
    assert page["edges"] == []
    assert page["totalCount"] == 3
    assert page["pageInfo"]["hasNextPage"] is True
    assert page["pageInfo"]["endCursor"] is None


@pytest.mark.parametrize(
    "after",
    ["zzz", "!!!", "", _b64(b"\xff\xfe"), _b64json({"a": 1}), _b64json(["x"]), _b64json([1, 2])],
)
async def test_malformed_cursor_is_invalid(gql: GraphQL, org: Org, after: str) -> None:
    # when
    body = await gql(PROJECTS_AFTER, {"after": after, "field": "CREATED_AT"}, token=org.token)

    # then
    assert body["data"] == {"projects": None}
    error = _only_error(body)
    assert error["extensions"] == {"code": "INVALID", "field": "after"}


@pytest.mark.parametrize(
    ("document", "field", "sort"),
    [
        pytest.param(PROJECTS_AFTER, "CREATED_AT", "not-a-date", id="timestamp-garbage"),
        pytest.param(PROJECTS_AFTER, "UPDATED_AT", "12", id="timestamp-number"),
        pytest.param(TASKS_AFTER, "DUE_DATE", "2024-02-30", id="date-impossible"),
        pytest.param(TASKS_AFTER, "POSITION", "one", id="float-word"),
        pytest.param(TASKS_AFTER, "PRIORITY", "1.5", id="int-fraction"),
        pytest.param(
            PROJECTS_AFTER,
            "CREATED_AT",
            "2011-W01-2",  # an ISO week date: Python's fromisoformat accepts it
            id="timestamp-week-date",
        ),
        pytest.param(
            TASKS_AFTER,
            "PRIORITY",
            "99999999999",  # fits a Python int, not a PostgreSQL integer
            id="int-overflow",
        ),
        pytest.param(
            TASKS_AFTER,
            "POSITION",
            "1e999",  # inf to Python, out of range to PostgreSQL
            id="float-overflow",
        ),
        pytest.param(
            PROJECTS_AFTER,
            "NAME",
            "a\x00b",  # PostgreSQL text cannot hold NUL
            id="text-nul",
        ),
        pytest.param(
            TASKS_AFTER,
            "PRIORITY",
            "\u0661\u0662",  # Arabic-Indic "12": Python's \d and int() accept it
            id="int-unicode-digits",
        ),
        pytest.param(
            TASKS_AFTER,
            "POSITION",
            "\u0661.\u0665",  # Arabic-Indic "1.5": Python's \d and float() accept it
            id="float-unicode-digits",
        ),
        pytest.param(
            TASKS_AFTER,
            "POSITION",
            "1e-400",  # 0.0 to Python, out of range to PostgreSQL
            id="float-underflow",
        ),
        pytest.param(
            PROJECTS_AFTER,
            "CREATED_AT",
            "2024-01-01 00:00:00+23:59",  # Python allows offsets to 23:59, PostgreSQL to 15:59
            id="timestamp-offset-out-of-range",
        ),
    ],
)
async def test_forged_cursor_of_the_wrong_type_is_invalid_never_internal(
    gql: GraphQL, org: Org, document: str, field: str, sort: str
) -> None:
    # given a well-formed cursor whose sort value does not fit the ordering's type
    after = _b64json([sort, str(uuid4())])

    # when
    body = await gql(document, {"after": after, "field": field}, token=org.token)

    # then
    assert list(body["data"].values()) == [None]  # the one root field, null
    assert _only_error(body)["extensions"] == {"code": "INVALID", "field": "after"}


# --- Request bodies ---------------------------------------------------------------------------


async def test_body_over_the_limit_with_content_length_is_413(http: httpx.AsyncClient) -> None:
    # given
    padding = " " * LIMITS.max_body_bytes
    content = json.dumps({"query": VIEWER + padding}).encode()

    # when
    response = await http.post(
        "/graphql", content=content, headers={"content-type": "application/json"}
    )

    # then
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_streamed_body_over_the_limit_without_content_length_is_413(
    http: httpx.AsyncClient, org: Org, database: Database, statements: list[str]
) -> None:
    # given a chunked body: the server learns its size only while reading it
    chunk = b" " * 100_000
    chunks = LIMITS.max_body_bytes // len(chunk) + 1
    document = json.dumps(
        {"query": 'mutation { createProject(input: {name: "x"}) { errors { code } } }'}
    )

    async def body() -> AsyncIterator[bytes]:
        yield document[:-1].encode()
        for _ in range(chunks):
            yield chunk
        yield b"}"

    # when
    response = await http.post(
        "/graphql",
        content=body(),
        headers={"content-type": "application/json", **_bearer(org.token)},
    )

    # then
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    assert statements == []
    assert await _count_projects(database, org.id) == 0


async def test_anonymous_bodies_have_a_smaller_limit(http: httpx.AsyncClient, org: Org) -> None:
    # given: a body just over the anonymous limit, far under the signed-in one
    content = json.dumps({"query": VIEWER + " " * LIMITS.max_anonymous_body_bytes}).encode()
    json_type = {"content-type": "application/json"}

    # when
    anonymous = await http.post("/graphql", content=content, headers=json_type)
    signed_in = await http.post("/graphql", content=content, headers=json_type | _bearer(org.token))

    # then
    assert anonymous.status_code == 413
    assert anonymous.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    assert signed_in.json()["data"]["viewer"]["email"] == org.members[0].email


async def test_body_just_under_the_limit_is_accepted(http: httpx.AsyncClient, org: Org) -> None:
    # given whitespace padding is ignored by the GraphQL lexer
    envelope = json.dumps({"query": VIEWER + "#"})
    padding = " " * (LIMITS.max_body_bytes - len(envelope))
    content = json.dumps({"query": VIEWER + padding + "#"}).encode()
    assert len(content) == LIMITS.max_body_bytes

    # when
    response = await http.post(
        "/graphql",
        content=content,
        headers={"content-type": "application/json", **_bearer(org.token)},
    )

    # then
    assert response.status_code == 200
    assert response.json()["data"]["viewer"]["email"] == org.members[0].email


async def test_deeply_nested_json_body_is_a_clean_client_error(
    http: httpx.AsyncClient,
) -> None:
    # given variables nested 10 000 levels deep
    nested = "[" * 10_000 + "]" * 10_000
    content = (
        '{"query": "query ($v: String) { viewer { id } }", "variables": {"v": ' + nested + "}}"
    )

    # when
    response = await http.post(
        "/graphql", content=content, headers={"content-type": "application/json"}
    )
    health = await http.get("/healthz")

    # then
    assert health.json() == {"status": "ok"}
    assert 400 <= response.status_code < 500


async def test_deeply_nested_graphql_literal_is_a_clean_error_and_the_server_lives_on(
    gql: GraphQL, http: httpx.AsyncClient, org: Org, statements: list[str]
) -> None:
    # given a list literal nested 900 levels: within the token limit, beyond any sane depth
    nested = "[" * 900 + "]" * 900
    document = "{ projects(filter: {status: " + nested + "}) { totalCount } }"

    # when
    response = await gql.post(document, token=org.token)

    # then
    assert response.status_code == 200
    body = response.json()
    assert "data" not in body
    assert "nested too deeply" in _only_error(body)["message"]
    assert statements == []
    assert (await http.get("/healthz")).json() == {"status": "ok"}


# --- CSRF and methods -------------------------------------------------------------------------


async def test_mutation_over_get_is_rejected_and_creates_nothing(
    http: httpx.AsyncClient, org: Org, database: Database, statements: list[str]
) -> None:
    # when
    response = await http.get(
        "/graphql", params={"query": CREATE_VIA_FORM}, headers=_bearer(org.token)
    )

    # then
    assert 400 <= response.status_code < 500
    assert statements == []
    assert await _count_projects(database, org.id) == 0


async def test_query_over_get_is_answered(http: httpx.AsyncClient, org: Org) -> None:
    # when
    response = await http.get("/graphql", params={"query": VIEWER}, headers=_bearer(org.token))

    # then
    assert response.status_code == 200
    assert response.json()["data"]["viewer"]["email"] == org.members[0].email


def _multipart(document: str) -> tuple[str, str]:
    operations = json.dumps({"query": document, "variables": {}})
    body = (
        '--xyz\r\nContent-Disposition: form-data; name="operations"\r\n\r\n'
        f"{operations}\r\n"
        '--xyz\r\nContent-Disposition: form-data; name="map"\r\n\r\n{}\r\n--xyz--\r\n'
    )
    return "multipart/form-data; boundary=xyz", body


@pytest.mark.parametrize(
    ("content_type", "content"),
    [
        ("application/x-www-form-urlencoded", f"query={CREATE_VIA_FORM}"),
        ("text/plain", json.dumps({"query": CREATE_VIA_FORM})),
        _multipart(CREATE_VIA_FORM),
    ],
    ids=["form", "text-plain", "multipart"],
)
async def test_post_with_a_simple_content_type_is_rejected_and_creates_nothing(
    http: httpx.AsyncClient,
    org: Org,
    database: Database,
    statements: list[str],
    content_type: str,
    content: str,
) -> None:
    # given a cross-site form or fetch() without preflight (a CORS "simple" request)
    headers = {"content-type": content_type, **_bearer(org.token)}

    # when
    response = await http.post("/graphql", content=content, headers=headers)

    # then
    assert 400 <= response.status_code < 500
    assert statements == []
    assert await _count_projects(database, org.id) == 0


# --- Error masking ----------------------------------------------------------------------------


def _assert_masked(response: httpx.Response, *secrets_: str) -> dict[str, Any]:
    body = response.json()
    error = _only_error(body)
    request_id = response.headers["x-request-id"]
    assert error["message"] == MASKED_MESSAGE
    assert error["extensions"] == {"code": INTERNAL, "requestId": request_id}
    assert set(error) <= {"message", "extensions", "locations", "path"}
    for text in (*secrets_, "Traceback", 'File "', "SELECT"):
        assert text not in response.text
    return error


async def test_unexpected_python_error_is_masked_logged_and_rolled_back(
    gql: GraphQL,
    org: Org,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given a service failing with text that must stay on the server
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret SQL: SELECT * FROM users")

    monkeypatch.setattr("app.projects.service.create_project", broken)
    caplog.set_level(logging.ERROR, logger="tenantry.errors")

    # when
    response = await gql.post(CREATE_PROJECT, {"name": "boom"}, token=org.token)

    # then the client sees only the generic error
    assert response.status_code == 200
    assert response.json()["data"] is None
    error = _assert_masked(response, "secret", "users", "RuntimeError")
    assert error["path"] == ["createProject"]
    # and the log has the whole story under the same request id
    logged = [r for r in caplog.records if r.name == "tenantry.errors"]
    assert len(logged) == 1
    assert error["extensions"]["requestId"] in logged[0].getMessage()
    assert logged[0].exc_info is not None
    assert "secret SQL: SELECT * FROM users" in str(logged[0].exc_info[1])
    assert await _count_projects(database, org.id) == 0


async def test_untranslated_database_error_is_masked(
    gql: GraphQL,
    org: Org,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given a database error the app gives no domain meaning
    async def broken(*args: object, **kwargs: object) -> None:
        raise asyncpg.UndefinedTableError('relation "tenant_secrets" does not exist')

    monkeypatch.setattr("app.tenants.service.current_tenant", broken)
    caplog.set_level(logging.ERROR, logger="tenantry.errors")

    # when
    response = await gql.post(TENANT, token=org.token)

    # then
    _assert_masked(response, "tenant_secrets", "relation", "UndefinedTable")
    logged = [logging.Formatter().format(r) for r in caplog.records if r.name == "tenantry.errors"]
    assert len(logged) == 1
    assert 'relation "tenant_secrets" does not exist' in logged[0]


@pytest.fixture
async def impatient_server(app_settings: Settings, test_db: TestDatabase) -> AsyncIterator[str]:
    """A server whose statements may run 200 ms, on its own pool (the budget is the pool's)."""
    timeout_ms = 200
    database = await Database.connect(
        test_db.urls.app, min_size=1, max_size=2, statement_timeout_ms=timeout_ms
    )
    settings = replace(
        app_settings, limits=replace(app_settings.limits, statement_timeout_ms=timeout_ms)
    )
    server, url = await start_server(settings, database)
    try:
        yield url
    finally:
        await stop_server(server)
        await database.close()


async def test_statement_timeout_in_a_mutation_is_unavailable_with_a_generic_message(
    gql: GraphQL, org: Org, database: Database, impatient_server: str
) -> None:
    # given a project whose row the test holds locked
    project_id = await _create_project(gql, org, "Locked")
    async with httpx.AsyncClient(base_url=impatient_server, timeout=30) as client:
        impatient = GraphQL(client)
        async with database.transaction(org.id) as session:
            await session.execute("SELECT 1 FROM projects WHERE name = 'Locked' FOR UPDATE")

            # when the server's UPDATE waits for the lock past its statement budget
            response = await impatient.post(
                UPDATE_PROJECT, {"id": project_id, "name": "Renamed"}, token=org.token
            )

    # then
    payload = response.json()["data"]["updateProject"]
    assert payload["project"] is None
    [error] = payload["errors"]
    assert error["code"] == "UNAVAILABLE"
    assert "statement" not in error["message"].lower()
    assert "projects" not in error["message"]
    renamed = await gql.data(PROJECT_NAME, {"id": project_id}, token=org.token)
    assert renamed["project"] == {"name": "Locked"}


async def test_statement_timeout_in_a_query_is_unavailable_with_a_generic_message(
    org: Org, database: Database, impatient_server: str
) -> None:
    # given the test holds the projects table locked against readers
    async with httpx.AsyncClient(base_url=impatient_server, timeout=30) as client:
        impatient = GraphQL(client)
        async with database.transaction(org.id) as session:
            await session.execute("LOCK TABLE projects IN ACCESS EXCLUSIVE MODE")

            # when
            response = await impatient.post(PROJECT_COUNT, token=org.token)

    # then
    body = response.json()
    assert body["data"] == {"projects": None}
    error = _only_error(body)
    assert error["extensions"] == {"code": "UNAVAILABLE"}
    assert "cancel" not in error["message"].lower()
    assert "projects" not in error["message"]


async def test_error_request_id_matches_the_response_header(
    gql: GraphQL, org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("app.tenants.service.current_tenant", broken)

    # when
    response = await gql.http.post(
        "/graphql",
        json={"query": TENANT},
        headers={"x-request-id": "trace-42", **_bearer(org.token)},
    )

    # then
    assert response.headers["x-request-id"] == "trace-42"
    assert _only_error(response.json())["extensions"]["requestId"] == "trace-42"


# --- Authentication ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server_keys(app_settings: Settings) -> KeySet:
    return load_or_create_keys(app_settings.keys_file, create=False)


TokenFactory = Callable[[KeySet, Settings, Org], str]


def _claims(settings: Settings, org: Org, **changes: object) -> dict[str, object]:
    """Valid access-token claims; a change to None drops that claim."""
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(org.members[0].id),
        "tid": str(org.id),
        # The session member 0's own token belongs to: the server refuses unknown sessions.
        "sid": str(session_of(org.members[0].token)),
        "aal": 1,
        "amr": ["pwd"],
        "auth_time": now,
        "iat": now,
        "exp": now + 600,
        "jti": uuid4().hex,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _header(keys: KeySet, **changes: object) -> dict[str, object]:
    header: dict[str, object] = {"alg": "ES256", "kid": keys.keys[-1].kid, "typ": "at+jwt"}
    header.update(changes)
    return {k: v for k, v in header.items() if v is not None}


def _signed(
    keys: KeySet, settings: Settings, org: Org, *, header: Any = None, **claims: Any
) -> str:
    return jwt.encode(header or _header(keys), _claims(settings, org, **claims), keys.keys[-1])


def _unsigned(keys: KeySet, settings: Settings, org: Org) -> str:
    header = _header(keys, alg="none")
    return f"{_b64json(header)}.{_b64json(_claims(settings, org))}."


def _hmac_with_public_key(keys: KeySet, settings: Settings, org: Org) -> str:
    # The classic algorithm confusion: HS256 keyed with the server's *public* key.
    key = keys.keys[-1]
    assert isinstance(key, ECKey)
    secret = key.as_pem(private=False)
    signing_input = f"{_b64json(_header(keys, alg='HS256'))}.{_b64json(_claims(settings, org))}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _service(keys: KeySet, settings: Settings, **changes: Any) -> TokenService:
    options: dict[str, Any] = {
        "issuer": settings.jwt_issuer,
        "audience": settings.jwt_audience,
        "ttl_seconds": 600,
    }
    options.update(changes)
    return TokenService(KeyRing.fixed(keys), **options)


def _other_key(keys: KeySet, settings: Settings, org: Org) -> str:
    # A different key presenting the server's kid: only the signature gives it away.
    other = generate_signing_key()
    header = _header(keys)
    return jwt.encode(header, _claims(settings, org), other)


def _embedded_jwk(keys: KeySet, settings: Settings, org: Org) -> str:
    other = generate_signing_key()
    header = _header(keys, kid=None, jwk=other.as_dict(private=False))
    return jwt.encode(header, _claims(settings, org), other)


def _hs256(keys: KeySet, settings: Settings, org: Org) -> str:
    header = _header(keys, alg="HS256")
    return jwt.encode(header, _claims(settings, org), OctKey.import_key(secrets.token_bytes(32)))


def _issued(keys: KeySet, settings: Settings, org: Org, **service: Any) -> str:
    issuer = _service(keys, settings, **service)
    return mint_access_token(issuer, user_id=org.members[0].id, tenant_id=org.id)


BAD_TOKENS: dict[str, TokenFactory] = {
    "garbage": lambda k, s, o: "garbage",
    "three-garbage-parts": lambda k, s, o: "a.b.c",
    "alg-none": _unsigned,
    "hs256-random-secret": _hs256,
    "hs256-public-key-as-secret": _hmac_with_public_key,
    "other-key": _other_key,
    "embedded-jwk": _embedded_jwk,
    "unknown-kid": lambda k, s, o: _signed(k, s, o, header=_header(k, kid="unknown")),
    # The right key and signature but no kid: tokens must say which key signed them.
    "no-kid": lambda k, s, o: _signed(k, s, o, header=_header(k, kid=None)),
    "wrong-typ": lambda k, s, o: _signed(k, s, o, header=_header(k, typ="JWT")),
    "refresh-typ": lambda k, s, o: _signed(k, s, o, header=_header(k, typ="refresh+jwt")),
    "no-typ": lambda k, s, o: _signed(k, s, o, header=_header(k, typ=None)),
    # 120 s in the past: beyond the 30 s leeway.
    "expired": lambda k, s, o: _issued(k, s, o, ttl_seconds=-120),
    "nbf-in-future": lambda k, s, o: _signed(k, s, o, nbf=int(time.time()) + 600),
    "wrong-audience": lambda k, s, o: _issued(k, s, o, audience="another-api"),
    "wrong-issuer": lambda k, s, o: _issued(k, s, o, issuer="someone-else"),
    "no-tid": lambda k, s, o: _signed(k, s, o, tid=None),
    "tid-not-uuid": lambda k, s, o: _signed(k, s, o, tid="acme"),
    "no-sub": lambda k, s, o: _signed(k, s, o, sub=None),
    "no-exp": lambda k, s, o: _signed(k, s, o, exp=None),
    "no-iss": lambda k, s, o: _signed(k, s, o, iss=None),
    "no-aud": lambda k, s, o: _signed(k, s, o, aud=None),
    "no-jti": lambda k, s, o: _signed(k, s, o, jti=None),
    "no-sid": lambda k, s, o: _signed(k, s, o, sid=None),
    "sid-not-uuid": lambda k, s, o: _signed(k, s, o, sid="session-1"),
    "no-aal": lambda k, s, o: _signed(k, s, o, aal=None),
    "aal-3": lambda k, s, o: _signed(k, s, o, aal=3),
    "no-amr": lambda k, s, o: _signed(k, s, o, amr=None),
    "amr-not-a-list": lambda k, s, o: _signed(k, s, o, amr="pwd"),
    "no-auth-time": lambda k, s, o: _signed(k, s, o, auth_time=None),
    "mfa-challenge-typ": lambda k, s, o: _signed(
        k, s, o, header=_header(k, typ="mfa-challenge+jwt")
    ),
}
BAD_AUTHORIZATION_HEADERS = {
    "bearer-without-token": "Bearer",
    "basic-scheme": "Basic dXNlcjpwYXNz",
    "token-scheme": "Token abc",
}


# GraphQL over HTTP's own media type: the status tells the refusal (legacy application/json
# answers 200 with the same body: tests/api/test_authentication_shape.py).
GRAPHQL_RESPONSE = {"accept": "application/graphql-response+json"}


def _assert_invalid_token(response: httpx.Response) -> None:
    """The one answer to a refused token: an UNAUTHENTICATED request error, nothing else."""
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert without_cost(response.json()) == {
        "errors": [{"message": "Invalid access token", "extensions": {"code": "UNAUTHENTICATED"}}]
    }


async def test_forged_token_baseline_is_accepted(
    gql: GraphQL, org: Org, server_keys: KeySet, app_settings: Settings
) -> None:
    # given a token built by the same helpers, with nothing wrong in it
    token = _signed(server_keys, app_settings, org)

    # when
    data = await gql.data(VIEWER, token=token)

    # then: so each rejection below is due to the one defect it introduces
    assert data["viewer"]["email"] == org.members[0].email


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
async def test_bad_token_is_unauthenticated_and_runs_nothing(
    gql: GraphQL,
    org: Org,
    server_keys: KeySet,
    app_settings: Settings,
    statements: list[str],
    kind: str,
) -> None:
    # given
    token = BAD_TOKENS[kind](server_keys, app_settings, org)

    # when
    response = await gql.post(VIEWER, token=token, headers=GRAPHQL_RESPONSE)

    # then
    _assert_invalid_token(response)
    assert statements == []


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
async def test_bad_token_on_a_mutation_is_unauthenticated_and_creates_nothing(
    gql: GraphQL,
    org: Org,
    database: Database,
    server_keys: KeySet,
    app_settings: Settings,
    statements: list[str],
    kind: str,
) -> None:
    # given
    token = BAD_TOKENS[kind](server_keys, app_settings, org)

    # when
    response = await gql.post(
        CREATE_PROJECT, {"name": "forged"}, token=token, headers=GRAPHQL_RESPONSE
    )

    # then
    _assert_invalid_token(response)
    assert statements == []
    assert await _count_projects(database, org.id) == 0


@pytest.mark.parametrize(
    "header", list(BAD_AUTHORIZATION_HEADERS.values()), ids=list(BAD_AUTHORIZATION_HEADERS)
)
async def test_malformed_authorization_header_is_unauthenticated_and_runs_nothing(
    http: httpx.AsyncClient, statements: list[str], header: str
) -> None:
    # when
    response = await http.post(
        "/graphql", json={"query": VIEWER}, headers={"authorization": header, **GRAPHQL_RESPONSE}
    )

    # then
    _assert_invalid_token(response)
    assert statements == []


async def test_without_a_token_the_caller_is_anonymous(gql: GraphQL) -> None:
    # when
    viewer = await gql(VIEWER)
    projects = await gql(PROJECT_COUNT)

    # then: nothing runs; the same request error as for a refused token
    for body in (viewer, projects):
        assert "data" not in body
        assert _only_error(body)["extensions"] == {"code": "UNAUTHENTICATED"}


async def test_anonymous_mutation_is_unauthenticated_and_creates_nothing(
    gql: GraphQL, org: Org, database: Database
) -> None:
    # when
    body = await gql(CREATE_PROJECT, {"name": "anonymous"})

    # then
    assert "data" not in body
    assert _only_error(body)["extensions"]["code"] == "UNAUTHENTICATED"
    assert await _count_projects(database, org.id) == 0


# --- Production and development settings ------------------------------------------------------


@pytest.fixture(scope="module")
async def production(
    app_settings: Settings, database: Database
) -> AsyncIterator[httpx.AsyncClient]:
    settings = replace(app_settings, environment="production", graphiql=False, introspection=False)
    server, url = await start_server(settings, database)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield client
    finally:
        await stop_server(server)


async def test_production_rejects_introspection(
    production: httpx.AsyncClient, org: Org, statements: list[str]
) -> None:
    # given: this server knows the tenant's status too (without Redis, its store is its own)
    await production.post("/graphql", json={"query": "{ __typename }"}, headers=_bearer(org.token))
    statements.clear()

    # when
    response = await production.post(
        "/graphql", json={"query": INTROSPECTION}, headers=_bearer(org.token)
    )

    # then
    body = response.json()
    assert "data" not in body
    assert "introspection" in body["errors"][0]["message"].lower()
    assert "Project" not in response.text
    assert statements == []


async def test_production_refuses_introspection_before_validating_the_document(
    production: httpx.AsyncClient,
) -> None:
    # given: introspection hidden in a fragment, beside a field that does not exist
    document = '{ ...I nope } fragment I on Query { __type(name: "Query") { name } }'

    # when: anonymous, as scanners ask
    response = await production.post("/graphql", json={"query": document})

    # then: one refusal, from the limits pass (graphql-core's validation would have reported
    # the unknown field, and words its own introspection refusal differently)
    assert response.json() == {
        "errors": [
            {
                "message": "GraphQL introspection is disabled on this server: `__schema` and"
                " `__type` are refused.",
                "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"},
            }
        ],
        "extensions": COST_1,
    }


async def test_production_gives_no_field_suggestions(
    production: httpx.AsyncClient, org: Org
) -> None:
    # when
    response = await production.post(
        "/graphql", json={"query": MISSPELLED}, headers=_bearer(org.token)
    )

    # then
    message = _only_error(response.json())["message"]
    assert "viewr" in message
    assert "Did you mean" not in message
    assert "viewer" not in message


async def test_production_serves_no_graphiql(production: httpx.AsyncClient) -> None:
    # when
    page = await production.get("/graphql", headers={"accept": "text/html"})
    asset = await production.get("/static/graphiql/init.js")

    # then
    assert 400 <= page.status_code < 500
    assert "graphiql" not in page.text.lower()
    assert asset.status_code == 404


async def test_production_still_answers_queries(production: httpx.AsyncClient, org: Org) -> None:
    # when
    response = await production.post("/graphql", json={"query": VIEWER}, headers=_bearer(org.token))

    # then
    assert response.json()["data"]["viewer"]["email"] == org.members[0].email


async def test_development_allows_introspection_and_suggestions(gql: GraphQL, org: Org) -> None:
    # when
    schema = await gql.data(INTROSPECTION, token=org.token)
    misspelled = await gql(MISSPELLED, token=org.token)

    # then
    assert {"Project", "Task", "Query"} <= {t["name"] for t in schema["__schema"]["types"]}
    assert "Did you mean 'viewer'?" in _only_error(misspelled)["message"]


async def test_development_serves_graphiql_with_a_content_security_policy(
    http: httpx.AsyncClient,
) -> None:
    # when
    response = await http.get("/graphql", headers={"accept": "text/html"})

    # then
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text.lower()
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-eval" not in csp


# --- Health, keys, request ids ----------------------------------------------------------------


async def test_health_and_readiness(http: httpx.AsyncClient) -> None:
    # when
    health = await http.get("/healthz")
    ready = await http.get("/readyz")

    # then
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()["status"]) == (200, "ok")


async def test_jwks_lists_the_public_key_only(http: httpx.AsyncClient, server_keys: KeySet) -> None:
    # when
    response = await http.get("/.well-known/jwks.json")

    # then
    keys = response.json()["keys"]
    assert [k["kid"] for k in keys] == [k.kid for k in server_keys.keys]
    for key in keys:
        assert key["kty"] == "EC"
        assert key["crv"] == "P-256"
        assert {"x", "y"} <= set(key)
        assert "d" not in key


async def test_sane_request_id_is_echoed(http: httpx.AsyncClient) -> None:
    # when
    response = await http.get("/healthz", headers={"x-request-id": "abc-123_X.y"})

    # then
    assert response.headers["x-request-id"] == "abc-123_X.y"


@pytest.mark.parametrize(
    "given", ["<script>alert(1)</script>", "a" * 65, "two words", "semi;colon", "ünïcode"]
)
async def test_unsafe_request_id_is_replaced(http: httpx.AsyncClient, given: str) -> None:
    # when
    response = await http.get("/healthz", headers={"x-request-id": given.encode()})

    # then
    echoed = response.headers["x-request-id"]
    assert echoed != given
    assert GENERATED_REQUEST_ID.match(echoed)


async def test_missing_request_id_is_generated_per_request(http: httpx.AsyncClient) -> None:
    # when
    first = (await http.get("/healthz")).headers["x-request-id"]
    second = (await http.get("/healthz")).headers["x-request-id"]

    # then
    assert GENERATED_REQUEST_ID.match(first)
    assert GENERATED_REQUEST_ID.match(second)
    assert first != second
