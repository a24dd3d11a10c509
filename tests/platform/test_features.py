"""Feature flags: platform administrators set and unset them per tenant; the tenant's users
read their own as `tenant.features`, never another tenant's."""

from __future__ import annotations

from typing import Any

import pytest

from app.api.relay import encode_global_id
from app.core.db import Database
from app.core.settings import Settings
from tests.accounts.support import audit
from tests.app_fixtures import GraphQL, Org
from tests.factories import fingerprint
from tests.platform.support import Admin, codes, new_admin
from tests.platform.support import sign_in as platform_sign_in

SET = """
mutation ($input: SetTenantFeatureInput!) {
  setTenantFeature(input: $input) { features { key enabled } errors { code message field } }
}"""
UNSET = """
mutation ($input: UnsetTenantFeatureInput!) {
  unsetTenantFeature(input: $input) { features { key enabled } errors { code message field } }
}"""
MINE = "{ tenant { features { key enabled } } }"


@pytest.fixture
async def manager(gql: GraphQL, database: Database, app_settings: Settings) -> tuple[Admin, str]:
    admin = await new_admin(database, app_settings, permissions=["tenant:create"])
    return admin, await platform_sign_in(gql, admin)


async def call(gql: GraphQL, document: str, token: str, org: Org, **values: Any) -> Any:
    given = {"id": encode_global_id("Tenant", org.id), **values}
    body = await gql.data(document, {"input": given}, token=token)
    return next(iter(body.values()))


async def test_set_read_and_unset(
    gql: GraphQL, database: Database, manager: tuple[Admin, str], org: Org, other_org: Org
) -> None:
    token = manager[1]

    await call(gql, SET, token, org, key="reports.beta")
    changed = await call(gql, SET, token, org, key="Billing.V2", enabled=False)
    again = await call(gql, SET, token, org, key="billing.v2", enabled=False)  # no change

    expected = [{"key": "billing.v2", "enabled": False}, {"key": "reports.beta", "enabled": True}]
    assert changed == {"features": expected, "errors": []}
    assert again == changed
    assert (await gql.data(MINE, token=org.token))["tenant"]["features"] == expected
    assert (await gql.data(MINE, token=other_org.token))["tenant"]["features"] == []

    unset = await call(gql, UNSET, token, org, key="reports.beta")

    assert unset["features"] == [{"key": "billing.v2", "enabled": False}]
    entries = await audit(database, org.id, "tenant.feature")
    assert [(e["action"], e["metadata"]) for e in entries] == [
        ("tenant.feature_set", {"key": "reports.beta", "before": None, "after": True}),
        ("tenant.feature_set", {"key": "billing.v2", "before": None, "after": False}),
        ("tenant.feature_unset", {"key": "reports.beta", "before": True, "after": None}),
    ]


@pytest.mark.parametrize(
    ("document", "values", "code", "field"),
    [
        (SET, {"key": "Has Spaces"}, "INVALID", "key"),
        (SET, {"key": "x" * 65}, "INVALID", "key"),
        (SET, {"key": "9lives"}, "INVALID", "key"),
        (UNSET, {"key": ""}, "INVALID", "key"),
        (SET, {"key": "ok", "id": "garbage"}, "INVALID", "id"),
    ],
)
async def test_bad_input_changes_nothing(
    gql: GraphQL,
    database: Database,
    manager: tuple[Admin, str],
    org: Org,
    document: str,
    values: dict[str, Any],
    code: str,
    field: str,
) -> None:
    before = await fingerprint(database, org.id)

    payload = await call(gql, document, manager[1], org, **values)

    assert payload["features"] is None
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [(code, field)]
    assert await fingerprint(database, org.id) == before


async def test_only_platform_administrators_with_tenant_create(
    gql: GraphQL, database: Database, app_settings: Settings, org: Org
) -> None:
    reader = await new_admin(database, app_settings, permissions=["tenant:read"])
    token = await platform_sign_in(gql, reader)
    variables = {"input": {"id": encode_global_id("Tenant", org.id), "key": "x"}}

    assert codes(await gql(SET, variables, token=token)) == ["FORBIDDEN"]
    assert codes(await gql(SET, variables, token=org.token)) == ["FORBIDDEN"]
    assert (await gql.data(MINE, token=org.token))["tenant"]["features"] == []


async def test_platform_administrators_read_each_tenants_flags(
    gql: GraphQL,
    database: Database,
    app_settings: Settings,
    manager: tuple[Admin, str],
    org: Org,
    other_org: Org,
) -> None:
    await call(gql, SET, manager[1], org, key="reports.beta")
    await call(gql, SET, manager[1], org, key="billing.v2", enabled=False)
    reader = await new_admin(database, app_settings, permissions=["tenant:read"])
    token = await platform_sign_in(gql, reader)
    one = "query ($id: ID!) { platformTenant(id: $id) { features { key enabled } } }"
    page = (
        "query ($q: String!) { tenants(search: $q, first: 50) { nodes { slug features { key } } } }"
    )

    single = await gql.data(one, {"id": encode_global_id("Tenant", org.id)}, token=token)
    listed = {
        n["slug"]: n["features"]
        for q in (org.slug, other_org.slug)
        for n in (await gql.data(page, {"q": q}, token=token))["tenants"]["nodes"]
    }

    assert single["platformTenant"]["features"] == [
        {"key": "billing.v2", "enabled": False},
        {"key": "reports.beta", "enabled": True},
    ]
    assert listed[org.slug] == [{"key": "billing.v2"}, {"key": "reports.beta"}]
    assert listed[other_org.slug] == []


async def test_the_flag_reader_answers_only_in_the_platform_scope(
    gql: GraphQL, database: Database, manager: tuple[Admin, str], org: Org
) -> None:
    await call(gql, SET, manager[1], org, key="reports.beta")
    sql = "SELECT key FROM app.tenant_feature_flags($1::uuid[])"
    for tenant in (org.id, None):
        async with database.transaction(tenant, readonly=True) as session:
            assert await session.fetch(sql, [org.id]) == []
    async with database.transaction(None, readonly=True, platform=True) as session:
        assert [r["key"] for r in await session.fetch(sql, [org.id])] == ["reports.beta"]
