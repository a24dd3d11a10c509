"""The cost limit: operations that could return too many objects never start executing."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import get_operation_ast, parse

from app.api.limits import DocumentLimits
from app.core.settings import Limits
from app.schema import build_schema
from tests.app_fixtures import GraphQL, Org


@pytest.fixture
async def org(org: Org, gql: GraphQL) -> Org:
    """The shared org, with its status already known to the server (authentication reads it
    at most every few seconds): `statements` then sees only what a request itself runs."""
    await gql("{ __typename }", token=org.token)
    return org


LIMIT = Limits().max_nodes  # 20 000
CHECKER = DocumentLimits.of(Limits(), build_schema()._schema)
NESTED = """
query($p: Int, $t: Int, $c: Int) {
  projects(first: $p) {
    nodes { tasks(first: $t) { nodes { comments(first: $c) { totalCount } } } }
  }
}
"""
IN_FRAGMENTS = """
query { ...P }
fragment P on Query { projects(first: 100) { nodes { ...T } } }
fragment T on Project { tasks(first: 100) { edges { node { ...C } } } }
fragment C on Task { comments(first: 2) { nodes { id } } }
"""
# The probe's finding: a variable's default counted as the default page (20), so this one,
# 100 + 100² + 100³ objects, ran.
WITH_DEFAULTS = """
query($f: Int = 100) {
  projects(first: $f) {
    nodes { tasks(first: $f) { nodes { comments(first: $f) { totalCount } } } }
  }
}
"""


def _nodes(document: str, variables: dict[str, Any] | None, name: str | None = None) -> int:
    parsed = parse(document)
    return CHECKER.analyse(parsed, get_operation_ast(parsed, name), variables).nodes


@pytest.mark.parametrize(
    ("document", "variables", "expected"),
    [
        ("{ viewer { email } }", {}, 0),
        ("{ projects { nodes { id } } }", {}, 20),  # no `first`: the default page
        ("{ projects(first: 7) { totalCount } }", {}, 7),
        (NESTED, {"p": 10, "t": 10, "c": 10}, 10 + 100 + 1000),
        (NESTED, {"p": 10}, 10 + 200 + 4000),  # missing variables: the default page
        (NESTED, {"p": 10, "t": None, "c": "3"}, 10 + 200 + 4000),  # null or not an Int
        (NESTED, {"p": -5, "t": 100, "c": 100}, 0),
        (IN_FRAGMENTS, {}, 100 + 10_000 + 20_000),
        (WITH_DEFAULTS, {}, 100 + 10_000 + 1_000_000),
        (WITH_DEFAULTS, {"f": 2}, 2 + 4 + 8),  # a given value wins over the default
        (WITH_DEFAULTS, {"f": True}, 20 + 400 + 8000),  # a Boolean is no Int
        ("{ projects(first: 99999999999999999999999) { totalCount } }", {}, 10**15),
        ("{ projects(first: -99999999999999999999999) { totalCount } }", {}, 0),
        # `last` counts like `first` (a page from the end is as large); with both, the larger.
        ("{ projects(last: 7) { totalCount } }", {}, 7),
        ("query($l: Int) { projects(last: $l) { nodes { id } } }", {"l": 30}, 30),
        ("query($l: Int = 40) { projects(last: $l) { nodes { id } } }", {}, 40),
        ("{ projects(first: 3, last: 9) { totalCount } }", {}, 9),
        ("{ projects(last: 99999999999999999999999) { totalCount } }", {}, 10**15),
    ],
)
def test_estimate(document: str, variables: dict[str, Any], expected: int) -> None:
    assert _nodes(document, variables) == expected


def test_estimate_picks_the_named_operation_and_its_defaults() -> None:
    document = """
        query A($n: Int = 3) { projects(first: $n) { totalCount } }
        query B($n: Int = 5) { viewer { id } projects(first: $n) { totalCount } }
    """
    assert _nodes(document, None, "A") == 3
    assert _nodes(document, None, "B") == 5


async def test_over_the_limit_is_rejected_before_any_sql(
    gql: GraphQL, org: Org, statements: list[str]
) -> None:
    # 100 + 100*100 + 100*100*1 = 20 100 > 20 000
    body = await gql(NESTED, {"p": 100, "t": 100, "c": 1}, token=org.token)

    assert "data" not in body
    [error] = body["errors"]
    assert error["extensions"] == {"code": "QUERY_TOO_COMPLEX", "limit": "nodes", "maximum": LIMIT}
    assert "20100" in error["message"]
    assert statements == []


async def test_hidden_in_fragments_is_rejected_too(gql: GraphQL, org: Org) -> None:
    body = await gql(IN_FRAGMENTS, token=org.token)
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"


async def test_variable_defaults_count_as_given(
    gql: GraphQL, org: Org, statements: list[str]
) -> None:
    # when: no variables sent, so `$f` is its default, 100, on all three connections
    body = await gql(WITH_DEFAULTS, token=org.token)

    # then
    assert "data" not in body
    [error] = body["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert "1010100" in error["message"]
    assert statements == []


async def test_at_the_limit_runs(gql: GraphQL, org: Org) -> None:
    # 100 + 100*99 + 100*99*1 = 19 900 <= 20 000
    data = await gql.data(NESTED, {"p": 100, "t": 99, "c": 1}, token=org.token)
    assert data["projects"]["nodes"] == []
