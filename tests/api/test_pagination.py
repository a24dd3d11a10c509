"""Relay connections both ways: `first`/`after` forward, `last`/`before` backward, per the
Relay cursor connections specification, on root and nested (partitioned) connections."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.test_tasks import PAGING_FILTER, create_project, create_task, seed_for_paging
from tests.app_fixtures import GraphQL, Org

PAGE = """
query($first: Int, $after: String, $last: Int, $before: String, $filter: TaskFilter,
      $order: TaskOrder) {
  tasks(first: $first, after: $after, last: $last, before: $before, filter: $filter,
        orderBy: $order) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id title } }
  }
}
"""
NESTED_PAGE = """
query($id: ID!, $first: Int, $after: String, $last: Int, $before: String, $order: TaskOrder) {
  project(id: $id) {
    tasks(first: $first, after: $after, last: $last, before: $before, orderBy: $order) {
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { cursor node { id title } }
    }
  }
}
"""
ORDERS = [
    {"field": "POSITION", "direction": "ASC"},
    {"field": "CREATED_AT", "direction": "DESC"},
    {"field": "DUE_DATE", "direction": "ASC"},
    {"field": "DUE_DATE", "direction": "DESC"},  # a descending ordering of its own expression
    {"field": "PRIORITY", "direction": "DESC"},
]


async def page(gql: GraphQL, org: Org, **variables: Any) -> dict[str, Any]:
    data = await gql.data(PAGE, variables, token=org.token)
    connection: dict[str, Any] = data["tasks"]
    return connection


def ids(connection: dict[str, Any]) -> list[str]:
    return [e["node"]["id"] for e in connection["edges"]]


@pytest.mark.parametrize("order", ORDERS, ids=lambda o: f"{o['field']}-{o['direction']}")
async def test_paging_backwards_visits_every_match_once_in_order(
    gql: GraphQL, org: Org, order: dict[str, str]
) -> None:
    matching = await seed_for_paging(gql, org)
    arguments = {"filter": PAGING_FILTER, "order": order}
    everything = ids(await page(gql, org, first=100, **arguments))
    assert len(everything) == matching == 7

    seen: list[str] = []
    before = None
    pages = 0
    while True:
        connection = await page(gql, org, last=2, before=before, **arguments)
        pages += 1
        info = connection["pageInfo"]
        assert connection["totalCount"] == matching
        # Paging backwards: rows follow exactly when a `before` cursor was given.
        assert info["hasNextPage"] is (before is not None)
        # The page keeps the connection's order, its edges' cursors and its start and end.
        cursors = [e["cursor"] for e in connection["edges"]]
        assert (cursors[0], cursors[-1]) == (info["startCursor"], info["endCursor"])
        seen = ids(connection) + seen
        if not info["hasPreviousPage"]:
            break
        assert len(connection["edges"]) == 2
        before = info["startCursor"]
        assert pages < 10, "pagination does not end"

    assert seen == everything
    assert pages == 4  # 2 + 2 + 2 + 1


async def test_a_page_from_the_end_is_the_last_rows_in_order(gql: GraphQL, org: Org) -> None:
    project = await create_project(gql, org)
    for title in "abcde":
        await create_task(gql, org, project, title)
    order = {"field": "CREATED_AT", "direction": "ASC"}

    last = await page(gql, org, last=2, order=order)

    assert [e["node"]["title"] for e in last["edges"]] == ["d", "e"]
    assert last["pageInfo"]["hasPreviousPage"] is True
    assert last["pageInfo"]["hasNextPage"] is False
    everything = await page(gql, org, last=10, order=order)
    assert [e["node"]["title"] for e in everything["edges"]] == list("abcde")
    assert everything["pageInfo"]["hasPreviousPage"] is False


async def test_cursors_bound_the_range_from_both_sides(gql: GraphQL, org: Org) -> None:
    project = await create_project(gql, org)
    for title in "abcdef":
        await create_task(gql, org, project, title)
    order = {"field": "CREATED_AT", "direction": "ASC"}
    edges = (await page(gql, org, first=6, order=order))["edges"]
    cursor = {e["node"]["title"]: e["cursor"] for e in edges}

    def titles(connection: dict[str, Any]) -> str:
        return "".join(e["node"]["title"] for e in connection["edges"])

    # Between b and f (both excluded): c d e; `first` takes from the start, `last` from the end.
    between = {"after": cursor["b"], "before": cursor["f"], "order": order}
    first = await page(gql, org, first=2, **between)
    last = await page(gql, org, last=2, **between)
    assert titles(first) == "cd"
    assert first["pageInfo"] == {
        "hasNextPage": True,  # e is still in the range
        "hasPreviousPage": True,  # `after` was given
        "startCursor": cursor["c"],
        "endCursor": cursor["d"],
    }
    assert titles(last) == "de"
    assert last["pageInfo"]["hasPreviousPage"] is True  # c is still in the range
    assert last["pageInfo"]["hasNextPage"] is True  # `before` was given
    assert titles(await page(gql, org, first=5, **between)) == "cde"
    assert titles(await page(gql, org, last=5, **between)) == "cde"
    # `first` before a cursor and `last` after one.
    assert titles(await page(gql, org, first=2, before=cursor["e"], order=order)) == "ab"
    assert titles(await page(gql, org, last=2, after=cursor["a"], order=order)) == "ef"
    # An empty range.
    empty = await page(gql, org, last=3, after=cursor["c"], before=cursor["d"], order=order)
    assert empty["edges"] == []
    assert empty["pageInfo"]["startCursor"] is None
    assert empty["pageInfo"]["endCursor"] is None


async def test_nested_connections_page_backwards_per_parent(gql: GraphQL, org: Org) -> None:
    project = await create_project(gql, org)
    other = await create_project(gql, org)
    for i in range(5):
        await create_task(gql, org, project, f"t{i}")
        await create_task(gql, org, other, f"other{i}")
    order = {"field": "POSITION", "direction": "DESC"}

    seen: list[str] = []
    before = None
    while True:
        variables = {"id": project, "last": 2, "before": before, "order": order}
        data = await gql.data(NESTED_PAGE, variables, token=org.token)
        connection = data["project"]["tasks"]
        seen = [e["node"]["title"] for e in connection["edges"]] + seen
        if not connection["pageInfo"]["hasPreviousPage"]:
            break
        before = connection["pageInfo"]["startCursor"]
        assert len(seen) < 20, "pagination does not end"

    assert seen == ["t4", "t3", "t2", "t1", "t0"]


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"first": 2, "last": 2}, "last"),
        ({"last": -1}, "last"),
        ({"last": 101}, "last"),
        ({"last": 2, "before": "not-a-cursor"}, "before"),
        ({"first": 2, "after": "not-a-cursor"}, "after"),
    ],
)
async def test_bad_pagination_arguments_are_invalid_and_name_the_argument(
    gql: GraphQL, org: Org, variables: dict[str, Any], field: str
) -> None:
    body = await gql(PAGE, variables, token=org.token)

    [error] = body["errors"]
    assert error["extensions"] == {"code": "INVALID", "field": field}
    assert body["data"] == {"tasks": None}


async def test_last_counts_against_the_cost_limit_like_first(
    gql: GraphQL, org: Org, statements: list[str]
) -> None:
    document = """
    query($n: Int) {
      projects(last: $n) {
        nodes { tasks(last: $n) { nodes { comments(last: $n) { totalCount } } } }
      }
    }
    """
    await gql.data("{ viewer { id } }", token=org.token)  # the tenant's state, now cached
    statements.clear()

    body = await gql(document, {"n": 100}, token=org.token)

    [error] = body["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert statements == []
