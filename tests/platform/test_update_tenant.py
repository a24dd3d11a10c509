"""updateTenant (tenant:create): rename or change plan, recorded in both audit logs; what
does not change is not recorded; bad input changes nothing."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from app.api.relay import encode_global_id
from app.core.db import Database
from app.core.settings import Settings
from tests.accounts.support import audit
from tests.app_fixtures import GraphQL, Org
from tests.factories import fingerprint
from tests.platform.support import AUDIT, Admin, codes, new_admin
from tests.platform.support import sign_in as platform_sign_in

UPDATE = """
mutation ($input: UpdateTenantInput!) {
  updateTenant(input: $input) { tenant { name plan } errors { code message field } }
}"""
DELETE = """
mutation ($input: DeleteTenantInput!) { deleteTenant(input: $input) { errors { code } } }
"""


@pytest.fixture
async def manager(gql: GraphQL, database: Database, app_settings: Settings) -> tuple[Admin, str]:
    permissions = ["tenant:create", "tenant:delete", "platform:audit"]
    admin = await new_admin(database, app_settings, permissions=permissions)
    return admin, await platform_sign_in(gql, admin)


async def update(gql: GraphQL, token: str, org: Org, **values: Any) -> Any:
    given = {"id": encode_global_id("Tenant", org.id), **values}
    return (await gql.data(UPDATE, {"input": given}, token=token))["updateTenant"]


async def test_rename_and_change_plan(
    gql: GraphQL, database: Database, manager: tuple[Admin, str], org: Org
) -> None:
    admin, token = manager

    payload = await update(gql, token, org, name="Renamed Ltd", plan="team", reason="upgrade")
    unchanged = await update(gql, token, org, name="Renamed Ltd")

    assert payload == {"tenant": {"name": "Renamed Ltd", "plan": "team"}, "errors": []}
    assert unchanged["errors"] == []
    [entry] = await audit(database, org.id, "tenant.updated")
    assert entry["actor_id"] == admin.id
    assert entry["metadata"] == {
        "changes": {"name": [f"Org {org.slug}", "Renamed Ltd"], "plan": ["enterprise", "team"]},
        "reason": "upgrade",
    }
    logged = (await gql.data(AUDIT, {"action": "tenant.updated"}, token=token))["platformAuditLog"][
        "nodes"
    ]
    assert [e["targetId"] for e in logged].count(str(org.id)) == 1


@pytest.mark.parametrize(
    ("values", "code", "field"),
    [
        ({"name": ""}, "INVALID", "name"),
        ({"name": None}, "INVALID", "name"),
        ({"plan": "platinum"}, "INVALID", "plan"),
        ({"id": encode_global_id("Tenant", uuid4()), "name": "x"}, "NOT_FOUND", "id"),
        ({"id": "garbage", "name": "x"}, "INVALID", "id"),
    ],
)
async def test_bad_input_changes_nothing(
    gql: GraphQL,
    database: Database,
    manager: tuple[Admin, str],
    org: Org,
    values: dict[str, Any],
    code: str,
    field: str,
) -> None:
    before = await fingerprint(database, org.id)

    payload = await update(gql, manager[1], org, **values)

    assert [(e["code"], e["field"]) for e in payload["errors"]] == [(code, field)]
    assert await fingerprint(database, org.id) == before


async def test_a_deleted_tenant_is_restored_first(
    gql: GraphQL, manager: tuple[Admin, str], org: Org
) -> None:
    tenant = encode_global_id("Tenant", org.id)
    await gql.data(DELETE, {"input": {"id": tenant, "reason": "x"}}, token=manager[1])

    payload = await update(gql, manager[1], org, name="Zombie")

    assert [(e["code"], e["field"]) for e in payload["errors"]] == [("CONFLICT", "id")]


async def test_only_holders_of_tenant_create(
    gql: GraphQL, database: Database, app_settings: Settings, org: Org
) -> None:
    reader = await new_admin(database, app_settings, permissions=["tenant:read"])
    token = await platform_sign_in(gql, reader)
    variables = {"input": {"id": encode_global_id("Tenant", org.id), "name": "x"}}

    assert codes(await gql(UPDATE, variables, token=token)) == ["FORBIDDEN"]
    assert codes(await gql(UPDATE, variables, token=org.token)) == ["FORBIDDEN"]
