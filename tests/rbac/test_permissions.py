"""The permission catalog, the system roles' sets, and what viewer tells a front end."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.db import Database
from app.core.security import TokenService
from app.platform.permissions import markdown as platform_markdown
from app.rbac.permissions import IMPLIES, SYSTEM_ROLES, Permission, effective, markdown
from tests.app_fixtures import GraphQL, new_org
from tests.factories import set_role

VIEWER = (
    "{ viewer { roles { key name system } permissions }"
    " users { nodes { email roles { key } permissions } } }"
)
DOC = Path(__file__).resolve().parents[2] / "docs" / "permissions.md"


def documented() -> str:
    return markdown() + "\n" + platform_markdown()


def test_docs_list_exactly_the_catalogs() -> None:
    assert DOC.read_text(encoding="utf-8") == documented(), (
        "docs/permissions.md is stale: python -c 'from tests.rbac.test_permissions import"
        ' documented; open("docs/permissions.md", "w").write(documented())\''
    )


def test_every_permission_is_described_and_named_resource_action() -> None:
    for permission in Permission:
        assert permission.description.endswith(".")
        resource, action, *scope = permission.value.split(":")
        assert resource
        assert action
        assert scope in ([], ["own"])


def test_broader_permissions_imply_their_narrower_variants() -> None:
    assert effective({Permission.TASK_WRITE}) == {Permission.TASK_WRITE, Permission.TASK_WRITE_OWN}
    assert effective({Permission.TASK_WRITE_OWN}) == {Permission.TASK_WRITE_OWN}
    for broad, narrow in IMPLIES.items():
        # A role holding the broad permission without the narrow one would confuse nobody
        # but the UI: every system role that has one has both.
        for granted in SYSTEM_ROLES.values():
            assert broad not in granted or narrow <= granted


@pytest.mark.parametrize("role", list(SYSTEM_ROLES))
async def test_viewer_reads_its_roles_and_permissions(
    gql: GraphQL, database: Database, tokens: TokenService, role: str
) -> None:
    org = await new_org(database, tokens, members=2, role="viewer")
    await set_role(database, org.id, org.members[0].id, role)

    data = await gql.data(VIEWER, token=org.token)

    [held] = data["viewer"]["roles"]
    assert (held["key"], held["system"]) == (role, True)
    assert data["viewer"]["permissions"] == sorted(effective(SYSTEM_ROLES[role]))
    # Other users' roles and permissions are only for role managers (owner and admin).
    others = [u for u in data["users"]["nodes"] if u["email"] != org.members[0].email]
    assert others
    if Permission.ROLE_MANAGE in SYSTEM_ROLES[role]:
        assert all(u["roles"] == [{"key": "viewer"}] for u in others)
        assert all(u["permissions"] == sorted(SYSTEM_ROLES["viewer"]) for u in others)
    else:
        assert all(u["roles"] is None and u["permissions"] is None for u in others)


async def test_a_disabled_user_holds_no_permission(
    gql: GraphQL, database: Database, tokens: TokenService
) -> None:
    org = await new_org(database, tokens, members=1, role="owner")
    async with database.transaction(org.id) as s:
        await s.execute("UPDATE users SET status = 'disabled'")

    # The token still verifies here (no session was revoked by this direct update), but a
    # disabled user's roles grant nothing.
    data = await gql.data("{ viewer { roles { key } permissions } }", token=org.token)

    assert data["viewer"] == {"roles": [{"key": "owner"}], "permissions": []}
    body = await gql("{ projects { totalCount } }", token=org.token)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
