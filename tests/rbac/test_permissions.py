"""The permission catalog, the system roles' sets, and what viewer tells a front end."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.db import Database
from app.core.security import TokenService
from app.rbac.permissions import SYSTEM_ROLES, Permission, markdown
from tests.app_fixtures import GraphQL, Org, new_org

VIEWER = "{ viewer { roles permissions } users { nodes { email roles permissions } } }"
DOC = Path(__file__).resolve().parents[2] / "docs" / "permissions.md"


def test_docs_list_exactly_the_catalog() -> None:
    assert DOC.read_text(encoding="utf-8") == markdown(), (
        "docs/permissions.md is stale: python -c 'from app.rbac.permissions import markdown;"
        ' open("docs/permissions.md", "w").write(markdown())\''
    )


def test_every_permission_is_described_and_named_resource_action() -> None:
    for permission in Permission:
        assert permission.description.endswith(".")
        resource, action, *scope = permission.value.split(":")
        assert resource
        assert action
        assert scope in ([], ["own"])


async def _as_role(database: Database, org: Org, role: str) -> None:
    async with database.transaction(org.id) as s:
        await s.execute("UPDATE users SET role = $2 WHERE id = $1", org.members[0].id, role)


@pytest.mark.parametrize("role", list(SYSTEM_ROLES))
async def test_viewer_reads_its_roles_and_permissions(
    gql: GraphQL, database: Database, tokens: TokenService, role: str
) -> None:
    org = await new_org(database, tokens, members=2)
    await _as_role(database, org, role)

    data = await gql.data(VIEWER, token=org.token)

    assert data["viewer"] == {
        "roles": [role],
        "permissions": sorted(p.value for p in SYSTEM_ROLES[role]),
    }
    # Other users' roles and permissions are not the caller's business.
    others = [u for u in data["users"]["nodes"] if u["email"] != org.members[0].email]
    assert others
    assert all(u["roles"] is None and u["permissions"] is None for u in others)


async def test_a_role_change_applies_to_the_next_request_with_the_same_token(
    gql: GraphQL, database: Database, tokens: TokenService
) -> None:
    org = await new_org(database, tokens, members=1)
    await _as_role(database, org, "admin")
    audit = "{ auditLog(first: 1) { totalCount } }"
    assert (await gql(audit, token=org.token)).get("errors") is None

    await _as_role(database, org, "viewer")

    body = await gql(audit, token=org.token)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await gql.data(VIEWER, token=org.token))["viewer"]["roles"] == ["viewer"]


async def test_a_disabled_user_holds_no_permission(
    gql: GraphQL, database: Database, tokens: TokenService
) -> None:
    org = await new_org(database, tokens, members=1)
    await _as_role(database, org, "owner")
    async with database.transaction(org.id) as s:
        await s.execute("UPDATE users SET status = 'disabled'")

    # The user's token still verifies (no session was revoked here), but the disabled user
    # has no role, so nothing is permitted.
    data = await gql.data("{ viewer { roles permissions } }", token=org.token)

    assert data["viewer"] == {"roles": [], "permissions": []}
