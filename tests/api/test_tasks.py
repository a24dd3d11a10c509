"""Tasks through the API: create, update, assign, move, delete, list, filter, order, nest."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import pytest

from app.api.relay import decode_global_id, encode_global_id
from app.core.db import Database
from tests.api.helpers import at, pk, refused_input, user_gid
from tests.app_fixtures import GraphQL, Org

TASK_FIELDS = """
id title description status priority dueDate position createdAt updatedAt
project { id } assignee { id } createdBy { id }
"""
PAYLOAD = f"task {{ {TASK_FIELDS} }} errors {{ code message field }}"
CREATE_PROJECT = """
mutation($name: String!) { createProject(input: {name: $name}) { project { id } errors { code } } }
"""
ARCHIVE_PROJECT = "mutation($id: ID!) { archiveProject(id: $id) { errors { code } } }"
CREATE_TASK = f"mutation($i: CreateTaskInput!) {{ createTask(input: $i) {{ {PAYLOAD} }} }}"
UPDATE_TASK = f"mutation($i: UpdateTaskInput!) {{ updateTask(input: $i) {{ {PAYLOAD} }} }}"
ASSIGN_TASK = f"mutation($i: AssignTaskInput!) {{ assignTask(input: $i) {{ {PAYLOAD} }} }}"
MOVE_TASK = f"mutation($i: MoveTaskInput!) {{ moveTask(input: $i) {{ {PAYLOAD} }} }}"
DELETE_TASK = (
    "mutation($id: ID!) { deleteTask(id: $id) { deletedId errors { code message field } } }"
)
ADD_COMMENT = """
mutation($task: ID!, $body: String!) {
  addComment(input: {taskId: $task, body: $body}) { comment { id } errors { code } }
}
"""
NODE = f"query($id: ID!) {{ node(id: $id) {{ __typename ... on Task {{ {TASK_FIELDS} }} }} }}"
PROJECT_TASKS = f"""
query($id: ID!, $filter: TaskFilter, $order: TaskOrder) {{
  project(id: $id) {{
    tasks(first: 100, filter: $filter, orderBy: $order) {{ totalCount nodes {{ {TASK_FIELDS} }} }}
  }}
}}
"""
TASKS = """
query($first: Int, $after: String, $filter: TaskFilter, $order: TaskOrder) {
  tasks(first: $first, after: $after, filter: $filter, orderBy: $order) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id title } }
  }
}
"""
NESTED_PAGE = """
query($id: ID!, $first: Int, $after: String, $filter: TaskFilter, $order: TaskOrder) {
  project(id: $id) {
    tasks(first: $first, after: $after, filter: $filter, orderBy: $order) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { node { id } }
    }
  }
}
"""
NESTED = """
query($task: ID!, $project: ID!) {
  node(id: $task) {
    ... on Task {
      title
      project { id name }
      assignee { id email }
      createdBy { id email }
      comments { totalCount nodes { body author { email } } }
    }
  }
  project(id: $project) { tasks { totalCount nodes { title } } }
  viewer { email assignedTasks { totalCount nodes { title } } }
}
"""
TWO_CREATES = """
mutation($ok: CreateTaskInput!, $bad: CreateTaskInput!) {
  a: createTask(input: $ok) { task { id title } errors { code field } }
  b: createTask(input: $bad) { task { id title } errors { code field } }
}
"""
CREATE_THEN_FAIL_IN_PAYLOAD = """
mutation($ok: CreateTaskInput!, $also: CreateTaskInput!) {
  a: createTask(input: $ok) { task { id } errors { code } }
  b: createTask(input: $also) { task { id comments(first: 101) { totalCount } } errors { code } }
}
"""
# Builds a task input from (our project id, our user id), for the malformed-id cases.
MalformedIds = Callable[[str, str], dict[str, Any]]
# The statement that spreads a project's positions again (app/tasks/queries.py: renumber).
RENUMBER_SQL = "UPDATE tasks t SET position = s.rn"


async def create_project(gql: GraphQL, org: Org, name: str = "Project") -> str:
    data = await gql.data(CREATE_PROJECT, {"name": name}, token=org.token)
    assert data["createProject"]["errors"] == []
    project_id: str = data["createProject"]["project"]["id"]
    return project_id


async def archive_project(gql: GraphQL, org: Org, project_id: str) -> None:
    data = await gql.data(ARCHIVE_PROJECT, {"id": project_id}, token=org.token)
    assert data["archiveProject"]["errors"] == []


async def create_task(
    gql: GraphQL,
    org: Org,
    project_id: str,
    title: str = "Task",
    *,
    token: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    variables = {"i": {"projectId": project_id, "title": title, **fields}}
    data = await gql.data(CREATE_TASK, variables, token=token or org.token)
    assert data["createTask"]["errors"] == [], data
    task: dict[str, Any] = data["createTask"]["task"]
    return task


async def mutate(
    gql: GraphQL, org: Org, document: str, name: str, variables: dict[str, Any]
) -> dict[str, Any]:
    """The payload of mutation `name` (a typed result, so never a top-level error)."""
    data = await gql.data(document, variables, token=org.token)
    payload: dict[str, Any] = data[name]
    return payload


async def move(
    gql: GraphQL, org: Org, task_id: str, *, after: str | None, project: str | None = None
) -> dict[str, Any]:
    return await mutate(
        gql,
        org,
        MOVE_TASK,
        "moveTask",
        {"i": {"id": task_id, "afterId": after, "projectId": project}},
    )


async def read_task(gql: GraphQL, org: Org, task_id: str) -> dict[str, Any] | None:
    data = await gql.data(NODE, {"id": task_id}, token=org.token)
    node: dict[str, Any] | None = data["node"]
    if node is not None:
        assert node.pop("__typename") == "Task"
    return node


async def project_tasks(
    gql: GraphQL, org: Org, project_id: str, **arguments: Any
) -> list[dict[str, Any]]:
    """The project's tasks, by position unless `order` says otherwise."""
    data = await gql.data(PROJECT_TASKS, {"id": project_id, **arguments}, token=org.token)
    connection = data["project"]["tasks"]
    assert connection["totalCount"] == len(connection["nodes"])
    nodes: list[dict[str, Any]] = connection["nodes"]
    return nodes


