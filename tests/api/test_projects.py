"""Projects through the API: create, read, update, archive, delete, list."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from app.api.relay import decode_global_id, encode_global_id
from app.core.db import Database
from tests.api.helpers import refused_input
from tests.app_fixtures import GraphQL, Org

FIELDS = "id name description status archivedAt createdAt updatedAt createdBy { email }"
PAYLOAD = f"project {{ {FIELDS} }} errors {{ code message field }}"
CREATE = f"mutation($i: CreateProjectInput!) {{ createProject(input: $i) {{ {PAYLOAD} }} }}"
UPDATE = f"mutation($i: UpdateProjectInput!) {{ updateProject(input: $i) {{ {PAYLOAD} }} }}"
ARCHIVE = f"mutation($id: ID!) {{ archiveProject(id: $id) {{ {PAYLOAD} }} }}"
UNARCHIVE = f"mutation($id: ID!) {{ unarchiveProject(id: $id) {{ {PAYLOAD} }} }}"
DELETE = "mutation($id: ID!) { deleteProject(id: $id) { deletedId errors { code field } } }"
GET = f"query($id: ID!) {{ project(id: $id) {{ {FIELDS} }} }}"
LIST = """
query($first: Int, $after: String, $filter: ProjectFilter, $order: ProjectOrder) {
  projects(first: $first, after: $after, filter: $filter, orderBy: $order) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id name status } }
  }
}
"""


async def create(gql: GraphQL, org: Org, name: str, **fields: Any) -> dict[str, Any]:
    data = await gql.data(CREATE, {"i": {"name": name, **fields}}, token=org.token)
    assert data["createProject"]["errors"] == []
    project: dict[str, Any] = data["createProject"]["project"]
    return project


async def stored_count(database: Database, org: Org) -> int:
    async with database.transaction(org.id, readonly=True) as session:
        return int(await session.fetchval("SELECT count(*) FROM projects"))


async def test_create_then_read_back(gql: GraphQL, org: Org) -> None:
    created = await create(gql, org, "  Launch  ", description="The launch plan")

    assert created["name"] == "Launch"  # trimmed
    assert created["description"] == "The launch plan"
    assert created["status"] == "ACTIVE"
    assert created["archivedAt"] is None
    assert created["createdBy"] == {"email": org.members[0].email}
    assert decode_global_id(created["id"])[0] == "Project"  # type: ignore[index]
    data = await gql.data(GET, {"id": created["id"]}, token=org.token)
    assert data["project"] == created


async def test_invalid_input_is_reported_and_nothing_is_stored(
    gql: GraphQL, org: Org, database: Database
) -> None:
    cases = [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "bell\x07"}, "name"),
        ({"name": "ok", "description": "d" * 10_001}, "description"),
    ]
    for fields, field in cases:
        data = await gql.data(CREATE, {"i": fields}, token=org.token)

        assert data["createProject"]["project"] is None
        [error] = data["createProject"]["errors"]
        assert (error["code"], error["field"]) == ("INVALID", field), fields
        assert "projects" not in error["message"]
    # Strings nothing could store are refused before the operation runs (app/api/inputs.py).
    for fields, field in (
        ({"name": "bad\x00name"}, "name"),
        ({"name": "ok", "description": "\ud800"}, "description"),
    ):
        assert refused_input(await gql(CREATE, {"i": fields}, token=org.token)) == field
    assert await stored_count(database, org) == 0


async def test_unicode_names_are_kept_whole(gql: GraphQL, org: Org) -> None:
    name = "Ünïcødé 项目 🚀 " + "é" * 150
    created = await create(gql, org, name)
    assert created["name"] == name.strip()


async def test_partial_update_keeps_omitted_fields(gql: GraphQL, org: Org) -> None:
    created = await create(gql, org, "Old", description="Keep me")

    data = await gql.data(UPDATE, {"i": {"id": created["id"], "name": "New"}}, token=org.token)

    project = data["updateProject"]["project"]
    assert (project["name"], project["description"]) == ("New", "Keep me")
    assert project["updatedAt"] > created["updatedAt"]
    data = await gql.data(UPDATE, {"i": {"id": created["id"], "name": None}}, token=org.token)
    assert data["updateProject"]["errors"][0]["code"] == "INVALID"
    assert data["updateProject"]["errors"][0]["field"] == "name"


async def test_archive_and_unarchive(gql: GraphQL, org: Org) -> None:
    created = await create(gql, org, "P")

    archived = (await gql.data(ARCHIVE, {"id": created["id"]}, token=org.token))["archiveProject"]
    again = (await gql.data(ARCHIVE, {"id": created["id"]}, token=org.token))["archiveProject"]
    active = (await gql.data(UNARCHIVE, {"id": created["id"]}, token=org.token))["unarchiveProject"]

    assert archived["project"]["status"] == "ARCHIVED"
    assert archived["project"]["archivedAt"] is not None
    assert again["project"]["archivedAt"] == archived["project"]["archivedAt"]  # idempotent
    assert active["project"]["status"] == "ACTIVE"
    assert active["project"]["archivedAt"] is None


async def test_delete_removes_the_project_with_its_tasks(
    gql: GraphQL, org: Org, database: Database
) -> None:
    created = await create(gql, org, "Doomed")
    await gql.data(
        'mutation($p: ID!) { createTask(input: {projectId: $p, title: "t"}) { errors { code } } }',
        {"p": created["id"]},
        token=org.token,
    )

    data = await gql.data(DELETE, {"id": created["id"]}, token=org.token)
    again = await gql.data(DELETE, {"id": created["id"]}, token=org.token)

    assert data["deleteProject"] == {"deletedId": created["id"], "errors": []}
    assert again["deleteProject"] == {
        "deletedId": None,
        "errors": [{"code": "NOT_FOUND", "field": "id"}],
    }
    async with database.transaction(org.id, readonly=True) as session:
        assert await session.fetchval("SELECT count(*) FROM tasks") == 0
    assert (await gql.data(GET, {"id": created["id"]}, token=org.token))["project"] is None


async def test_other_tenants_project_is_indistinguishable_from_a_random_id(
    gql: GraphQL, org: Org, other_org: Org
) -> None:
    theirs = await create(gql, other_org, "Secret")
    random_id = encode_global_id("Project", uuid4())

    for document, wrap in (
        (GET, lambda i: {"id": i}),
        (ARCHIVE, lambda i: {"id": i}),
        (DELETE, lambda i: {"id": i}),
        (UPDATE, lambda i: {"i": {"id": i, "name": "pwned"}}),
    ):
        mine = await gql(document, wrap(theirs["id"]), token=org.token)
        random = await gql(document, wrap(random_id), token=org.token)
        assert mine == random

    still = await gql.data(GET, {"id": theirs["id"]}, token=other_org.token)
    assert still["project"] == theirs


async def test_pagination_visits_every_project_once(gql: GraphQL, org: Org) -> None:
    names = [f"P{i:02d}" for i in range(7)]
    for name in reversed(names):
        await create(gql, org, name)
    order = {"field": "NAME", "direction": "ASC"}

    seen: list[str] = []
    after = None
    pages = 0
    while True:
        data = await gql.data(LIST, {"first": 3, "after": after, "order": order}, token=org.token)
        page = data["projects"]
        pages += 1
        assert page["totalCount"] == 7
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        seen += [e["node"]["name"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]

    assert seen == names
    assert pages == 3
    desc = await gql.data(LIST, {"order": {"field": "NAME", "direction": "DESC"}}, token=org.token)
    assert [e["node"]["name"] for e in desc["projects"]["edges"]] == names[::-1]


async def test_status_filter(gql: GraphQL, org: Org) -> None:
    keep = await create(gql, org, "Keep")
    gone = await create(gql, org, "Gone")
    await gql.data(ARCHIVE, {"id": gone["id"]}, token=org.token)

    active = await gql.data(LIST, {"filter": {"status": "ACTIVE"}}, token=org.token)
    archived = await gql.data(LIST, {"filter": {"status": "ARCHIVED"}}, token=org.token)

    assert [e["node"]["id"] for e in active["projects"]["edges"]] == [keep["id"]]
    assert [e["node"]["id"] for e in archived["projects"]["edges"]] == [gone["id"]]
    assert archived["projects"]["totalCount"] == 1


async def test_malformed_ids_are_invalid_input(gql: GraphQL, org: Org) -> None:
    task_id = encode_global_id("Task", uuid4())
    for bad in ("garbage", "", task_id):
        body = await gql(GET, {"id": bad}, token=org.token)
        assert body["errors"][0]["extensions"]["code"] == "INVALID"

        data = await gql.data(ARCHIVE, {"id": bad}, token=org.token)
        assert data["archiveProject"]["errors"][0]["code"] == "INVALID"
