"""Comments through the API: add, edit, delete, read, paginate; only the author changes one."""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import pytest

from app.api.relay import decode_global_id, encode_global_id
from app.core.db import Database
from app.core.security import TokenService
from tests.api.helpers import at, pk, refused_input, user_gid
from tests.app_fixtures import GraphQL, Member, Org, new_org

FIELDS = "id body createdAt updatedAt editedAt author { id email } task { id title }"
PAYLOAD = f"comment {{ {FIELDS} }} errors {{ code message field }}"
CREATE_PROJECT = """
mutation($name: String!) { createProject(input: {name: $name}) { project { id } errors { code } } }
"""
CREATE_TASK = """
mutation($project: ID!, $title: String!) {
  createTask(input: {projectId: $project, title: $title}) { task { id } errors { code } }
}
"""
ADD = f"mutation($i: AddCommentInput!) {{ addComment(input: $i) {{ {PAYLOAD} }} }}"
EDIT = f"mutation($i: EditCommentInput!) {{ editComment(input: $i) {{ {PAYLOAD} }} }}"
DELETE = "mutation($id: ID!) { deleteComment(id: $id) { deletedId errors { code message field } } }"
NODE = f"query($id: ID!) {{ node(id: $id) {{ __typename ... on Comment {{ {FIELDS} }} }} }}"
TASK_COMMENTS = """
query($task: ID!, $first: Int, $after: String) {
  node(id: $task) {
    ... on Task {
      comments(first: $first, after: $after) {
        totalCount
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
        edges { cursor node { id body } }
      }
    }
  }
}
"""
# Ten comments added by one document (one transaction), "0" to "9" in document order.
ADD_MANY = (
    "mutation($task: ID!) { "
    + " ".join(
        f'c{i}: addComment(input: {{taskId: $task, body: "{i}"}}) {{ errors {{ code }} }}'
        for i in range(10)
    )
    + " }"
)


async def create_task(gql: GraphQL, org: Org, title: str = "Task") -> str:
    """A task (in a new project) of `org`; returns its global id."""
    data = await gql.data(CREATE_PROJECT, {"name": "Project"}, token=org.token)
    project = data["createProject"]["project"]["id"]
    data = await gql.data(CREATE_TASK, {"project": project, "title": title}, token=org.token)
    assert data["createTask"]["errors"] == []
    task_id: str = data["createTask"]["task"]["id"]
    return task_id


async def add(gql: GraphQL, member: Member, task_id: str, body: str) -> dict[str, Any]:
    payload = await add_payload(gql, member, task_id, body)
    assert payload["errors"] == [], payload
    comment: dict[str, Any] = payload["comment"]
    return comment


async def add_payload(gql: GraphQL, member: Member, task_id: str, body: str) -> dict[str, Any]:
    data = await gql.data(ADD, {"i": {"taskId": task_id, "body": body}}, token=member.token)
    payload: dict[str, Any] = data["addComment"]
    return payload


async def edit(gql: GraphQL, member: Member, comment_id: str, body: str) -> dict[str, Any]:
    data = await gql.data(EDIT, {"i": {"id": comment_id, "body": body}}, token=member.token)
    payload: dict[str, Any] = data["editComment"]
    return payload


async def delete(gql: GraphQL, member: Member, comment_id: str) -> dict[str, Any]:
    data = await gql.data(DELETE, {"id": comment_id}, token=member.token)
    payload: dict[str, Any] = data["deleteComment"]
    return payload


async def read(gql: GraphQL, member: Member, comment_id: str) -> dict[str, Any] | None:
    data = await gql.data(NODE, {"id": comment_id}, token=member.token)
    node: dict[str, Any] | None = data["node"]
    if node is not None:
        assert node.pop("__typename") == "Comment"
    return node


async def bodies(gql: GraphQL, org: Org, task_id: str) -> list[str]:
    """The task's comments, oldest first, as `task.comments` lists them."""
    data = await gql.data(TASK_COMMENTS, {"task": task_id, "first": 100}, token=org.token)
    connection = data["node"]["comments"]
    assert connection["totalCount"] == len(connection["edges"])
    return [e["node"]["body"] for e in connection["edges"]]


