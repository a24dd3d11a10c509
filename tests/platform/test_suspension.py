"""suspendTenant / reactivateTenant: a suspended tenant's users are refused from their next
request, sign-in and refresh, their sessions end, other tenants carry on; every change is
in both audit logs with its reason."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from app.api.relay import encode_global_id
from app.core.db import Database
from app.core.security import TokenService
from app.core.settings import Settings
from app.core.store import Store
from app.tenants import service as tenants
from tests.accounts.support import audit
from tests.app_fixtures import GRAPHQL_RESPONSE, PASSWORD, GraphQL, Org, new_org
from tests.auth.helpers import refresh, sign_in
from tests.platform.support import AUDIT, Admin, codes, new_admin
from tests.platform.support import sign_in as platform_sign_in

SUSPEND = """
mutation ($input: SuspendTenantInput!) {
  suspendTenant(input: $input) { tenant { slug status } errors { code message field } }
}"""
REACTIVATE = """
mutation ($input: ReactivateTenantInput!) {
  reactivateTenant(input: $input) { tenant { slug status } errors { code message field } }
}"""
VIEWER = "{ viewer { email } }"


def tid(org: Org) -> str:
    return encode_global_id("Tenant", org.id)


@pytest.fixture
async def operator(gql: GraphQL, database: Database, app_settings: Settings) -> tuple[Admin, str]:
    permissions = ["tenant:suspend", "platform:audit"]
    admin = await new_admin(database, app_settings, permissions=permissions)
    return admin, await platform_sign_in(gql, admin)


@pytest.fixture
async def customer(database: Database, tokens: TokenService) -> Org:
    return await new_org(database, tokens, members=2, password=PASSWORD)


async def suspend(gql: GraphQL, token: str, org: Org, reason: Any = "unpaid invoices") -> Any:
    body = await gql.data(SUSPEND, {"input": {"id": tid(org), "reason": reason}}, token=token)
    return body["suspendTenant"]


async def test_a_suspended_tenant_is_refused_at_once_and_others_carry_on(
    gql: GraphQL,
    database: Database,
    operator: tuple[Admin, str],
    customer: Org,
    other_org: Org,
) -> None:
    member = customer.members[1]
    signed_in = await sign_in(gql, customer.slug, member.email, PASSWORD)
    assert "errors" not in await gql(VIEWER, token=customer.token)

    payload = await suspend(gql, operator[1], customer)

    assert payload == {"tenant": {"slug": customer.slug, "status": "SUSPENDED"}, "errors": []}
    for token in (customer.token, signed_in["accessToken"]):
        response = await gql.post(VIEWER, token=token)
        assert response.status_code == 403
        assert response.json()["errors"][0]["extensions"]["code"] == "TENANT_SUSPENDED"
    again = await sign_in(gql, customer.slug, member.email, PASSWORD)
    assert [e["code"] for e in again["errors"]] == ["TENANT_SUSPENDED"]
    refreshed = await refresh(gql, signed_in["refreshToken"])
    assert [e["code"] for e in refreshed["errors"]] == ["TENANT_SUSPENDED"]
    # Another tenant is untouched.
    assert (await gql.data(VIEWER, token=other_org.token))["viewer"] is not None
    async with database.transaction(customer.id, readonly=True) as session:
        live = await session.fetchval("SELECT count(*) FROM auth_sessions WHERE revoked_at IS NULL")
    assert live == 0


async def test_suspension_is_in_both_audit_logs_once(
    gql: GraphQL, database: Database, operator: tuple[Admin, str], customer: Org
) -> None:
    admin, token = operator
    await sign_in(gql, customer.slug, customer.members[0].email, PASSWORD)

    await suspend(gql, token, customer)
    unchanged = await suspend(gql, token, customer)

    assert unchanged["errors"] == []
    [entry] = await audit(database, customer.id, "tenant.suspended")
    assert (entry["actor_kind"], entry["actor_id"]) == ("platform", admin.id)
    # The sign-in's session, and the one each member's token belongs to (new_org).
    ended = 1 + len(customer.members)
    assert entry["metadata"] == {"reason": "unpaid invoices", "sessions_ended": ended}
    logged = (await gql.data(AUDIT, {"action": "tenant.suspended"}, token=token))[
        "platformAuditLog"
    ]["nodes"]
    mine = [e for e in logged if e["targetId"] == str(customer.id)]
    assert [(e["actorAdminId"], e["metadata"]["reason"]) for e in mine] == [
        (str(admin.id), "unpaid invoices")
    ]


async def test_reactivation_lets_users_sign_in_again(
    gql: GraphQL, database: Database, operator: tuple[Admin, str], customer: Org
) -> None:
    member = customer.members[0]
    before = await sign_in(gql, customer.slug, member.email, PASSWORD)
    await suspend(gql, operator[1], customer)

    body = await gql.data(
        REACTIVATE, {"input": {"id": tid(customer), "reason": "paid"}}, token=operator[1]
    )

    assert body["reactivateTenant"] == {
        "tenant": {"slug": customer.slug, "status": "ACTIVE"},
        "errors": [],
    }
    after = await sign_in(gql, customer.slug, member.email, PASSWORD)
    assert after["errors"] == []
    assert "errors" not in await gql(VIEWER, token=after["accessToken"])
    # Sessions the suspension ended stay ended.
    stale = await gql.post(VIEWER, token=before["accessToken"], headers=GRAPHQL_RESPONSE)
    assert stale.status_code == 401
    [entry] = await audit(database, customer.id, "tenant.reactivated")
    assert entry["metadata"] == {"reason": "paid"}


async def test_the_status_is_read_again_once_the_cached_one_ends(
    database: Database, customer: Org
) -> None:
    # A server that did not see the suspension (another process, a lost store entry) holds
    # the old status for at most STATUS_TTL_SECONDS, then reads the database.
    store = Store.from_url(None)
    assert (await tenants.tenant_access(database, store, customer.id)).active
    async with database.transaction(customer.id) as session:
        await session.execute("UPDATE tenants SET status = 'suspended'")
    # Still the cached status.
    assert (await tenants.tenant_access(database, store, customer.id)).active

    await tenants.forget_access(store, customer.id)  # as its 5-second TTL would

    assert not (await tenants.tenant_access(database, store, customer.id)).active


@pytest.mark.parametrize(
    ("variables", "code", "field"),
    [
        ({"reason": "  "}, "INVALID", "reason"),
        ({"reason": "r" * 501}, "INVALID", "reason"),
        ({"id": "not-an-id"}, "INVALID", "id"),
        ({"id": encode_global_id("Project", uuid4())}, "INVALID", "id"),
        ({"id": encode_global_id("Tenant", uuid4())}, "NOT_FOUND", "id"),
    ],
)
async def test_bad_input_is_a_clear_error_and_changes_nothing(
    gql: GraphQL,
    database: Database,
    operator: tuple[Admin, str],
    customer: Org,
    variables: dict[str, str],
    code: str,
    field: str,
) -> None:
    values = {"id": tid(customer), "reason": "why", **variables}

    body = await gql.data(SUSPEND, {"input": values}, token=operator[1])

    [error] = body["suspendTenant"]["errors"]
    assert (error["code"], error["field"]) == (code, field)
    assert body["suspendTenant"]["tenant"] is None
    assert "errors" not in await gql(VIEWER, token=customer.token)
    assert await audit(database, customer.id, "tenant.") == []


async def test_only_holders_of_tenant_suspend(
    gql: GraphQL, database: Database, app_settings: Settings, customer: Org
) -> None:
    creator = await new_admin(database, app_settings, permissions=["tenant:create"])
    token = await platform_sign_in(gql, creator)
    variables = {"input": {"id": tid(customer), "reason": "x"}}

    assert codes(await gql(SUSPEND, variables, token=token)) == ["FORBIDDEN"]
    assert codes(await gql(SUSPEND, variables)) == ["UNAUTHENTICATED"]
    assert codes(await gql(REACTIVATE, variables, token=customer.token)) == ["FORBIDDEN"]
    assert "errors" not in await gql(VIEWER, token=customer.token)
