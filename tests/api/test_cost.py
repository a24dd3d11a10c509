"""The cost limit: operations that could return too many objects never start executing."""

from __future__ import annotations

import pytest
from graphql import parse

from app.api.cost import estimated_nodes
from app.core.settings import Limits
from tests.app_fixtures import GraphQL, Org


@pytest.fixture
async def org(org: Org, gql: GraphQL) -> Org:
    """The shared org, with its status already known to the server (authentication reads it
    at most every few seconds): `statements` then sees only what a request itself runs."""
    await gql("{ __typename }", token=org.token)
    return org


LIMIT = Limits().max_nodes  # 20 000
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


@pytest.mark.parametrize(
    ("document", "variables", "expected"),
    [
        ("{ viewer { email } }", {}, 0),
        ("{ projects { nodes { id } } }", {}, 20),  # no `first`: the default page
        ("{ projects(first: 7) { totalCount } }", {}, 7),
        (NESTED, {"p": 10, "t": 10, "c": 10}, 10 + 100 + 1000),
        (NESTED, {"p": 10}, 10 + 200 + 4000),  # missing variables: the default page
        (NESTED, {"p": -5, "t": 100, "c": 100}, 0),
        (IN_FRAGMENTS, {}, 100 + 10_000 + 20_000),
    ],
)
def test_estimate(document: str, variables: dict[str, int], expected: int) -> None:
    assert estimated_nodes(parse(document), None, variables, default_page_size=20) == expected


def test_estimate_picks_the_named_operation() -> None:
    document = parse("query A { projects(first: 3) { totalCount } } query B { viewer { id } }")
    assert estimated_nodes(document, "A", None, default_page_size=20) == 3
    assert estimated_nodes(document, "B", None, default_page_size=20) == 0


async def test_over_the_limit_is_rejected_before_any_sql(
    gql: GraphQL, org: Org, statements: list[str]
) -> None:
    # 100 + 100*100 + 100*100*1 = 20 100 > 20 000
    body = await gql(NESTED, {"p": 100, "t": 100, "c": 1}, token=org.token)

    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert "20100" in error["message"]
    assert statements == []


async def test_hidden_in_fragments_is_rejected_too(gql: GraphQL, org: Org) -> None:
    body = await gql(IN_FRAGMENTS, token=org.token)
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"


async def test_at_the_limit_runs(gql: GraphQL, org: Org) -> None:
    # 100 + 100*99 + 100*99*1 = 19 900 <= 20 000
    data = await gql.data(NESTED, {"p": 100, "t": 99, "c": 1}, token=org.token)
    assert data["projects"]["nodes"] == []