async def titles_in(gql: GraphQL, org: Org, project_id: str) -> list[str]:
    ordered = await project_tasks(gql, org, project_id, order={"field": "POSITION"})
    positions = [t["position"] for t in ordered]
    assert positions == sorted(positions)
    assert len(set(positions)) == len(positions), "duplicate positions"
    return [t["title"] for t in ordered]


async def stored_count(database: Database, org: Org, table: str = "tasks") -> int:
    assert table in ("tasks", "comments")
    async with database.transaction(org.id, readonly=True) as session:
        return int(await session.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608


async def stored_row(database: Database, org: Org, task_id: str) -> dict[str, Any] | None:
    async with database.transaction(org.id, readonly=True) as session:
        row = await session.fetchrow("SELECT * FROM tasks WHERE id = $1", pk(task_id))
    return None if row is None else dict(row)


async def post_escaped(
    gql: GraphQL, query: str, variables: dict[str, Any], *, token: str
) -> dict[str, Any]:
    """Like `gql`, but the JSON is ASCII with \\u escapes: the only way to send a lone surrogate."""
    response = await gql.http.post(
        "/graphql",
        content=json.dumps({"query": query, "variables": variables}),
        headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --- createTask ------------------------------------------------------------------------


async def test_create_task_with_defaults(gql: GraphQL, org: Org, database: Database) -> None:
    project = await create_project(gql, org)

    task = await create_task(gql, org, project, "  Write the plan  ")

    assert task["title"] == "Write the plan"  # trimmed
    assert (task["status"], task["priority"]) == ("TODO", "MEDIUM")
    assert (task["description"], task["dueDate"], task["assignee"]) == ("", None, None)
    assert task["project"] == {"id": project}
    assert task["createdBy"] == {"id": user_gid(org.members[0])}
    assert task["createdAt"] == task["updatedAt"]
    assert await read_task(gql, org, task["id"]) == task
    assert await project_tasks(gql, org, project) == [task]
    row = await stored_row(database, org, task["id"])
    assert row is not None
    assert (row["status"], row["priority"], row["project_id"]) == ("todo", "medium", pk(project))
    assert row["tenant_id"] == org.id
    assert decode_global_id(task["id"]) == ("Task", row["id"])


async def test_new_tasks_are_appended_after_the_last(gql: GraphQL, org: Org) -> None:
    project = await create_project(gql, org)
    first = await create_task(gql, org, project, "first")
    second = await create_task(gql, org, project, "second")
    third = await create_task(gql, org, project, "third")
    assert first["position"] < second["position"] < third["position"]

    # Moving the last task to the front must not make the next new task land before it.
    await move(gql, org, third["id"], after=None)
    fourth = await create_task(gql, org, project, "fourth")

    assert fourth["position"] > second["position"]
    assert await titles_in(gql, org, project) == ["third", "first", "second", "fourth"]


async def test_create_task_with_every_field(gql: GraphQL, org: Org, database: Database) -> None:
    project = await create_project(gql, org)
    assignee = org.members[1]

    task = await create_task(
        gql,
        org,
        project,
        "Ship it",
        description="All of it\n\twith a tab",
        status="IN_PROGRESS",
        priority="URGENT",
        assigneeId=user_gid(assignee),
        dueDate="2031-02-28",
    )

    assert task["description"] == "All of it\n\twith a tab"
    assert (task["status"], task["priority"]) == ("IN_PROGRESS", "URGENT")
    assert task["assignee"] == {"id": user_gid(assignee)}
    assert task["dueDate"] == "2031-02-28"
    assert await read_task(gql, org, task["id"]) == task
    assert await project_tasks(gql, org, project) == [task]
    row = await stored_row(database, org, task["id"])
    assert row is not None
    assert row["assignee_id"] == assignee.id
    assert row["due_date"].isoformat() == "2031-02-28"
    assert row["created_by"] == org.members[0].id


async def test_limits_are_inclusive(gql: GraphQL, org: Org) -> None:
    project = await create_project(gql, org)

    longest = await create_task(gql, org, project, "t" * 500, description="d" * 20_000)
    earliest = await create_task(gql, org, project, "early", dueDate="1970-01-01")
    latest = await create_task(gql, org, project, "late", dueDate="2999-12-31")

    assert (len(longest["title"]), len(longest["description"])) == (500, 20_000)
    assert (earliest["dueDate"], latest["dueDate"]) == ("1970-01-01", "2999-12-31")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "\n\t "}, "title"),
        ({"title": "t" * 501}, "title"),
        ({"title": "bell\x07"}, "title"),
        ({"title": "escape \x1b[31m red"}, "title"),
        ({"title": "delete\x7f"}, "title"),
        ({"description": "d" * 20_001}, "description"),
        ({"dueDate": "1969-12-31"}, "dueDate"),
        ({"dueDate": "3000-01-01"}, "dueDate"),
        ({"dueDate": "0001-01-01"}, "dueDate"),
    ],
    ids=[
        "empty-title",
        "blank-title",
        "whitespace-title",
        "long-title",
        "bell-title",
        "escape-title",
        "del-title",
        "long-description",
        "before-1970",
        "after-2999",
        "year-1",
    ],
)
async def test_invalid_input_is_reported_and_nothing_is_stored(
    gql: GraphQL, org: Org, database: Database, fields: dict[str, Any], field: str
) -> None:
    project = await create_project(gql, org)
    before = await stored_count(database, org)

    variables = {"i": {"projectId": project, "title": "ok", **fields}}
    payload = await mutate(gql, org, CREATE_TASK, "createTask", variables)

    assert payload["task"] is None
    [error] = payload["errors"]
    assert (error["code"], error["field"]) == ("INVALID", field)
    assert "tasks" not in error["message"]  # no table or constraint names
    assert await stored_count(database, org) == before == 0


