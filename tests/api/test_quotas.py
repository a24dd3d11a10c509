"""Plan quotas: users and projects are refused with QUOTA_EXCEEDED naming the limit when the
plan allows no more (nothing is created), and concurrent additions cannot overshoot. Request
rates and the cost budget: tests/api/test_fair_sharing.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.api.relay import encode_global_id
from app.core.db import Database
from app.core.security import TokenService
from app.core.settings import Settings
from app.tenants.plans import PLANS
from tests.accounts.support import INVITE
from tests.app_fixtures import GraphQL, Org, new_org
from tests.platform.support import new_admin
from tests.platform.support import sign_in as platform_sign_in

FREE = PLANS["free"]
PROJECT = """
mutation ($name: String!) {
  createProject(input: {name: $name}) { project { id } errors { code message field } }
}"""
ARCHIVE = "mutation ($id: ID!) { archiveProject(id: $id) { errors { code } } }"
UNARCHIVE = "mutation ($id: ID!) { unarchiveProject(id: $id) { errors { code message } } }"
DISABLE = "mutation ($id: ID!) { disableUser(id: $id) { errors { code } } }"
ENABLE = "mutation ($id: ID!) { enableUser(id: $id) { errors { code message } } }"
UPDATE_TENANT = """
mutation ($input: UpdateTenantInput!) { updateTenant(input: $input) { errors { code } } }
"""
PING = "{ viewer { id } }"


@pytest.fixture
async def free_org(database: Database, tokens: TokenService) -> Org:
    return await new_org(database, tokens, members=2, plan="free")


async def counts(database: Database, org: Org) -> tuple[int, int]:
    async with database.transaction(org.id, readonly=True) as session:
        users = await session.fetchval("SELECT count(*) FROM users")
        projects = await session.fetchval("SELECT count(*) FROM projects")
    return users, projects


async def invite(gql: GraphQL, org: Org, n: int) -> Any:
    variables = {"input": {"email": f"seat{n}@{org.slug}.example"}}
    return (await gql.data(INVITE, variables, token=org.token))["inviteUser"]


async def new_project(gql: GraphQL, org: Org, name: str, token: str | None = None) -> Any:
    payload = await gql.data(PROJECT, {"name": name}, token=token or org.token)
    return payload["createProject"]


async def test_users_beyond_the_plan_are_refused_naming_the_limit(
    gql: GraphQL, database: Database, free_org: Org
) -> None:
    # Two members plus three invitations fill the free plan's five seats.
    for n in range(FREE.max_users - 2):  # type: ignore[operator]
        assert (await invite(gql, free_org, n))["errors"] == []
    before = await counts(database, free_org)

    refused = await invite(gql, free_org, 99)

    assert refused["user"] is None
    [error] = refused["errors"]
    assert error["code"] == "QUOTA_EXCEEDED"
    assert "maxUsers" in error["message"]
    assert f"at most {FREE.max_users} users" in error["message"]
    assert await counts(database, free_org) == before


async def test_a_disabled_user_frees_a_seat_and_enabling_takes_one(
    gql: GraphQL, free_org: Org
) -> None:
    for n in range(3):
        await invite(gql, free_org, n)
    leaving = encode_global_id("User", free_org.members[1].id)

    assert (await gql.data(DISABLE, {"id": leaving}, token=free_org.token))["disableUser"] == {
        "errors": []
    }
    assert (await invite(gql, free_org, 3))["errors"] == []
    enabled = await gql.data(ENABLE, {"id": leaving}, token=free_org.token)

    [error] = enabled["enableUser"]["errors"]
    assert error["code"] == "QUOTA_EXCEEDED"
    assert "maxUsers" in error["message"]


async def test_projects_beyond_the_plan_are_refused_and_archiving_frees_one(
    gql: GraphQL, database: Database, free_org: Org
) -> None:
    made = [await new_project(gql, free_org, f"P{n}") for n in range(FREE.max_projects)]  # type: ignore[arg-type]
    assert all(p["errors"] == [] for p in made)

    refused = await new_project(gql, free_org, "one too many")
    first = made[0]["project"]["id"]
    await gql.data(ARCHIVE, {"id": first}, token=free_org.token)
    after_archiving = await new_project(gql, free_org, "in its place")
    unarchived = await gql.data(UNARCHIVE, {"id": first}, token=free_org.token)

    assert refused["project"] is None
    [error] = refused["errors"]
    assert error["code"] == "QUOTA_EXCEEDED"
    assert f"at most {FREE.max_projects} active projects (maxProjects)" in error["message"]
    assert after_archiving["errors"] == []
    assert [e["code"] for e in unarchived["unarchiveProject"]["errors"]] == ["QUOTA_EXCEEDED"]
    assert await counts(database, free_org) == (2, FREE.max_projects + 1)


async def test_bad_input_is_reported_before_the_quota(gql: GraphQL, free_org: Org) -> None:
    for n in range(FREE.max_projects):  # type: ignore[arg-type]
        await new_project(gql, free_org, f"P{n}")

    payload = await new_project(gql, free_org, "   ")

    assert [e["code"] for e in payload["errors"]] == ["INVALID"]


async def test_concurrent_additions_cannot_overshoot_the_limit(
    gql: GraphQL, database: Database, free_org: Org
) -> None:
    for n in range(FREE.max_projects - 1):  # type: ignore[operator]
        await new_project(gql, free_org, f"P{n}")

    # Both members race for the last place, twice each.
    racers = [m.token for m in free_org.members] * 2
    results = await asyncio.gather(
        *(new_project(gql, free_org, f"race {i}", token) for i, token in enumerate(racers))
    )

    codes = sorted(e["code"] for r in results for e in r["errors"])
    assert codes == ["QUOTA_EXCEEDED"] * (len(racers) - 1)
    assert (await counts(database, free_org))[1] == FREE.max_projects


async def test_a_plan_change_applies_to_the_next_addition(
    gql: GraphQL, database: Database, app_settings: Settings, free_org: Org
) -> None:
    for n in range(FREE.max_projects):  # type: ignore[arg-type]
        await new_project(gql, free_org, f"P{n}")
    admin = await new_admin(database, app_settings, permissions=["tenant:create"])
    platform = await platform_sign_in(gql, admin)
    target = encode_global_id("Tenant", free_org.id)

    await gql.data(UPDATE_TENANT, {"input": {"id": target, "plan": "team"}}, token=platform)
    upgraded = await new_project(gql, free_org, "room on team")
    await gql.data(UPDATE_TENANT, {"input": {"id": target, "plan": "free"}}, token=platform)
    downgraded = await new_project(gql, free_org, "not on free")

    assert upgraded["errors"] == []
    # Moving down keeps what the tenant has; it only cannot add more.
    assert [e["code"] for e in downgraded["errors"]] == ["QUOTA_EXCEEDED"]
    assert (await counts(database, free_org))[1] == FREE.max_projects + 1


async def test_an_unlimited_plan_has_no_quota(gql: GraphQL, org: Org) -> None:
    assert PLANS["enterprise"].max_projects is None
    made = [await new_project(gql, org, f"P{n}") for n in range(FREE.max_projects + 2)]  # type: ignore[operator]
    assert all(p["errors"] == [] for p in made)


async def test_the_tenant_reads_its_limits_and_their_use(
    gql: GraphQL, free_org: Org, org: Org
) -> None:
    await invite(gql, free_org, 0)
    await new_project(gql, free_org, "P")
    document = "{ tenant { plan requestsPerMinute quotas { limit maximum used } } }"

    free = (await gql.data(document, token=free_org.token))["tenant"]
    unlimited = (await gql.data(document, token=org.token))["tenant"]

    assert free == {
        "plan": "free",
        "requestsPerMinute": FREE.requests_per_minute,
        "quotas": [
            # Two members and one invitation; one active project.
            {"limit": "maxUsers", "maximum": FREE.max_users, "used": 3},
            {"limit": "maxProjects", "maximum": FREE.max_projects, "used": 1},
        ],
    }
    assert unlimited["requestsPerMinute"] is None
    assert [q["maximum"] for q in unlimited["quotas"]] == [None, None]
