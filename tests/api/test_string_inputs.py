"""A NUL or a lone surrogate in any string input is `INVALID`, naming the field, before
anything runs: every argument and input field of every root field (found by walking the
schema, tests/api/schema_inputs.py), as a variable or a literal, nested fields, fragments and
variable defaults. Such strings used to reach services and drivers and come back as internal
errors (`signIn`, `platformSignIn`, `exchangeToken`, `auditLog`, `platformAuditLog`, ...)."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import parse

from app.api.inputs import refused_string
from app.schema import build_schema
from tests.api.schema_inputs import StringInput, string_inputs
from tests.app_fixtures import GraphQL, Org

NUL = "before\x00after"
SURROGATE = "before\ud800after"
CASES = string_inputs(build_schema()._schema)


def assert_refused(body: dict[str, Any], field: str) -> None:
    """Refused as a request error: no data (nothing executed), one INVALID naming `field`."""
    assert body.get("data") is None, body
    [error] = body["errors"]
    assert error["extensions"] == {"code": "INVALID", "field": field}, body
    assert error["message"] == f"`{field}` contains characters that are not allowed"


def test_the_walk_finds_every_kind_of_string_input() -> None:
    ids = {case.id for case in CASES}
    # An argument, input fields at two depths, a list element, an ID, a custom scalar.
    for expected in (
        "tasks(after)",
        "signIn(input.email)",
        "createTenant(input.owner.password)",
        "createRole(input.permissions)",
        "node(id)",
        "createTask(input.dueDate)",
        "platformSignIn(input.code)",
    ):
        assert expected in ids
    assert len(CASES) > 100


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_ordinary_strings_pass_the_check(case: StringInput) -> None:
    document, variables = case.with_variables("Ünïcödé \t\n ✓ 𝄞")
    assert refused_string(parse(document), None, variables) is None
    assert refused_string(parse(case.with_literals("plain")), None, None) is None


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
async def test_nul_and_lone_surrogates_are_refused_before_anything_runs(
    gql: GraphQL, statements: list[str], case: StringInput
) -> None:
    for text in (NUL, SURROGATE):
        document, variables = case.with_variables(text)
        assert_refused(await gql(document, variables), case.expected_field)
    literal = await gql(case.with_literals(NUL))
    if case.scalar in ("String", "ID"):
        assert_refused(literal, case.expected_field)
    else:
        # Validation parses a literal of our own scalars (Date) first: not a date at all.
        [error] = literal["errors"]
        assert error["message"].startswith(f"Value cannot represent a {case.scalar}"), literal
    # A lone surrogate cannot even be written in a GraphQL string literal: a syntax error.
    body = await gql(case.with_literals(SURROGATE))
    [error] = body["errors"]
    assert error["message"].startswith("Syntax Error: Invalid"), body
    assert error["extensions"] == {"code": "GRAPHQL_PARSE_FAILED"}
    # Anonymous: not even the tenant check read anything.
    assert statements == []


async def test_signed_in_callers_are_refused_the_same_way(
    gql: GraphQL, org: Org, statements: list[str]
) -> None:
    # given a member's valid token and an otherwise valid createProject
    document = "mutation($name: String!) { createProject(input: {name: $name}) { project { id } } }"

    # when the name holds a NUL
    body = await gql(document, {"name": NUL}, token=org.token)

    # then nothing ran: no statement beyond authentication's own tenant check
    assert_refused(body, "name")
    assert not [s for s in statements if "projects" in s]
    projects = await gql.data("{ projects { totalCount } }", token=org.token)
    assert projects["projects"]["totalCount"] == 0


@pytest.mark.parametrize(
    ("document", "variables", "field"),
    [
        # A variable's default is used when the variable is not given.
        (
            'query($a: String = "x\\u0000") { projects(after: $a) { totalCount } }',
            {},
            "after",
        ),
        # In a fragment, and in a field below the root.
        (
            "query { ...F } fragment F on Query { projects { nodes {"
            ' tasks(after: "x\\u0000") { totalCount } } } }',
            None,
            "after",
        ),
        # Inside an inline fragment, given as a variable nested in a list of an input.
        (
            "mutation($p: [String!]!) { ... on Mutation {"
            ' createRole(input: {name: "R", permissions: $p}) { role { id } } } }',
            {"p": ["project:read", "x\x00"]},
            "permissions",
        ),
    ],
    ids=["variable-default", "fragment-nested-field", "inline-fragment-list"],
)
async def test_every_place_a_string_can_hide_is_checked(
    gql: GraphQL, org: Org, document: str, variables: dict[str, Any] | None, field: str
) -> None:
    assert_refused(await gql(document, variables, token=org.token), field)