async def stored_count(database: Database, org: Org) -> int:
    async with database.transaction(org.id, readonly=True) as session:
        return int(await session.fetchval("SELECT count(*) FROM comments"))


async def stored_row(database: Database, org: Org, comment_id: str) -> dict[str, Any] | None:
    async with database.transaction(org.id, readonly=True) as session:
        row = await session.fetchrow("SELECT * FROM comments WHERE id = $1", pk(comment_id))
    return None if row is None else dict(row)


def codes(payload: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(e["code"], e["field"]) for e in payload["errors"]]


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


# --- addComment ------------------------------------------------------------------------


async def test_add_comment_as_the_signed_in_member(
    gql: GraphQL, org: Org, database: Database
) -> None:
    task = await create_task(gql, org, "Discuss")
    author = org.members[1]

    comment = await add(gql, author, task, "  Looks good  \n")

    assert comment["body"] == "Looks good"  # trimmed
    assert comment["author"] == {"id": user_gid(author), "email": author.email}
    assert comment["task"] == {"id": task, "title": "Discuss"}
    assert comment["editedAt"] is None
    assert comment["createdAt"] == comment["updatedAt"]
    assert decode_global_id(comment["id"]) == ("Comment", pk(comment["id"]))
    assert await read(gql, org.members[0], comment["id"]) == comment
    row = await stored_row(database, org, comment["id"])
    assert row is not None
    assert (row["author_id"], row["task_id"], row["body"]) == (author.id, pk(task), "Looks good")
    assert row["created_at"] == at(comment["createdAt"])


async def test_comments_are_listed_oldest_first(gql: GraphQL, org: Org) -> None:
    task = await create_task(gql, org)
    first, second = org.members

    added = [
        await add(gql, first, task, "one"),
        await add(gql, second, task, "two"),
        await add(gql, first, task, "three"),
    ]

    assert await bodies(gql, org, task) == ["one", "two", "three"]
    created = [at(c["createdAt"]) for c in added]
    assert created == sorted(created)
    assert len(set(created)) == 3


async def test_longest_body_is_accepted(gql: GraphQL, org: Org) -> None:
    task = await create_task(gql, org)

    comment = await add(gql, org.members[0], task, "b" * 10_000)

    assert len(comment["body"]) == 10_000


@pytest.mark.parametrize(
    "body",
    ["", "   ", "\n\t", "b" * 10_001, "bell\x07", "escape \x1b[2J", "del\x7f"],
    ids=["empty", "blank", "whitespace", "too-long", "bell", "escape", "del"],
)
async def test_invalid_body_is_reported_and_nothing_is_stored(
    gql: GraphQL, org: Org, database: Database, body: str
) -> None:
    task = await create_task(gql, org)

    payload = await add_payload(gql, org.members[0], task, body)

    assert payload["comment"] is None
    assert codes(payload) == [("INVALID", "body")]
    assert "comments" not in payload["errors"][0]["message"]  # no table or constraint names
    assert await stored_count(database, org) == 0


async def test_nul_and_lone_surrogate_bodies_are_refused_before_anything_runs(
    gql: GraphQL, org: Org, database: Database
) -> None:
    task = await create_task(gql, org)

    for text in ("nul\x00byte", "half \ud83d of an emoji"):
        variables = {"i": {"taskId": task, "body": text}}
        body = await post_escaped(gql, ADD, variables, token=org.token)

        assert refused_input(body) == "body"
    assert await stored_count(database, org) == 0


async def test_malformed_task_ids_are_invalid(gql: GraphQL, org: Org, database: Database) -> None:
    await create_task(gql, org)
    project_id = encode_global_id("Project", uuid4())

    for task_id in ("garbage", "", str(uuid4()), project_id, user_gid(org.members[0])):
        payload = await add_payload(gql, org.members[0], task_id, "hi")

        assert payload["comment"] is None
        assert codes(payload) == [("INVALID", "taskId")], task_id
    assert await stored_count(database, org) == 0