async def test_nul_and_lone_surrogates_are_refused_before_anything_runs(
    gql: GraphQL, org: Org, database: Database
) -> None:
    project = await create_project(gql, org)

    for fields, field in (
        ({"title": "nul\x00byte"}, "title"),
        ({"title": "ok", "description": "nul\x00"}, "description"),
        ({"title": "lone \ud800 surrogate"}, "title"),
        ({"title": "ok", "description": "low \udfff half"}, "description"),
    ):
        variables = {"i": {"projectId": project, **fields}}
        body = await post_escaped(gql, CREATE_TASK, variables, token=org.token)

        assert refused_input(body) == field
    assert await stored_count(database, org) == 0


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        (lambda project, user: {"projectId": "garbage"}, "projectId"),
        (lambda project, user: {"projectId": ""}, "projectId"),
        (lambda project, user: {"projectId": str(pk(project))}, "projectId"),  # a bare uuid
        (lambda project, user: {"projectId": user}, "projectId"),
        (lambda project, user: {"assigneeId": "garbage"}, "assigneeId"),
        (lambda project, user: {"assigneeId": project}, "assigneeId"),
    ],
    ids=["garbage", "empty", "bare-uuid", "user-id-as-project", "garbage-user", "project-as-user"],
)
async def test_malformed_ids_are_invalid_input(
    gql: GraphQL, org: Org, database: Database, fields: MalformedIds, field: str
) -> None:
    project = await create_project(gql, org)

    variables = {
        "i": {"projectId": project, "title": "t", **fields(project, user_gid(org.members[1]))}
    }
    payload = await mutate(gql, org, CREATE_TASK, "createTask", variables)

    assert payload["task"] is None
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [("INVALID", field)]
    assert await stored_count(database, org) == 0


async def test_unknown_and_other_tenants_project_give_the_same_not_found(
    gql: GraphQL, org: Org, other_org: Org, database: Database
) -> None:
    theirs = await create_project(gql, other_org, "Secret")
    random_id = encode_global_id("Project", uuid4())

    theirs_body = await gql(
        CREATE_TASK, {"i": {"projectId": theirs, "title": "t"}}, token=org.token
    )
    random_body = await gql(
        CREATE_TASK, {"i": {"projectId": random_id, "title": "t"}}, token=org.token
    )

    payload = random_body["data"]["createTask"]
    assert payload["task"] is None
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [("NOT_FOUND", "projectId")]
    assert theirs_body == random_body
    assert theirs_body["data"]["createTask"]["errors"] == payload["errors"]
    assert await stored_count(database, org) == 0
    assert await stored_count(database, other_org) == 0


async def test_other_tenants_user_as_assignee_is_like_a_random_user(
    gql: GraphQL, org: Org, other_org: Org, database: Database
) -> None:
    project = await create_project(gql, org)
    stranger = user_gid(other_org.members[0])
    nobody = encode_global_id("User", uuid4())

    theirs = await gql(
        CREATE_TASK,
        {"i": {"projectId": project, "title": "t", "assigneeId": stranger}},
        token=org.token,
    )
    random = await gql(
        CREATE_TASK,
        {"i": {"projectId": project, "title": "t", "assigneeId": nobody}},
        token=org.token,
    )

    payload = random["data"]["createTask"]
    assert payload["task"] is None
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [("NOT_FOUND", "assigneeId")]
    assert theirs == random
    assert await stored_count(database, org) == 0


async def test_archived_project_takes_no_new_tasks(
    gql: GraphQL, org: Org, database: Database
) -> None:
    project = await create_project(gql, org)
    await create_task(gql, org, project, "before archiving")
    await archive_project(gql, org, project)

    payload = await mutate(
        gql, org, CREATE_TASK, "createTask", {"i": {"projectId": project, "title": "late"}}
    )

    assert payload["task"] is None
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [("CONFLICT", "projectId")]
    assert await stored_count(database, org) == 1


