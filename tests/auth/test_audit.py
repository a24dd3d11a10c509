"""The audit log: one entry per security event, append-only for the server, admins read it."""

from __future__ import annotations

import asyncpg
import pytest

from app.core.db import Database
from app.core.security import TokenService
from tests.app_fixtures import PASSWORD, GraphQL, Org, new_org
from tests.auth.helpers import sign_in
from tests.factories import set_role

AUDIT_LOG = """
query Audit($action: String, $after: String) {
  auditLog(first: 2, action: $action, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes { id action outcome actorKind actorUserId targetType targetId ip userAgent requestId
            metadata occurredAt }
  }
}
"""


@pytest.fixture
async def team(database: Database, tokens: TokenService) -> Org:
    org = await new_org(database, tokens, members=2, password=PASSWORD, role="member")
    await set_role(database, org.id, org.members[0].id, "admin")
    return org


async def test_sign_in_success_and_failure_write_one_entry_each(
    gql: GraphQL, team: Org, database: Database
) -> None:
    admin = team.members[0]
    await sign_in(gql, team.slug, admin.email, "wrong password", {"user-agent": "probe/1"})
    await sign_in(gql, team.slug, admin.email, PASSWORD, {"x-request-id": "req-123"})

    data = await gql.data(AUDIT_LOG, {"action": "auth.sign_in"}, token=admin.token)

    entries = data["auditLog"]["nodes"]
    assert data["auditLog"]["totalCount"] == 2
    newest, oldest = entries
    assert (newest["outcome"], oldest["outcome"]) == ("SUCCESS", "FAILURE")
    assert newest["actorKind"] == "USER"
    assert newest["actorUserId"] == str(admin.id)
    assert newest["requestId"] == "req-123"
    assert newest["metadata"] == {"method": "password", "next_step": "DONE"}
    assert oldest["actorKind"] == "ANONYMOUS"
    assert oldest["userAgent"] == "probe/1"
    assert oldest["targetId"] == str(admin.id)
    assert oldest["ip"] == "127.0.0.1"


async def test_audit_log_pages_newest_first(gql: GraphQL, team: Org) -> None:
    admin = team.members[0]
    for _ in range(3):
        await sign_in(gql, team.slug, admin.email, PASSWORD)

    first = (await gql.data(AUDIT_LOG, token=admin.token))["auditLog"]
    after = first["pageInfo"]["endCursor"]
    second = (await gql.data(AUDIT_LOG, {"after": after}, token=admin.token))["auditLog"]

    times = [e["occurredAt"] for e in first["nodes"] + second["nodes"]]
    assert times == sorted(times, reverse=True)
    assert first["pageInfo"]["hasNextPage"] is True
    assert len({e["id"] for e in first["nodes"] + second["nodes"]}) == 3


async def test_only_tenant_admins_read_the_audit_log(gql: GraphQL, team: Org) -> None:
    member = team.members[1]

    body = await gql(AUDIT_LOG, token=member.token)

    assert body["data"] == {"auditLog": None}
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_audit_entries_are_nodes_only_for_audit_readers(gql: GraphQL, team: Org) -> None:
    admin, member = team.members
    await sign_in(gql, team.slug, admin.email, PASSWORD)
    entry = (await gql.data(AUDIT_LOG, token=admin.token))["auditLog"]["nodes"][0]
    node = "query N($id: ID!) { node(id: $id) { id } }"

    # `node(id:)` checks the type's read permission (audit:read) like `auditLog` does.
    as_admin = await gql.data(node, {"id": entry["id"]}, token=admin.token)
    as_member = await gql.data(node, {"id": entry["id"]}, token=member.token)

    assert as_admin["node"] == {"id": entry["id"]}
    assert as_member["node"] is None


async def test_other_tenants_entries_are_invisible(
    gql: GraphQL, team: Org, database: Database, tokens: TokenService
) -> None:
    other = await new_org(database, tokens, members=1, password=PASSWORD, role="member")
    await sign_in(gql, other.slug, other.members[0].email, PASSWORD)

    data = await gql.data(AUDIT_LOG, token=team.members[0].token)

    assert data["auditLog"]["totalCount"] == 0


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_log SET outcome = 'success'", "DELETE FROM audit_log", "TRUNCATE audit_log"],
)
async def test_the_server_role_cannot_rewrite_the_audit_log(
    gql: GraphQL, team: Org, database: Database, statement: str
) -> None:
    await sign_in(gql, team.slug, team.members[0].email, "wrong password")

    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with database.transaction(team.id) as s:
            await s.execute(statement)
    async with database.transaction(team.id, readonly=True) as s:
        assert await s.fetchval("SELECT count(*) FROM audit_log WHERE outcome = 'failure'") == 1
