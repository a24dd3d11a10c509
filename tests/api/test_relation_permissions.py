"""Relations enforce the read rule of the type they reach, at every depth (issue 12 §3).

The cases an outside probe confirmed: a field that reaches another type's data is refused
(FORBIDDEN at its path, null there, siblings kept) to a caller who could not read that type
through the root fields. tests/rbac/test_nested_matrix.py runs every path for every role;
these are the probe's own documents, kept readable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest

from app.api.relay import encode_global_id
from app.core.db import Database
from app.core.security import TokenService
from tests.app_fixtures import GraphQL, new_org
from tests.factories import (
    grant_custom_role,
    open_session,
    seed_comment,
    seed_project,
    seed_task,
    seed_user,
)


@dataclass(frozen=True)
class Content:
    tenant_id: UUID
    owner: UUID
    project: UUID
    task: UUID


async def content(database: Database, tokens: TokenService) -> Content:
    """A tenant whose owner made a project with a task assigned to them and a comment."""
    org = await new_org(database, tokens, role="owner")
    owner = org.members[0].id
    project = await seed_project(database, org.id, name="Secret plans", created_by=owner)
    task = await seed_task(database, org.id, project, title="Secret task", assignee_id=owner)
    await seed_comment(database, org.id, task, body="Secret comment", author_id=owner)
    return Content(org.id, owner, project, task)


async def caller(
    database: Database, tokens: TokenService, world: Content, permissions: list[str]
) -> tuple[UUID, str]:
    """A user of the tenant holding exactly `permissions` (a custom role; none: no role)."""
    user = await seed_user(database, world.tenant_id, role=None)
    if permissions:
        await grant_custom_role(database, world.tenant_id, user, permissions)
    async with database.transaction(world.tenant_id) as session:
        token = await open_session(session, tokens, user_id=user)
    return user, token


def refusals(body: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    return sorted((tuple(e["path"]), e["extensions"]["code"]) for e in body.get("errors", []))


TASKS_WITH_ASSIGNEES = "{ tasks { nodes { title assignee { email } } } }"
USERS_WITH_TASKS = "{ users { nodes { id assignedTasks { nodes { title } } } } }"
VIEWER_WITH_TASKS = """
{
  viewer {
    email
    assignedTasks {
      nodes { title project { name } comments { nodes { body author { email } } } }
    }
  }
}
"""


async def test_project_readers_do_not_read_users_through_tasks(
    gql: GraphQL, database: Database, tokens: TokenService
) -> None:
    # given
    world = await content(database, tokens)
    _, token = await caller(database, tokens, world, ["project:read"])

    # when
    body = await gql(TASKS_WITH_ASSIGNEES, token=token)
    users = await gql("{ users { totalCount } }", token=token)

    # then: the assignee is refused as `users` is, and the task itself is still there
    assert refusals(users) == [(("users",), "FORBIDDEN")]
    assert body["data"] == {"tasks": {"nodes": [{"title": "Secret task", "assignee": None}]}}
    assert refusals(body) == [(("tasks", "nodes", 0, "assignee"), "FORBIDDEN")]


async def test_user_readers_do_not_read_tasks_through_users(
    gql: GraphQL, database: Database, tokens: TokenService
) -> None:
    # given
    world = await content(database, tokens)
    me, token = await caller(database, tokens, world, ["user:read"])

    # when
    body = await gql(USERS_WITH_TASKS, token=token)

    # then: every user is listed, none of their tasks
    owner, caller_id = encode_global_id("User", world.owner), encode_global_id("User", me)
    assert body["data"] == {
        "users": {
            "nodes": [
                {"id": owner, "assignedTasks": None},
                {"id": caller_id, "assignedTasks": None},
            ]
        }
    }
    assert refusals(body) == [
        (("users", "nodes", 0, "assignedTasks"), "FORBIDDEN"),
        (("users", "nodes", 1, "assignedTasks"), "FORBIDDEN"),
    ]


async def test_a_user_without_permissions_reads_only_their_own_record_through_viewer(
    gql: GraphQL, database: Database, tokens: TokenService
) -> None:
    # given: the caller holds no role, and a task of the owner's project is assigned to them
    world = await content(database, tokens)
    me, token = await caller(database, tokens, world, [])
    await seed_task(database, world.tenant_id, world.project, title="Mine", assignee_id=me)

    # when
    body = await gql(VIEWER_WITH_TASKS, token=token)

    # then
    assert body["data"]["viewer"]["assignedTasks"] is None
    assert body["data"]["viewer"]["email"].endswith("@example.com")
    assert refusals(body) == [(("viewer", "assignedTasks"), "FORBIDDEN")]


CREATE_TASK = """
mutation($project: ID!, $me: ID) {
  createTask(input: {projectId: $project, title: "Written", assigneeId: $me}) {
    task { title assignee { email } }
    errors { code }
  }
}
"""


async def tasks_titled(database: Database, tenant_id: UUID, title: str) -> int:
    async with database.transaction(tenant_id) as session:
        count: int = await session.fetchval("SELECT count(*) FROM tasks WHERE title = $1", title)
    return count


@pytest.mark.parametrize(
    ("permissions", "data", "refused"),
    [
        # Writes tasks, reads nothing: the payload's task is refused as `tasks` would be.
        (["task:write:own"], {"task": None, "errors": []}, ("createTask", "task")),
        # Reads tasks but not users: only the assignee is refused.
        (
            ["task:write:own", "project:read"],
            {"task": {"title": "Written", "assignee": None}, "errors": []},
            ("createTask", "task", "assignee"),
        ),
    ],
    ids=["write-only", "no-user-read"],
)
async def test_a_payload_shows_the_written_object_only_to_its_readers_and_keeps_the_write(
    gql: GraphQL,
    database: Database,
    tokens: TokenService,
    permissions: list[str],
    data: dict[str, Any],
    refused: tuple[str, ...],
) -> None:
    # given
    world = await content(database, tokens)
    me, token = await caller(database, tokens, world, permissions)
    variables = {
        "project": encode_global_id("Project", world.project),
        "me": encode_global_id("User", me),
    }

    # when
    body = await gql(CREATE_TASK, variables, token=token)

    # then: the refusal of a field to read is not a failure of the write
    assert body["data"] == {"createTask": data}
    assert refusals(body) == [(refused, "FORBIDDEN")]
    assert await tasks_titled(database, world.tenant_id, "Written") == 1