async def test_anonymous_create_is_unauthenticated(
    gql: GraphQL, org: Org, database: Database
) -> None:
    project = await create_project(gql, org)

    body = await gql(CREATE_TASK, {"i": {"projectId": project, "title": "t"}})

    assert "data" not in body
    [error] = body["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert "path" not in error  # refused before it executed
    assert await stored_count(database, org) == 0


async def test_anonymous_changes_are_unauthenticated(gql: GraphQL, org: Org) -> None:
    project = await create_project(gql, org)
    task = await create_task(gql, org, project, "untouched")

    for document, variables in (
        (UPDATE_TASK, {"i": {"id": task["id"], "title": "pwned"}}),
        (ASSIGN_TASK, {"i": {"id": task["id"], "assigneeId": user_gid(org.members[0])}}),
        (MOVE_TASK, {"i": {"id": task["id"], "afterId": None}}),
        (DELETE_TASK, {"id": task["id"]}),
        (TASKS, {}),
        (NODE, {"id": task["id"]}),
    ):
        body = await gql(document, variables)
        assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]

    assert await read_task(gql, org, task["id"]) == task


# --- updateTask ------------------------------------------------------------------------


async def test_partial_update_keeps_omitted_fields(gql: GraphQL, org: Org) -> None:
    project = await create_project(gql, org)
    created = await create_task(
        gql, org, project, "Old", description="Keep me", priority="HIGH", dueDate="2030-05-01"
    )

    payload = await mutate(
        gql, org, UPDATE_TASK, "updateTask", {"i": {"id": created["id"], "title": "New"}}
    )

    assert payload["errors"] == []
    task = payload["task"]
    assert task["title"] == "New"
    unchanged = ("description", "status", "priority", "dueDate", "position", "createdAt")
    assert {k: task[k] for k in unchanged} == {k: created[k] for k in unchanged}
    assert at(task["updatedAt"]) > at(created["updatedAt"])
    assert await read_task(gql, org, created["id"]) == task


async def test_update_status_priority_and_clear_due_date(
    gql: GraphQL, org: Org, database: Database
) -> None:
    project = await create_project(gql, org)
    created = await create_task(gql, org, project, "T", dueDate="2030-05-01")

    changes = {"id": created["id"], "status": "DONE", "priority": "LOW", "dueDate": None}
    payload = await mutate(gql, org, UPDATE_TASK, "updateTask", {"i": changes})

    task = payload["task"]
    assert (task["status"], task["priority"], task["dueDate"]) == ("DONE", "LOW", None)
    assert task["title"] == "T"
    row = await stored_row(database, org, created["id"])
    assert row is not None
    assert (row["status"], row["priority"], row["due_date"]) == ("done", "low", None)


async def test_update_with_null_title_or_bad_values_changes_nothing(gql: GraphQL, org: Org) -> None:
    project = await create_project(gql, org)
    created = await create_task(gql, org, project, "Keep", dueDate="2030-05-01")

    for changes, field in (
        ({"title": None}, "title"),
        ({"title": " "}, "title"),
        ({"description": None}, "description"),
        ({"status": None}, "status"),
        ({"priority": None}, "priority"),
        ({"dueDate": "3000-01-01"}, "dueDate"),
        # A valid change next to an invalid one is not applied either.
        ({"status": "DONE", "title": "x" * 501}, "title"),
    ):
        payload = await mutate(
            gql, org, UPDATE_TASK, "updateTask", {"i": {"id": created["id"], **changes}}
        )
        assert payload["task"] is None
        assert [(e["code"], e["field"]) for e in payload["errors"]] == [("INVALID", field)]

    assert await read_task(gql, org, created["id"]) == created


# --- assignTask ------------------------------------------------------------------------


async def test_assign_and_unassign(gql: GraphQL, org: Org, database: Database) -> None:
    project = await create_project(gql, org)
    created = await create_task(gql, org, project)
    member = org.members[1]

    assigned = await mutate(
        gql,
        org,
        ASSIGN_TASK,
        "assignTask",
        {"i": {"id": created["id"], "assigneeId": user_gid(member)}},
    )
    stored_assignee = (await stored_row(database, org, created["id"]) or {})["assignee_id"]
    unassigned = await mutate(
        gql, org, ASSIGN_TASK, "assignTask", {"i": {"id": created["id"], "assigneeId": None}}
    )

    assert assigned["task"]["assignee"] == {"id": user_gid(member)}
    assert stored_assignee == member.id
    assert unassigned["errors"] == []
    assert unassigned["task"]["assignee"] is None
    assert (await stored_row(database, org, created["id"]) or {})["assignee_id"] is None


async def test_assign_to_another_tenants_user_is_not_found(
    gql: GraphQL, org: Org, other_org: Org, database: Database
) -> None:
    project = await create_project(gql, org)
    created = await create_task(gql, org, project, assigneeId=user_gid(org.members[1]))

    theirs = await gql(
        ASSIGN_TASK,
        {"i": {"id": created["id"], "assigneeId": user_gid(other_org.members[0])}},
        token=org.token,
    )
    random = await gql(
        ASSIGN_TASK,
        {"i": {"id": created["id"], "assigneeId": encode_global_id("User", uuid4())}},
        token=org.token,
    )

    payload = theirs["data"]["assignTask"]
    assert payload["task"] is None
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [("NOT_FOUND", "assigneeId")]
    assert theirs == random
    assert (await stored_row(database, org, created["id"]) or {})["assignee_id"] == org.members[
        1
    ].id


# --- moveTask --------------------------------------------------------------------------


