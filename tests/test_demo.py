"""The demo seed behind `tenantry serve --demo`: real data, seeded once, sign-in works."""

from __future__ import annotations

from app.core.db import Database
from app.demo import DEMO_USERS, seed_demo
from tests.app_fixtures import GraphQL

SIGN_IN = """
mutation($t: String!, $e: String!, $p: String!) {
  signIn(input: {tenant: $t, email: $e, password: $p}) { accessToken errors { code } }
}
"""
OVERVIEW = """
{ tenant { slug } users { totalCount }
  projects { totalCount nodes { tasks { totalCount nodes { comments { totalCount } } } } } }
"""


async def test_demo_is_seeded_once_and_signs_in(gql: GraphQL, database: Database) -> None:
    login = await seed_demo(database)
    again = await seed_demo(database)

    assert again == login
    data = await gql.data(SIGN_IN, {"t": login.tenant, "e": login.email, "p": login.password})
    token = data["signIn"]["accessToken"]
    assert token
    overview = await gql.data(OVERVIEW, token=token)
    assert overview["tenant"]["slug"] == "demo"
    assert overview["users"]["totalCount"] == len(DEMO_USERS)
    projects = overview["projects"]
    assert projects["totalCount"] == 3
    tasks = [t for p in projects["nodes"] for t in p["tasks"]["nodes"]]
    assert sum(p["tasks"]["totalCount"] for p in projects["nodes"]) >= 18
    assert any(t["comments"]["totalCount"] > 0 for t in tasks)
    # Someone trying the API adds a project: the demo's plan has room for it.
    created = await gql.data(
        'mutation { createProject(input: {name: "Mine"}) { errors { code } } }', token=token
    )
    assert created["createProject"]["errors"] == []
