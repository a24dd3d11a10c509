"""tenants / platformTenant (tenant:read): every tenant with its status, plan, usage and last
activity, for platform administrators only; the registry is readable in the platform scope,
nothing else of a tenant is."""

from __future__ import annotations

import secrets
from typing import Any
from uuid import uuid4

import pytest

from app.api.relay import encode_global_id
from app.core.db import Database
from app.core.security import TokenService
from app.core.settings import Settings
from tests.app_fixtures import PASSWORD, GraphQL, Org, new_org
from tests.platform.support import Admin, codes, new_admin
from tests.platform.support import sign_in as platform_sign_in
from tests.platform.test_deletion import fill

CREATE = """
mutation ($input: CreateTenantInput!) {
  createTenant(input: $input) { tenant { id } errors { code } }
}"""
SUSPEND = """
mutation ($input: SuspendTenantInput!) { suspendTenant(input: $input) { errors { code } } }
"""
LIST = """
query ($search: String, $plan: String, $status: TenantStatus, $first: Int, $after: String) {
  tenants(search: $search, plan: $plan, status: $status, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes { id slug name plan status }
  }
}"""
ONE = """
query ($id: ID!) {
  platformTenant(id: $id) {
    id slug status plan createdAt deletedAt
    usage { users projects tasks storageBytes lastActivityAt }
  }
}"""


@pytest.fixture
async def reader(gql: GraphQL, database: Database, app_settings: Settings) -> tuple[Admin, str]:
    permissions = ["tenant:read", "tenant:create", "tenant:suspend"]
    admin = await new_admin(database, app_settings, permissions=permissions)
    return admin, await platform_sign_in(gql, admin)


async def create(gql: GraphQL, token: str, slug: str, name: str, plan: str) -> str:
    values = {"slug": slug, "name": name, "plan": plan, "owner": {"email": f"o@{slug}.example"}}
    payload = (await gql.data(CREATE, {"input": values}, token=token))["createTenant"]
    assert payload["errors"] == []
    return str(payload["tenant"]["id"])


async def listing(gql: GraphQL, token: str, **variables: Any) -> Any:
    return (await gql.data(LIST, variables, token=token))["tenants"]


async def test_list_filter_search_and_page(gql: GraphQL, reader: tuple[Admin, str]) -> None:
    token = reader[1]
    mark = secrets.token_hex(4)
    first = await create(gql, token, f"alpha-{mark}", f"Alpha {mark}", "free")
    second = await create(gql, token, f"beta-{mark}", f"Beta {mark} 100%", "team")
    third = await create(gql, token, f"gamma-{mark}", f"Gamma {mark}", "team")
    await gql.data(SUSPEND, {"input": {"id": third, "reason": "test"}}, token=token)

    everything = await listing(gql, token, search=mark.upper())
    assert everything["totalCount"] == 3
    assert [n["id"] for n in everything["nodes"]] == [third, second, first]  # newest first
    assert [n["status"] for n in everything["nodes"]] == ["SUSPENDED", "ACTIVE", "ACTIVE"]
    on_team = await listing(gql, token, search=mark, plan="team")
    assert [n["slug"] for n in on_team["nodes"]] == [f"gamma-{mark}", f"beta-{mark}"]
    suspended = await listing(gql, token, search=mark, status="SUSPENDED")
    assert [n["id"] for n in suspended["nodes"]] == [third]
    # LIKE wildcards in the search text match themselves.
    assert [n["id"] for n in (await listing(gql, token, search=f"{mark} 100%"))["nodes"]] == [
        second
    ]
    assert (await listing(gql, token, search=f"{mark}_"))["totalCount"] == 0

    page = await listing(gql, token, search=mark, first=2)
    assert [n["id"] for n in page["nodes"]] == [third, second]
    assert page["pageInfo"]["hasNextPage"] is True
    rest = await listing(gql, token, search=mark, first=2, after=page["pageInfo"]["endCursor"])
    assert [n["id"] for n in rest["nodes"]] == [first]
    assert rest["pageInfo"]["hasNextPage"] is False


async def test_one_tenant_with_its_usage(
    gql: GraphQL, database: Database, tokens: TokenService, reader: tuple[Admin, str]
) -> None:
    org = await new_org(database, tokens, members=2, password=PASSWORD, role="owner")
    await fill(gql, org)

    tenant = (await gql.data(ONE, {"id": encode_global_id("Tenant", org.id)}, token=reader[1]))[
        "platformTenant"
    ]

    assert (tenant["slug"], tenant["status"], tenant["plan"]) == (org.slug, "ACTIVE", "enterprise")
    assert tenant["deletedAt"] is None
    usage = tenant["usage"]
    # Two members and the invited user; one project with one task (tests/platform/test_deletion).
    assert (usage["users"], usage["projects"], usage["tasks"]) == (3, 1, 1)
    assert usage["storageBytes"] > 0
    assert usage["lastActivityAt"] is not None


async def test_unknown_and_malformed_ids(gql: GraphQL, reader: tuple[Admin, str]) -> None:
    unknown = await gql.data(ONE, {"id": encode_global_id("Tenant", uuid4())}, token=reader[1])
    assert unknown == {"platformTenant": None}
    assert codes(await gql(ONE, {"id": "garbage"}, token=reader[1])) == ["INVALID"]
    assert codes(await gql(LIST, {"plan": "platinum"}, token=reader[1])) == ["INVALID"]


async def test_only_holders_of_tenant_read(
    gql: GraphQL, database: Database, app_settings: Settings, org: Org
) -> None:
    auditor = await new_admin(database, app_settings, permissions=["platform:audit"])
    token = await platform_sign_in(gql, auditor)

    assert codes(await gql(LIST, token=token)) == ["FORBIDDEN"]
    assert codes(await gql(ONE, {"id": encode_global_id("Tenant", org.id)}, token=token)) == [
        "FORBIDDEN"
    ]


async def test_the_platform_scope_reads_the_registry_but_changes_no_tenant(
    database: Database, org: Org
) -> None:
    async with database.transaction(None, platform=True) as session:
        assert await session.fetchval("SELECT count(*) FROM tenants WHERE id = $1", org.id) == 1
        # Changing a tenant needs binding it: the platform scope alone reaches no row.
        changed = await session.execute(
            "UPDATE tenants SET name = 'Hijacked' WHERE id = $1", org.id
        )
        assert changed == "UPDATE 0"
        # Nothing of the tenant's own data is readable in the platform scope.
        assert await session.fetchval("SELECT count(*) FROM users") == 0


async def test_usage_answers_only_in_the_platform_scope(database: Database, org: Org) -> None:
    for tenant in (org.id, None):
        async with database.transaction(tenant, readonly=True) as session:
            rows = await session.fetch("SELECT * FROM app.tenant_usage($1::uuid[])", [org.id])
        assert rows == []
    async with database.transaction(None, readonly=True, platform=True) as session:
        [row] = await session.fetch("SELECT * FROM app.tenant_usage($1::uuid[])", [org.id])
    assert row["users"] == len(org.members)