async def test_move_within_a_project(gql: GraphQL, org: Org) -> None:
    project = await create_project(gql, org)
    tasks = {t: await create_task(gql, org, project, t) for t in "abcd"}

    after_b = await move(gql, org, tasks["d"]["id"], after=tasks["b"]["id"])
    order_after_b = await titles_in(gql, org, project)
    to_front = await move(gql, org, tasks["c"]["id"], after=None)
    order_front = await titles_in(gql, org, project)
    to_end = await move(gql, org, tasks["a"]["id"], after=tasks["b"]["id"])
    order_end = await titles_in(gql, org, project)

    assert after_b["errors"] == to_front["errors"] == to_end["errors"] == []
    assert order_after_b == ["a", "b", "d", "c"]
    assert order_front == ["c", "a", "b", "d"]
    assert order_end == ["c", "b", "a", "d"]
    assert to_end["task"]["project"] == {"id": project}


async def test_move_after_its_current_predecessor_keeps_the_order(gql: GraphQL, org: Org) -> None:
    project = await create_project(gql, org)
    tasks = {t: await create_task(gql, org, project, t) for t in "abc"}

    payload = await move(gql, org, tasks["b"]["id"], after=tasks["a"]["id"])

    assert payload["errors"] == []
    assert await titles_in(gql, org, project) == ["a", "b", "c"]


async def test_move_across_projects(gql: GraphQL, org: Org) -> None:
    source = await create_project(gql, org, "Source")
    target = await create_project(gql, org, "Target")
    moving = await create_task(gql, org, source, "moving")
    await create_task(gql, org, source, "stays")
    x = await create_task(gql, org, target, "x")
    await create_task(gql, org, target, "y")
    lone = await create_task(gql, org, source, "lone")

    payload = await move(gql, org, moving["id"], after=x["id"], project=target)
    to_front = await move(gql, org, lone["id"], after=None, project=target)

    assert payload["errors"] == to_front["errors"] == []
    assert payload["task"]["project"] == {"id": target}
    assert await titles_in(gql, org, target) == ["lone", "x", "moving", "y"]
    assert await titles_in(gql, org, source) == ["stays"]
    assert (await read_task(gql, org, moving["id"]) or {})["project"] == {"id": target}


async def test_invalid_moves_change_nothing(gql: GraphQL, org: Org) -> None:
    project = await create_project(gql, org, "Here")
    other = await create_project(gql, org, "There")
    archived = await create_project(gql, org, "Archived")
    tasks = {t: await create_task(gql, org, project, t) for t in "abc"}
    elsewhere = await create_task(gql, org, other, "elsewhere")
    await archive_project(gql, org, archived)

    cases: list[tuple[dict[str, Any], tuple[str, str]]] = [
        ({"after": tasks["a"]["id"]}, ("INVALID", "afterId")),  # after itself
        ({"after": elsewhere["id"]}, ("INVALID", "afterId")),  # not in the target project
        ({"after": tasks["b"]["id"], "project": other}, ("INVALID", "afterId")),
        ({"after": None, "project": archived}, ("CONFLICT", "projectId")),
        ({"after": "garbage"}, ("INVALID", "afterId")),
        ({"after": other}, ("INVALID", "afterId")),  # a Project id
        ({"after": None, "project": "garbage"}, ("INVALID", "projectId")),
        (
            {"after": None, "project": encode_global_id("Project", uuid4())},
            ("NOT_FOUND", "projectId"),
        ),
        ({"after": encode_global_id("Task", uuid4())}, ("NOT_FOUND", "afterId")),
    ]
    for arguments, expected in cases:
        payload = await move(gql, org, tasks["a"]["id"], **arguments)
        assert payload["task"] is None
        assert [(e["code"], e["field"]) for e in payload["errors"]] == [expected], arguments

    assert await titles_in(gql, org, project) == ["a", "b", "c"]
    assert await read_task(gql, org, tasks["a"]["id"]) == tasks["a"]
    assert await titles_in(gql, org, archived) == []


async def test_repeated_moves_between_the_same_neighbours_keep_a_strict_order(
    gql: GraphQL, org: Org, statements: list[str]
) -> None:
    project = await create_project(gql, org)
    tasks = {t: await create_task(gql, org, project, t) for t in ("start", "x", "y", "end")}

    # Each move takes the midpoint between "start" and the task moved before it: the gap
    # halves every time, so 60 moves exhaust a double's precision and force a renumber.
    for i in range(60):
        moving = tasks["x" if i % 2 == 0 else "y"]
        payload = await move(gql, org, moving["id"], after=tasks["start"]["id"])
        assert payload["errors"] == [], (i, payload)

    # The last move was "y" (i = 59): it sits right after "start", then "x".
    assert await titles_in(gql, org, project) == ["start", "y", "x", "end"]
    assert any(s.startswith(RENUMBER_SQL) for s in statements), "renumbering never ran"


# --- deleteTask ------------------------------------------------------------------------


async def test_delete_task_removes_it_and_its_comments(
    gql: GraphQL, org: Org, database: Database
) -> None:
    project = await create_project(gql, org)
    doomed = await create_task(gql, org, project, "doomed")
    kept = await create_task(gql, org, project, "kept")
    for task, body in ((doomed, "one"), (doomed, "two"), (kept, "stays")):
        data = await gql.data(ADD_COMMENT, {"task": task["id"], "body": body}, token=org.token)
        assert data["addComment"]["errors"] == []

    deleted = await mutate(gql, org, DELETE_TASK, "deleteTask", {"id": doomed["id"]})
    again = await mutate(gql, org, DELETE_TASK, "deleteTask", {"id": doomed["id"]})

    assert deleted == {"deletedId": doomed["id"], "errors": []}
    assert again["deletedId"] is None
    assert [(e["code"], e["field"]) for e in again["errors"]] == [("NOT_FOUND", "id")]
    assert await read_task(gql, org, doomed["id"]) is None
    assert await stored_row(database, org, doomed["id"]) is None
    assert await stored_count(database, org, "comments") == 1
    assert await titles_in(gql, org, project) == ["kept"]


