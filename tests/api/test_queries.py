"""Root queries and nested relations: viewer, tenant, users, node."""

from __future__ import annotations

from uuid import uuid4

from app.api.relay import encode_global_id
from tests.app_fixtures import GRAPHQL_RESPONSE, GraphQL, Org

NODE = """
query($id: ID!) {
  node(id: $id) {
    __typename id
    ... on Project { name }
    ... on Task { title }
    ... on Comment { body }
    ... on User { email }
    ... on Tenant { slug }
  }
}
"""
SEED = """
mutation {
  p: createProject(input: {name: "Alpha"}) { project { id } }
}
"""
USERS = """
query($first: Int, $after: String, $order: UserOrder) {
  users(first: $first, after: $after, orderBy: $order) {
    totalCount pageInfo { hasNextPage endCursor } nodes { id email displayName status }
  }
}
"""


async def seed_graph(gql: GraphQL, org: Org) -> dict[str, str]:
    """A project, a task assigned to member 1, and a comment by member 0: their ids."""
    project = (await gql.data(SEED, token=org.token))["p"]["project"]["id"]
    assignee = encode_global_id("User", org.members[1].id)
    task = (
        await gql.data(
            'mutation($p: ID!, $a: ID) { createTask(input: {projectId: $p, title: "Do", '
            "assigneeId: $a}) { task { id } } }",
            {"p": project, "a": assignee},
            token=org.token,
        )
    )["createTask"]["task"]["id"]
    comment = (
        await gql.data(
            'mutation($t: ID!) { addComment(input: {taskId: $t, body: "Hi"}) { comment { id } } }',
            {"t": task},
            token=org.token,
        )
    )["addComment"]["comment"]["id"]
    return {"project": project, "task": task, "comment": comment, "assignee": assignee}


async def test_viewer_and_tenant(gql: GraphQL, org: Org) -> None:
    data = await gql.data(
        "{ viewer { id email displayName status } tenant { id slug name status plan } }",
        token=org.token,
    )

    assert data["viewer"] == {
        "id": encode_global_id("User", org.members[0].id),
        "email": org.members[0].email,
        "displayName": "User 0",
        "status": "ACTIVE",
    }
    assert data["tenant"] == {
        "id": encode_global_id("Tenant", org.id),
        "slug": org.slug,
        "name": f"Org {org.slug}",
        "status": "ACTIVE",
        "plan": "enterprise",
    }


async def test_users_lists_only_this_tenant_in_order(
    gql: GraphQL, org: Org, other_org: Org
) -> None:
    data = await gql.data(USERS, {"order": {"field": "EMAIL"}}, token=org.token)

    assert data["users"]["totalCount"] == 2
    assert [u["email"] for u in data["users"]["nodes"]] == sorted(m.email for m in org.members)
    first = await gql.data(USERS, {"first": 1}, token=org.token)
    rest = await gql.data(
        USERS, {"first": 1, "after": first["users"]["pageInfo"]["endCursor"]}, token=org.token
    )
    assert first["users"]["pageInfo"]["hasNextPage"] is True
    assert rest["users"]["pageInfo"]["hasNextPage"] is False
    assert {u["email"] for u in first["users"]["nodes"] + rest["users"]["nodes"]} == {
        m.email for m in org.members
    }


async def test_node_resolves_every_type(gql: GraphQL, org: Org) -> None:
    ids = await seed_graph(gql, org)
    expected = {
        ids["project"]: ("Project", "name", "Alpha"),
        ids["task"]: ("Task", "title", "Do"),
        ids["comment"]: ("Comment", "body", "Hi"),
        ids["assignee"]: ("User", "email", org.members[1].email),
        encode_global_id("Tenant", org.id): ("Tenant", "slug", org.slug),
    }
    for global_id, (typename, field, value) in expected.items():
        node = (await gql.data(NODE, {"id": global_id}, token=org.token))["node"]
        assert (node["__typename"], node["id"], node[field]) == (typename, global_id, value)


async def test_node_of_another_tenant_or_unknown_is_null(
    gql: GraphQL, org: Org, other_org: Org
) -> None:
    ids = await seed_graph(gql, org)
    candidates = [
        *ids.values(),
        encode_global_id("Tenant", org.id),
        encode_global_id("Project", uuid4()),
        encode_global_id("Nope", uuid4()),
        "garbage",
        "",
    ]
    for global_id in candidates:
        data = await gql.data(NODE, {"id": global_id}, token=other_org.token)
        assert data["node"] is None, global_id


async def test_nested_relations(gql: GraphQL, org: Org) -> None:
    ids = await seed_graph(gql, org)

    data = await gql.data(
        """
        query($id: ID!) {
          project(id: $id) {
            createdBy { email }
            tasks { totalCount nodes {
              project { id }
              assignee { email }
              createdBy { email }
              comments { totalCount nodes { body author { email } task { id } } }
            } }
          }
        }
        """,
        {"id": ids["project"]},
        token=org.token,
    )
    assignee = await gql.data(
        "{ viewer { assignedTasks { totalCount } } }", token=org.members[1].token
    )

    project = data["project"]
    assert project["createdBy"]["email"] == org.members[0].email
    [task] = project["tasks"]["nodes"]
    assert task["project"]["id"] == ids["project"]
    assert task["assignee"]["email"] == org.members[1].email
    assert task["createdBy"]["email"] == org.members[0].email
    assert task["comments"]["totalCount"] == 1
    assert task["comments"]["nodes"][0] == {
        "body": "Hi",
        "author": {"email": org.members[0].email},
        "task": {"id": ids["task"]},
    }
    assert assignee["viewer"]["assignedTasks"]["totalCount"] == 1


async def test_a_deleted_user_token_is_refused(gql: GraphQL, org: Org, database: object) -> None:
    from app.core.db import Database

    assert isinstance(database, Database)
    async with database.transaction(org.id) as session:
        await session.execute("DELETE FROM users WHERE id = $1", org.members[1].id)

    # Their sessions went with them: the token names a session that no longer exists.
    response = await gql.post(
        "{ viewer { id } }", token=org.members[1].token, headers=GRAPHQL_RESPONSE
    )

    assert response.status_code == 401