async def test_other_tenants_task_is_like_a_random_id(
    gql: GraphQL, org: Org, other_org: Org, database: Database
) -> None:
    theirs = await create_task(gql, other_org, "Secret")
    random_id = encode_global_id("Task", uuid4())

    their_body = await gql(ADD, {"i": {"taskId": theirs, "body": "hi"}}, token=org.token)
    random_body = await gql(ADD, {"i": {"taskId": random_id, "body": "hi"}}, token=org.token)

    payload = random_body["data"]["addComment"]
    assert payload["comment"] is None
    assert codes(payload) == [("NOT_FOUND", "taskId")]
    assert their_body == random_body
    assert await stored_count(database, org) == 0
    assert await stored_count(database, other_org) == 0


async def test_anonymous_add_is_unauthenticated(gql: GraphQL, org: Org, database: Database) -> None:
    task = await create_task(gql, org)

    body = await gql(ADD, {"i": {"taskId": task, "body": "hi"}})

    assert "data" not in body
    [error] = body["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert await stored_count(database, org) == 0


# --- editComment -------------------------------------------------------------------------


async def test_author_edits_a_comment(gql: GraphQL, org: Org, database: Database) -> None:
    task = await create_task(gql, org)
    author = org.members[0]
    comment = await add(gql, author, task, "frist")

    payload = await edit(gql, author, comment["id"], " first ")

    assert payload["errors"] == []
    edited = payload["comment"]
    assert edited["body"] == "first"
    assert edited["editedAt"] is not None
    assert at(edited["editedAt"]) > at(comment["createdAt"])
    assert at(edited["updatedAt"]) > at(comment["updatedAt"])
    assert (edited["id"], edited["createdAt"], edited["author"]) == (
        comment["id"],
        comment["createdAt"],
        comment["author"],
    )
    assert await read(gql, org.members[1], comment["id"]) == edited
    row = await stored_row(database, org, comment["id"])
    assert row is not None
    assert (row["body"], row["edited_at"]) == ("first", at(edited["editedAt"]))


async def test_another_member_cannot_edit(
    gql: GraphQL, database: Database, tokens: TokenService
) -> None:
    # Members (`comment:write`) change only their own comments; admins moderate.
    org = await new_org(database, tokens, members=2, role="member")
    task = await create_task(gql, org)
    author, other = org.members
    comment = await add(gql, author, task, "mine")

    payload = await edit(gql, other, comment["id"], "hijacked")

    assert payload["comment"] is None
    assert codes(payload) == [("FORBIDDEN", "id")]
    assert await read(gql, author, comment["id"]) == comment
    row = await stored_row(database, org, comment["id"])
    assert row is not None
    assert (row["body"], row["edited_at"]) == ("mine", None)


async def test_invalid_edit_changes_nothing(gql: GraphQL, org: Org) -> None:
    task = await create_task(gql, org)
    author = org.members[0]
    comment = await add(gql, author, task, "keep")

    for body in ("", " ", "b" * 10_001):
        payload = await edit(gql, author, comment["id"], body)
        assert payload["comment"] is None
        assert codes(payload) == [("INVALID", "body")]
    refused = await gql(EDIT, {"i": {"id": comment["id"], "body": "nul\x00"}}, token=author.token)
    assert refused_input(refused) == "body"

    assert await read(gql, author, comment["id"]) == comment


async def test_other_tenants_comment_is_not_found_never_forbidden(
    gql: GraphQL, org: Org, other_org: Org
) -> None:
    their_task = await create_task(gql, other_org)
    theirs = await add(gql, other_org.members[0], their_task, "secret")
    random_id = encode_global_id("Comment", uuid4())
    me = org.members[0]

    for document, variables in (
        (EDIT, lambda i: {"i": {"id": i, "body": "pwned"}}),
        (DELETE, lambda i: {"id": i}),
        (NODE, lambda i: {"id": i}),
    ):
        their_body = await gql(document, variables(theirs["id"]), token=me.token)
        random_body = await gql(document, variables(random_id), token=me.token)
        assert their_body == random_body, document
        if document is not NODE:
            [payload] = their_body["data"].values()
            assert codes(payload) == [("NOT_FOUND", "id")]

    assert await read(gql, other_org.members[0], theirs["id"]) == theirs


# --- deleteComment -----------------------------------------------------------------------


async def test_author_deletes_a_comment_once(gql: GraphQL, org: Org, database: Database) -> None:
    task = await create_task(gql, org)
    author = org.members[0]
    doomed = await add(gql, author, task, "doomed")
    await add(gql, author, task, "kept")

    deleted = await delete(gql, author, doomed["id"])
    again = await delete(gql, author, doomed["id"])

    assert deleted == {"deletedId": doomed["id"], "errors": []}
    assert again["deletedId"] is None
    assert codes(again) == [("NOT_FOUND", "id")]
    assert await read(gql, author, doomed["id"]) is None
    assert await stored_row(database, org, doomed["id"]) is None
    assert await bodies(gql, org, task) == ["kept"]


async def test_another_member_cannot_delete(
    gql: GraphQL, database: Database, tokens: TokenService
) -> None:
    # Members (`comment:write`) change only their own comments; admins moderate.
    org = await new_org(database, tokens, members=2, role="member")
    task = await create_task(gql, org)
    author, other = org.members
    comment = await add(gql, author, task, "mine")

    payload = await delete(gql, other, comment["id"])

    assert payload["deletedId"] is None
    assert codes(payload) == [("FORBIDDEN", "id")]
    assert await stored_row(database, org, comment["id"]) is not None
    assert await bodies(gql, org, task) == ["mine"]


async def test_malformed_comment_ids_are_invalid(gql: GraphQL, org: Org) -> None:
    task = await create_task(gql, org)
    me = org.members[0]

    for bad in ("garbage", task):  # a Task id is not a Comment id
        assert codes(await edit(gql, me, bad, "x")) == [("INVALID", "id")]
        deleted = await delete(gql, me, bad)
        assert (deleted["deletedId"], codes(deleted)) == (None, [("INVALID", "id")])


# --- reading -----------------------------------------------------------------------------


async def test_comment_author_and_task_resolve(gql: GraphQL, org: Org) -> None:
    task = await create_task(gql, org, "Parent")
    author = org.members[1]
    comment = await add(gql, author, task, "hello")

    node = await read(gql, org.members[0], comment["id"])

    assert node is not None
    assert node["author"] == {"id": user_gid(author), "email": author.email}
    assert node["task"] == {"id": task, "title": "Parent"}


async def test_comments_pagination(gql: GraphQL, org: Org) -> None:
    task = await create_task(gql, org)
    other_task = await create_task(gql, org)
    expected = [f"c{i}" for i in range(7)]
    for i, body in enumerate(expected):
        await add(gql, org.members[i % 2], task, body)
    await add(gql, org.members[0], other_task, "elsewhere")

    seen: list[str] = []
    after = None
    pages = 0
    while True:
        variables = {"task": task, "first": 3, "after": after}
        data = await gql.data(TASK_COMMENTS, variables, token=org.token)
        page = data["node"]["comments"]
        pages += 1
        assert page["totalCount"] == 7
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        assert page["pageInfo"]["startCursor"] == page["edges"][0]["cursor"]
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        seen += [e["node"]["body"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
        assert pages < 10, "pagination does not end"

    assert seen == expected
    assert pages == 3
    assert await bodies(gql, org, task) == expected


async def test_comments_added_by_one_document_stay_oldest_first(gql: GraphQL, org: Org) -> None:
    task = await create_task(gql, org)

    data = await gql.data(ADD_MANY, {"task": task}, token=org.token)

    assert all(payload["errors"] == [] for payload in data.values())
    assert await bodies(gql, org, task) == [str(i) for i in range(10)]