# --- another tenant's task -------------------------------------------------------------


async def test_other_tenants_task_is_like_a_random_id_and_stays_unchanged(
    gql: GraphQL, org: Org, other_org: Org
) -> None:
    their_project = await create_project(gql, other_org)
    theirs = await create_task(gql, other_org, their_project, "secret", dueDate="2030-01-01")
    random_id = encode_global_id("Task", uuid4())
    my_project = await create_project(gql, org)
    mine = await create_task(gql, org, my_project, "mine")

    for document, variables in (
        (UPDATE_TASK, lambda i: {"i": {"id": i, "title": "pwned"}}),
        (UPDATE_TASK, lambda i: {"i": {"id": i, "dueDate": None}}),
        (ASSIGN_TASK, lambda i: {"i": {"id": i, "assigneeId": user_gid(org.members[0])}}),
        (ASSIGN_TASK, lambda i: {"i": {"id": i, "assigneeId": None}}),
        (MOVE_TASK, lambda i: {"i": {"id": i, "afterId": None}}),
        (MOVE_TASK, lambda i: {"i": {"id": i, "projectId": my_project}}),
        (DELETE_TASK, lambda i: {"id": i}),
        (NODE, lambda i: {"id": i}),
    ):
        their_body = await gql(document, variables(theirs["id"]), token=org.token)
        random_body = await gql(document, variables(random_id), token=org.token)
        assert their_body == random_body, document
        if document is not NODE:
            [payload] = their_body["data"].values()
            assert [(e["code"], e["field"]) for e in payload["errors"]] == [("NOT_FOUND", "id")]

    # Their task as an `afterId` is no more visible than a random one.
    after_theirs = await move(gql, org, mine["id"], after=theirs["id"])
    after_random = await move(gql, org, mine["id"], after=random_id)
    assert after_theirs == after_random
    assert [(e["code"], e["field"]) for e in after_theirs["errors"]] == [("NOT_FOUND", "afterId")]
    # Nor is their project as a target.
    random_project = encode_global_id("Project", uuid4())
    into_theirs = await move(gql, org, mine["id"], after=None, project=their_project)
    into_random = await move(gql, org, mine["id"], after=None, project=random_project)
    assert into_theirs == into_random
    assert [(e["code"], e["field"]) for e in into_theirs["errors"]] == [("NOT_FOUND", "projectId")]

    assert await read_task(gql, other_org, theirs["id"]) == theirs
    assert await titles_in(gql, other_org, their_project) == ["secret"]


# --- listing: filters, ordering, pagination ------------------------------------------------


async def seed_for_filters(gql: GraphQL, org: Org) -> tuple[str, str]:
    """Five tasks in two projects; returns (first project, second project)."""
    p1 = await create_project(gql, org, "P1")
    p2 = await create_project(gql, org, "P2")
    m0, m1 = (user_gid(m) for m in org.members)
    await create_task(gql, org, p1, "t1", status="TODO", priority="HIGH", assigneeId=m0)
    await create_task(gql, org, p1, "t2", status="DONE", priority="LOW")
    await create_task(gql, org, p1, "t3", status="IN_PROGRESS", priority="URGENT", assigneeId=m1)
    await create_task(gql, org, p2, "t4", status="TODO", priority="LOW", assigneeId=m0)
    await create_task(gql, org, p2, "t5", status="BLOCKED", priority="MEDIUM")
    return p1, p2


async def test_filters(gql: GraphQL, org: Org, other_org: Org) -> None:
    p1, p2 = await seed_for_filters(gql, org)
    other_project = await create_project(gql, other_org)
    await create_task(gql, other_org, other_project, "theirs", status="TODO", priority="LOW")
    m0, m1 = (user_gid(m) for m in org.members)

    cases: list[tuple[dict[str, Any] | None, set[str]]] = [
        (None, {"t1", "t2", "t3", "t4", "t5"}),
        ({"status": ["TODO"]}, {"t1", "t4"}),
        ({"status": ["TODO", "DONE"]}, {"t1", "t2", "t4"}),
        ({"status": ["CANCELLED"]}, set()),
        ({"priority": ["LOW"]}, {"t2", "t4"}),
        ({"priority": ["LOW", "URGENT"]}, {"t2", "t3", "t4"}),
        ({"projectId": p2}, {"t4", "t5"}),
        ({"assigneeId": m0}, {"t1", "t4"}),
        ({"assigneeId": None}, {"t2", "t5"}),
        ({"status": ["TODO"], "projectId": p1}, {"t1"}),
        ({"assigneeId": None, "projectId": p2}, {"t5"}),
        ({"priority": ["LOW", "URGENT"], "assigneeId": m1}, {"t3"}),
        ({"status": ["TODO", "DONE"], "priority": ["LOW"], "assigneeId": None}, {"t2"}),
        ({"assigneeId": user_gid(other_org.members[0])}, set()),
        ({"projectId": other_project}, set()),
    ]
    for task_filter, expected in cases:
        data = await gql.data(TASKS, {"first": 100, "filter": task_filter}, token=org.token)
        titles = [e["node"]["title"] for e in data["tasks"]["edges"]]
        assert sorted(titles) == sorted(expected), task_filter
        assert data["tasks"]["totalCount"] == len(expected), task_filter

    nested = await project_tasks(gql, org, p1, filter={"status": ["TODO", "IN_PROGRESS"]})
    assert [t["title"] for t in nested] == ["t1", "t3"]  # totalCount checked by the helper


