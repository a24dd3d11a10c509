"""Hypothesis: arbitrary client input gets a result or a clear error, never an internal one.

Strings with any Unicode (control characters, lone surrogates, NUL), forged cursors, random
global ids and page sizes go through the real server; the stored data always matches what the
API reported.
"""

from __future__ import annotations

import base64
import json
import unicodedata
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.api.relay import decode_global_id
from app.core.db import Database
from app.core.validation import encodable
from tests.api.helpers import refused_input
from tests.app_fixtures import GraphQL, Org
from tests.properties import examples

CREATE = """
mutation($i: CreateProjectInput!) {
  createProject(input: $i) { project { id name description } errors { code field message } }
}
"""
LIST = """
query($first: Int, $after: String, $order: ProjectOrder) {
  projects(first: $first, after: $after, orderBy: $order) { edges { node { id } } }
}
"""
NODE = "query($id: ID!) { node(id: $id) { id } }"
SETTINGS = settings(max_examples=examples(40))
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=300)


def assert_clean_errors(body: dict[str, Any]) -> None:
    for error in body.get("errors", []):
        assert error["extensions"]["code"] != "INTERNAL_SERVER_ERROR", body
        for word in ("SELECT", "INSERT", "constraint", "projects_", "Traceback", "asyncpg"):
            assert word not in error["message"], body


@SETTINGS
@given(name=ANY_TEXT, description=ANY_TEXT)
@example(name="P", description="\ud800")  # a lone surrogate: valid JSON, no UTF-8 form
async def test_any_project_text_is_stored_exactly_or_rejected_cleanly(
    gql: GraphQL, org: Org, database: Database, name: str, description: str
) -> None:
    body = await gql(CREATE, {"i": {"name": name, "description": description}}, token=org.token)

    assert_clean_errors(body)
    if not (encodable(name) and encodable(description)):
        assert refused_input(body) == ("description" if encodable(name) else "name")
        return
    payload = body["data"]["createProject"]
    if payload["errors"]:
        [error] = payload["errors"]
        assert error["code"] == "INVALID"
        assert error["field"] in ("name", "description")
        assert payload["project"] is None
        return
    project = payload["project"]
    assert project["name"] == unicodedata.normalize("NFC", name).strip()
    assert project["description"] == unicodedata.normalize("NFC", description).strip()
    async with database.transaction(org.id, readonly=True) as session:
        stored = await session.fetchrow(
            "SELECT name, description FROM projects WHERE id = $1",
            decode_global_id(project["id"])[1],  # type: ignore[index]
        )
    assert stored is not None
    assert (stored["name"], stored["description"]) == (project["name"], project["description"])


def forged_cursors() -> st.SearchStrategy[str]:
    json_cursor = st.tuples(
        st.one_of(st.text(max_size=40), st.integers(), st.none(), st.floats(allow_nan=True)),
        st.one_of(st.uuids().map(str), st.text(max_size=40)),
    ).map(lambda pair: base64.urlsafe_b64encode(json.dumps(list(pair)).encode()).decode())
    return st.one_of(ANY_TEXT, json_cursor)


@SETTINGS
@given(
    after=forged_cursors(),
    first=st.one_of(st.none(), st.integers(min_value=-(2**31), max_value=2**31 - 1)),
    field=st.sampled_from(["CREATED_AT", "UPDATED_AT", "NAME"]),
)
async def test_forged_cursors_and_page_sizes_never_break_the_server(
    gql: GraphQL, org: Org, after: str, first: int | None, field: str
) -> None:
    body = await gql(
        LIST, {"first": first, "after": after, "order": {"field": field}}, token=org.token
    )

    assert_clean_errors(body)
    if "errors" in body:
        extensions = body["errors"][0]["extensions"]
        # A huge `first` trips the cost limit before the page-size check.
        assert extensions["code"] in ("INVALID", "QUERY_TOO_COMPLEX")
        if extensions["code"] == "INVALID":
            assert extensions["field"] in ("first", "after")


@SETTINGS
@given(
    node_id=st.one_of(
        ANY_TEXT,
        st.builds(
            lambda t, u: base64.b64encode(f"{t}:{u}".encode()).decode(),
            st.sampled_from(["Project", "Task", "User", "Tenant", "Comment", "X"]),
            st.uuids(),
        ),
    )
)
async def test_any_global_id_gives_a_node_or_null(gql: GraphQL, org: Org, node_id: str) -> None:
    body = await gql(NODE, {"id": node_id}, token=org.token)

    assert_clean_errors(body)
    assert body["data"]["node"] is None