async def test_malformed_filter_ids_are_invalid(gql: GraphQL, org: Org) -> None:
    project = await create_project(gql, org)

    for task_filter, field in (
        ({"projectId": "garbage"}, "projectId"),
        ({"projectId": user_gid(org.members[0])}, "projectId"),
        ({"assigneeId": project}, "assigneeId"),
    ):
        body = await gql(TASKS, {"filter": task_filter}, token=org.token)
        [error] = body["errors"]
        assert error["extensions"] == {"code": "INVALID", "field": field}


async def test_ordering(gql: GraphQL, org: Org) -> None:
    project = await create_project(gql, org)
    a = await create_task(gql, org, project, "a", dueDate="2030-03-01", priority="LOW")
    await create_task(gql, org, project, "b", priority="URGENT")  # no due date
    await create_task(gql, org, project, "c", dueDate="2030-01-01", priority="HIGH")
    d = await create_task(gql, org, project, "d", dueDate="2030-02-01", priority="MEDIUM")
    await move(gql, org, d["id"], after=None)
    await mutate(gql, org, UPDATE_TASK, "updateTask", {"i": {"id": a["id"], "description": "x"}})

    expected_ascending = {
        "POSITION": "dabc",
        "CREATED_AT": "abcd",
        "UPDATED_AT": "bcda",
        "DUE_DATE": "cdab",  # no due date sorts after every dated task
        "PRIORITY": "adcb",  # LOW, MEDIUM, HIGH, URGENT
    }
    # Undated tasks stay last when descending too; everything else simply reverses.
    expected_descending = {"DUE_DATE": "adcb"}
    for field, ascending in expected_ascending.items():
        descending = expected_descending.get(field, ascending[::-1])
        for direction, expected in (("ASC", ascending), ("DESC", descending)):
            order = {"field": field, "direction": direction}
            data = await gql.data(TASKS, {"order": order}, token=org.token)
            titles = "".join(e["node"]["title"] for e in data["tasks"]["edges"])
            assert titles == expected, order
            nested = await project_tasks(gql, org, project, order=order)
            assert "".join(t["title"] for t in nested) == expected, order


async def seed_for_paging(gql: GraphQL, org: Org) -> int:
    """Nine tasks with many ties on every sort key; returns how many match PAGING_FILTER."""
    p1 = await create_project(gql, org, "P1")
    p2 = await create_project(gql, org, "P2")
    specs = [
        (p1, "TODO", "HIGH", "2030-01-01"),
        (p1, "BLOCKED", "HIGH", None),
        (p1, "DONE", "LOW", "2030-01-01"),
        (p1, "TODO", "LOW", "2030-01-01"),
        (p2, "TODO", "HIGH", None),
        (p2, "BLOCKED", "URGENT", "2030-06-01"),
        (p2, "TODO", "HIGH", "2030-01-01"),
        (p2, "CANCELLED", "HIGH", None),
        (p2, "TODO", "MEDIUM", None),
    ]
    for i, (project, status, priority, due) in enumerate(specs):
        await create_task(gql, org, project, f"t{i}", status=status, priority=priority, dueDate=due)
    return sum(1 for s in specs if s[1] in PAGING_FILTER["status"])


PAGING_FILTER = {"status": ["TODO", "BLOCKED"]}


@pytest.mark.parametrize(
    "order",
    [
        {"field": "POSITION", "direction": "ASC"},
        {"field": "CREATED_AT", "direction": "DESC"},
        {"field": "UPDATED_AT", "direction": "ASC"},
        {"field": "DUE_DATE", "direction": "ASC"},
        {"field": "DUE_DATE", "direction": "DESC"},
        {"field": "PRIORITY", "direction": "ASC"},
        {"field": "PRIORITY", "direction": "DESC"},
    ],
    ids=lambda o: f"{o['field']}-{o['direction']}",
)
async def test_pagination_visits_every_match_once_in_order(
    gql: GraphQL, org: Org, order: dict[str, str]
) -> None:
    matching = await seed_for_paging(gql, org)
    everything = await gql.data(
        TASKS, {"first": 100, "filter": PAGING_FILTER, "order": order}, token=org.token
    )
    one_page = [e["node"]["id"] for e in everything["tasks"]["edges"]]

    seen: list[str] = []
    after = None
    pages = 0
    while True:
        variables = {"first": 2, "after": after, "filter": PAGING_FILTER, "order": order}
        body = await gql(TASKS, variables, token=org.token)
        assert "errors" not in body, body["errors"]
        page = body["data"]["tasks"]
        pages += 1
        assert page["totalCount"] == matching
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        seen += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        assert len(page["edges"]) == 2
        after = page["pageInfo"]["endCursor"]
        assert pages < 10, "pagination does not end"

    assert len(one_page) == matching == 7
    assert seen == one_page
    assert pages == 4


async def test_nested_pagination_visits_every_match_once_in_order(gql: GraphQL, org: Org) -> None:
    project = await create_project(gql, org)
    other = await create_project(gql, org)
    for i, priority in enumerate(["HIGH", "LOW", "HIGH", "URGENT", "HIGH", "LOW", "MEDIUM"]):
        await create_task(gql, org, project, f"t{i}", priority=priority)
        await create_task(gql, org, other, f"other{i}", priority=priority)
    arguments = {
        "filter": {"priority": ["HIGH", "LOW", "URGENT"]},
        "order": {"field": "PRIORITY", "direction": "DESC"},
    }
    one_page = [t["id"] for t in await project_tasks(gql, org, project, **arguments)]

    seen: list[str] = []
    after = None
    while True:
        variables = {"id": project, "first": 2, "after": after, **arguments}
        data = await gql.data(NESTED_PAGE, variables, token=org.token)
        page = data["project"]["tasks"]
        assert page["totalCount"] == 6
        seen += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
        assert len(seen) < 20, "pagination does not end"

    assert len(one_page) == 6
    assert seen == one_page


# --- nested fields -----------------------------------------------------------------------


async def test_nested_fields(gql: GraphQL, org: Org) -> None:
    project = await create_project(gql, org, "Nest")
    me, colleague = org.members
    mine = await create_task(
        gql, org, project, "mine", token=colleague.token, assigneeId=user_gid(me)
    )
    await create_task(gql, org, project, "theirs", assigneeId=user_gid(colleague))
    await create_task(gql, org, project, "nobody's")
    for body in ("first", "second"):
        await gql.data(ADD_COMMENT, {"task": mine["id"], "body": body}, token=colleague.token)

    data = await gql.data(NESTED, {"task": mine["id"], "project": project}, token=me.token)

    task = data["node"]
    assert task["project"] == {"id": project, "name": "Nest"}
    assert task["assignee"] == {"id": user_gid(me), "email": me.email}
    assert task["createdBy"] == {"id": user_gid(colleague), "email": colleague.email}
    assert task["comments"] == {
        "totalCount": 2,
        "nodes": [
            {"body": "first", "author": {"email": colleague.email}},
            {"body": "second", "author": {"email": colleague.email}},
        ],
    }
    assert data["project"]["tasks"] == {
        "totalCount": 3,
        "nodes": [{"title": "mine"}, {"title": "theirs"}, {"title": "nobody's"}],
    }
    assert data["viewer"] == {
        "email": me.email,
        "assignedTasks": {"totalCount": 1, "nodes": [{"title": "mine"}]},
    }


# --- several mutations in one document ------------------------------------------------------


async def test_a_failed_mutation_does_not_undo_an_earlier_one(
    gql: GraphQL, org: Org, other_org: Org, database: Database
) -> None:
    """Mutations of one document are independent typed results, not one transaction.

    Each runs in its own savepoint: `b` failing with an error in its payload rolls back only
    `b`, and `a`, which reported success, is committed. A client that needs all-or-nothing
    must send one mutation per request and compensate itself.
    """
    project = await create_project(gql, org)
    bad = {"projectId": project, "title": "b", "assigneeId": user_gid(other_org.members[0])}

    data = await gql.data(
        TWO_CREATES, {"ok": {"projectId": project, "title": "a"}, "bad": bad}, token=org.token
    )

    assert data["a"]["errors"] == []
    assert data["b"] == {"task": None, "errors": [{"code": "NOT_FOUND", "field": "assigneeId"}]}
    assert await titles_in(gql, org, project) == ["a"]
    assert await read_task(gql, org, data["a"]["task"]["id"]) is not None
    assert await stored_count(database, org) == 1


async def test_a_top_level_error_rolls_back_the_whole_document(
    gql: GraphQL, org: Org, database: Database
) -> None:
    """An error outside the payloads (here: `first` beyond the page limit, raised while the
    second payload is read) fails the operation, and its one transaction is rolled back:
    neither task is kept, although `a` reported success in `data`.
    """
    project = await create_project(gql, org)
    variables = {
        "ok": {"projectId": project, "title": "a"},
        "also": {"projectId": project, "title": "b"},
    }

    body = await gql(CREATE_THEN_FAIL_IN_PAYLOAD, variables, token=org.token)

    [error] = body["errors"]
    assert error["extensions"]["code"] == "INVALID"
    assert error["path"][0] == "b"
    assert body["data"]["a"]["errors"] == []
    assert await stored_count(database, org) == 0
    assert await titles_in(gql, org, project) == []


CHANGE_THEN_READ = """
mutation($task: ID!, $project: ID!) {
  before: updateTask(input: {id: $task, description: "read"}) {
    task { project { tasks { totalCount } } }
  }
  rename: updateTask(input: {id: $task, title: "new"}) { task { title } }
  add: createTask(input: {projectId: $project, title: "added"}) {
    task { project { tasks { totalCount nodes { title } } } }
  }
  after: addComment(input: {taskId: $task, body: "c"}) { comment { task { title } } }
}
"""


async def test_a_later_mutation_of_a_document_sees_the_earlier_changes(
    gql: GraphQL, org: Org
) -> None:
    project = await create_project(gql, org)
    task = await create_task(gql, org, project, "old")

    data = await gql.data(
        CHANGE_THEN_READ, {"task": task["id"], "project": project}, token=org.token
    )

    assert data["before"]["task"]["project"]["tasks"] == {"totalCount": 1}
    assert data["rename"]["task"]["title"] == "new"
    # What the database holds once the whole document has run:
    assert [t["title"] for t in await project_tasks(gql, org, project)] == ["new", "added"]
    assert data["add"]["task"]["project"]["tasks"] == {
        "totalCount": 2,
        "nodes": [{"title": "new"}, {"title": "added"}],
    }
    assert data["after"]["comment"]["task"]["title"] == "new"
