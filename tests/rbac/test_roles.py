"""Roles through the API: system roles, custom roles, assignment, the owner invariant, the
escalation guards, audit entries and immediate effect on the holder's next request."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.api.relay import encode_global_id
from app.core.db import Database
from app.core.security import TokenService
from app.core.validation import encodable
from app.rbac.permissions import SYSTEM_ROLES
from tests.accounts.support import audit
from tests.api.helpers import refused_input
from tests.app_fixtures import GraphQL, Member, Org, new_org
from tests.factories import set_role
from tests.properties import examples

ERRORS = "errors { code field message }"
ROLES = "{ roles { id key name system permissions userCount } }"
CREATE = f"""
mutation ($input: CreateRoleInput!) {{
  createRole(input: $input) {{ role {{ id key name description permissions }} {ERRORS} }}
}}"""
UPDATE = f"""
mutation ($input: UpdateRoleInput!) {{
  updateRole(input: $input) {{ role {{ id name description permissions }} {ERRORS} }}
}}"""
DELETE = f"mutation ($id: ID!) {{ deleteRole(id: $id) {{ deletedId {ERRORS} }} }}"
ASSIGN = f"""
mutation ($input: RoleAssignmentInput!) {{
  assignRole(input: $input) {{ user {{ roles {{ key name }} }} {ERRORS} }}
}}"""
UNASSIGN = f"""
mutation ($input: RoleAssignmentInput!) {{
  unassignRole(input: $input) {{ user {{ roles {{ key name }} }} {ERRORS} }}
}}"""
DISABLE = f"mutation ($id: ID!) {{ disableUser(id: $id) {{ user {{ status }} {ERRORS} }} }}"
ME = "{ viewer { roles { name } permissions } }"
AUDIT_LOG = "{ auditLog(first: 1) { totalCount } }"


def uid(member: Member) -> str:
    return encode_global_id("User", member.id)


async def roles_by_key(gql: GraphQL, token: str) -> dict[str | None, Any]:
    return {r["key"] or r["name"]: r for r in (await gql.data(ROLES, token=token))["roles"]}


async def create(gql: GraphQL, token: str, **input: Any) -> dict[str, Any]:
    input.setdefault("permissions", ["project:read"])
    payload: dict[str, Any] = (await gql.data(CREATE, {"input": input}, token=token))["createRole"]
    return payload


async def assign(gql: GraphQL, token: str, user: Member, role_id: str, doc: str = ASSIGN) -> Any:
    body = await gql.data(doc, {"input": {"userId": uid(user), "roleId": role_id}}, token=token)
    return next(iter(body.values()))


def codes(payload: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(e["code"], e["field"]) for e in payload["errors"]]


@pytest.fixture
async def team(database: Database, tokens: TokenService) -> Org:
    """Member 0 is the only owner, member 1 an admin, members 2 and 3 plain members."""
    org = await new_org(database, tokens, members=4, role="member")
    await set_role(database, org.id, org.members[0].id, "owner")
    await set_role(database, org.id, org.members[1].id, "admin")
    return org


async def test_every_tenant_has_the_four_system_roles_with_fixed_sets(
    gql: GraphQL, team: Org
) -> None:
    roles = (await gql.data(ROLES, token=team.token))["roles"]

    assert [(r["key"], r["system"]) for r in roles] == [
        ("owner", True),
        ("admin", True),
        ("member", True),
        ("viewer", True),
    ]
    for role in roles:
        assert role["permissions"] == sorted(SYSTEM_ROLES[role["key"]])
    assert [r["userCount"] for r in roles] == [1, 1, 2, 0]


async def test_system_roles_cannot_be_changed_or_deleted(
    gql: GraphQL, team: Org, database: Database
) -> None:
    owner_role = (await roles_by_key(gql, team.token))["owner"]

    renamed = await gql.data(
        UPDATE, {"input": {"id": owner_role["id"], "name": "Boss"}}, token=team.token
    )
    deleted = await gql.data(DELETE, {"id": owner_role["id"]}, token=team.token)

    assert codes(renamed["updateRole"]) == [("INVALID", "id")]
    assert codes(deleted["deleteRole"]) == [("INVALID", "id")]
    assert (await roles_by_key(gql, team.token))["owner"] == owner_role
    assert await audit(database, team.id, "role.") == []


async def test_a_custom_role_grants_its_permissions_from_the_next_request(
    gql: GraphQL, team: Org, database: Database
) -> None:
    # given a member without audit:read, and a custom role granting it
    owner, member = team.members[0], team.members[2]
    assert (await gql(AUDIT_LOG, token=member.token))["errors"][0]["extensions"][
        "code"
    ] == "FORBIDDEN"
    created = await create(
        gql, owner.token, name="Auditor", description="Reads the log", permissions=["audit:read"]
    )
    assert created["errors"] == []
    role = created["role"]
    assert (role["key"], role["name"], role["permissions"]) == (None, "Auditor", ["audit:read"])

    # when it is assigned, then the member's next request (same token) may read the log
    assigned = await assign(gql, owner.token, member, role["id"])
    assert assigned["errors"] == []
    assert sorted(r["name"] for r in assigned["user"]["roles"]) == ["Auditor", "Member"]
    assert (await gql(AUDIT_LOG, token=member.token)).get("errors") is None
    me = (await gql.data(ME, token=member.token))["viewer"]
    assert "audit:read" in me["permissions"]

    # when the role loses the permission, then the member's next request is refused again
    changed = await gql.data(
        UPDATE, {"input": {"id": role["id"], "permissions": ["project:read"]}}, token=owner.token
    )
    assert changed["updateRole"]["errors"] == []
    assert (await gql(AUDIT_LOG, token=member.token))["errors"][0]["extensions"][
        "code"
    ] == "FORBIDDEN"

    # and every change was audited once, with its actor
    entries = await audit(database, team.id, "role.")
    assert [(e["action"], e["actor_id"]) for e in entries] == [
        ("role.created", owner.id),
        ("role.assigned", owner.id),
        ("role.updated", owner.id),
    ]
    assert entries[2]["metadata"]["removed"] == ["audit:read"]
    assert entries[2]["metadata"]["added"] == ["project:read"]


async def test_unassigning_a_role_revokes_at_the_next_request(
    gql: GraphQL, team: Org, database: Database
) -> None:
    owner, admin = team.members[0], team.members[1]
    assert (await gql(AUDIT_LOG, token=admin.token)).get("errors") is None
    admin_role = (await roles_by_key(gql, owner.token))["admin"]

    removed = await assign(gql, owner.token, admin, admin_role["id"], UNASSIGN)

    assert removed == {"user": {"roles": []}, "errors": []}
    body = await gql(AUDIT_LOG, token=admin.token)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await gql.data(ME, token=admin.token))["viewer"] == {"roles": [], "permissions": []}
    [entry] = await audit(database, team.id, "role.unassigned")
    assert entry["metadata"]["role"] == "admin"


async def test_assigning_twice_or_removing_what_is_not_held_changes_and_logs_nothing(
    gql: GraphQL, team: Org, database: Database
) -> None:
    owner, member = team.members[0], team.members[2]
    roles = await roles_by_key(gql, owner.token)

    again = await assign(gql, owner.token, member, roles["member"]["id"])
    absent = await assign(gql, owner.token, member, roles["viewer"]["id"], UNASSIGN)

    assert (
        again == absent == {"user": {"roles": [{"key": "member", "name": "Member"}]}, "errors": []}
    )
    assert await audit(database, team.id, "role.") == []


async def test_a_role_is_deleted_only_when_nobody_holds_it(
    gql: GraphQL, team: Org, database: Database
) -> None:
    owner, member = team.members[0], team.members[2]
    role = (await create(gql, owner.token, name="Temp"))["role"]
    await assign(gql, owner.token, member, role["id"])

    refused = (await gql.data(DELETE, {"id": role["id"]}, token=owner.token))["deleteRole"]
    await assign(gql, owner.token, member, role["id"], UNASSIGN)
    deleted = (await gql.data(DELETE, {"id": role["id"]}, token=owner.token))["deleteRole"]

    assert codes(refused) == [("CONFLICT", "id")]
    assert "1 user" in refused["errors"][0]["message"]
    assert deleted == {"deletedId": role["id"], "errors": []}
    assert "Temp" not in await roles_by_key(gql, owner.token)
    actions = [e["action"] for e in await audit(database, team.id, "role.")]
    assert actions == ["role.created", "role.assigned", "role.unassigned", "role.deleted"]


@pytest.mark.parametrize(
    ("input", "expected"),
    [
        ({"name": ""}, ("INVALID", "name")),
        ({"name": "x" * 101}, ("INVALID", "name")),
        ({"name": "owner"}, ("CONFLICT", "name")),  # the system role is "Owner": any case
        ({"name": "Ok", "description": "d" * 1001}, ("INVALID", "description")),
        ({"name": "Ok", "permissions": ["project:fly"]}, ("INVALID", "permissions")),
        ({"name": "Ok", "permissions": ["PROJECT:READ"]}, ("INVALID", "permissions")),
    ],
)
async def test_bad_role_input_is_a_clear_error_and_creates_nothing(
    gql: GraphQL, team: Org, database: Database, input: dict[str, Any], expected: tuple[str, str]
) -> None:
    payload = await create(gql, team.token, **input)

    assert payload["role"] is None
    assert codes(payload) == [expected]
    assert len(await roles_by_key(gql, team.token)) == 4
    assert await audit(database, team.id, "role.") == []


# A new tenant per example: slow on purpose (the profile's own suppression is replaced here).
@settings(
    max_examples=examples(25),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(name=st.text(max_size=120))
async def test_any_role_name_is_created_as_given_or_refused_cleanly(
    gql: GraphQL, database: Database, tokens: TokenService, name: str
) -> None:
    org = await new_org(database, tokens, members=1, role="owner")

    if not encodable(name):
        body = await gql(CREATE, {"input": {"name": name, "permissions": []}}, token=org.token)
        assert refused_input(body) == "name"
        assert len(await roles_by_key(gql, org.token)) == 4
        return
    payload = await create(gql, org.token, name=name)

    if payload["errors"]:
        assert [e["code"] for e in payload["errors"]] in (["INVALID"], ["CONFLICT"])
        assert payload["errors"][0]["field"] == "name"
        assert len(await roles_by_key(gql, org.token)) == 4
    else:
        assert payload["role"]["name"] == name.strip()


async def test_role_managers_cannot_grant_what_they_do_not_hold(
    gql: GraphQL, team: Org, database: Database
) -> None:
    # given a member who may manage roles but holds no audit:read
    owner, manager, member = team.members[0], team.members[2], team.members[3]
    managing = (
        await create(
            gql, owner.token, name="Role manager", permissions=["role:manage", "user:read"]
        )
    )["role"]
    await assign(gql, owner.token, manager, managing["id"])
    roles = await roles_by_key(gql, owner.token)
    before = await audit(database, team.id, "role.")

    # when they try to create, widen or hand out anything beyond their own permissions
    wider = await create(gql, manager.token, name="Auditor", permissions=["audit:read"])
    widen = await gql.data(
        UPDATE,
        {"input": {"id": managing["id"], "permissions": ["role:manage", "audit:read"]}},
        token=manager.token,
    )
    to_admin = await assign(gql, manager.token, member, roles["admin"]["id"])
    to_self = await assign(gql, manager.token, manager, roles["owner"]["id"])

    # then each is FORBIDDEN and nothing changed
    assert codes(wider) == [("FORBIDDEN", None)]
    assert codes(widen["updateRole"]) == [("FORBIDDEN", None)]
    assert codes(to_admin) == [("FORBIDDEN", None)]
    assert [c for c, _ in codes(to_self)] == ["FORBIDDEN"]
    assert await audit(database, team.id, "role.") == before
    # while what they do hold they may grant
    own_level = await create(gql, manager.token, name="Reader", permissions=["user:read"])
    assert own_level["errors"] == []


async def test_only_owners_assign_or_remove_the_owner_role(
    gql: GraphQL, team: Org, database: Database
) -> None:
    owner, admin, member = team.members[0], team.members[1], team.members[2]
    owner_role = (await roles_by_key(gql, owner.token))["owner"]["id"]

    by_admin = await assign(gql, admin.token, member, owner_role)
    removed_by_admin = await assign(gql, admin.token, owner, owner_role, UNASSIGN)
    by_owner = await assign(gql, owner.token, member, owner_role)

    assert codes(by_admin) == [("FORBIDDEN", "roleId")]
    assert codes(removed_by_admin) == [("FORBIDDEN", "roleId")]
    assert by_owner["errors"] == []
    assert {"key": "owner", "name": "Owner"} in by_owner["user"]["roles"]


async def test_the_last_active_owner_keeps_the_role_and_cannot_be_disabled(
    gql: GraphQL, team: Org, database: Database
) -> None:
    owner, admin = team.members[0], team.members[1]
    owner_role = (await roles_by_key(gql, owner.token))["owner"]["id"]

    step_down = await assign(gql, owner.token, owner, owner_role, UNASSIGN)
    disabled = (await gql.data(DISABLE, {"id": uid(owner)}, token=admin.token))["disableUser"]

    assert codes(step_down) == [("CONFLICT", "userId")]
    # Only owners act on owners (tests/rbac/test_matrix.py), so an admin never gets as far as
    # the last-owner rule; owners disabling each other at once meet it (below).
    assert codes(disabled) == [("FORBIDDEN", "id")]
    assert (await gql.data(ME, token=owner.token))["viewer"]["roles"] == [{"name": "Owner"}]
    # with a second owner, the first may step down
    await assign(gql, owner.token, admin, owner_role)
    assert (await assign(gql, owner.token, owner, owner_role, UNASSIGN))["errors"] == []


async def test_two_owners_removing_each_other_at_once_leave_one_owner(
    gql: GraphQL, team: Org, database: Database
) -> None:
    first, second = team.members[0], team.members[1]
    owner_role = (await roles_by_key(gql, first.token))["owner"]["id"]
    await assign(gql, first.token, second, owner_role)

    bodies = await asyncio.gather(
        *(
            gql(UNASSIGN, {"input": {"userId": uid(user), "roleId": owner_role}}, token=by.token)
            for by, user in ((first, second), (second, first))
        )
    )

    # One wins. The other either read its permissions before the winner committed and then
    # finds the owner row locked and itself the last owner (CONFLICT in the payload), or read
    # them after, when it no longer is an owner (top-level FORBIDDEN): both are refusals.
    outcomes = sorted(
        b["errors"][0]["extensions"]["code"]
        if "errors" in b
        else (b["data"]["unassignRole"]["errors"] or [{"code": "OK"}])[0]["code"]
        for b in bodies
    )
    assert outcomes in (["CONFLICT", "OK"], ["FORBIDDEN", "OK"]), bodies
    async with database.transaction(team.id, readonly=True) as s:
        owners = await s.fetchval(
            "SELECT count(*) FROM user_roles ur JOIN roles r ON r.id = ur.role_id"
            " WHERE r.key = 'owner'"
        )
    assert owners == 1


async def test_two_owners_disabling_each_other_at_once_leave_one_active_owner(
    gql: GraphQL, team: Org, database: Database
) -> None:
    # given two owners
    first, second = team.members[0], team.members[1]
    owner_role = (await roles_by_key(gql, first.token))["owner"]["id"]
    await assign(gql, first.token, second, owner_role)

    # when each disables the other at once
    responses = await asyncio.gather(
        gql.post(DISABLE, {"id": uid(second)}, token=first.token),
        gql.post(DISABLE, {"id": uid(first)}, token=second.token),
    )

    # then one wins; the other finds itself the last active owner (CONFLICT), or, arriving
    # after the winner committed, is disabled already (its session revoked: 401; or its
    # permissions gone: FORBIDDEN)
    outcomes = sorted(_outcome(r) for r in responses)
    assert outcomes in (["CONFLICT", "OK"], ["FORBIDDEN", "OK"], ["OK", "UNAUTHENTICATED"])
    async with database.transaction(team.id, readonly=True) as s:
        active_owners = await s.fetchval(
            "SELECT count(*) FROM user_roles ur JOIN roles r ON r.id = ur.role_id"
            " JOIN users u ON u.id = ur.user_id WHERE r.key = 'owner' AND u.status = 'active'"
        )
    assert active_owners == 1


def _outcome(response: Any) -> str:
    body = response.json()
    if "errors" in body:
        return str(body["errors"][0]["extensions"]["code"])
    return str((body["data"]["disableUser"]["errors"] or [{"code": "OK"}])[0]["code"])


async def test_acting_on_a_user_needs_every_permission_of_their_roles(
    gql: GraphQL, team: Org, database: Database
) -> None:
    # given a user manager who can read projects and users, and nothing else
    owner, manager, member = team.members[0], team.members[2], team.members[3]
    managing = (
        await create(
            gql,
            owner.token,
            name="User manager",
            permissions=["user:manage", "user:read", "project:read"],
        )
    )["role"]
    await assign(gql, owner.token, manager, managing["id"])
    viewer = (await roles_by_key(gql, owner.token))["viewer"]["id"]
    await assign(gql, owner.token, manager, viewer)
    await assign(
        gql, owner.token, manager, (await roles_by_key(gql, owner.token))["member"]["id"], UNASSIGN
    )
    before = await audit(database, team.id, "user.")

    # when they disable a member (whose role grants comment:write, which they lack)
    refused = (await gql.data(DISABLE, {"id": uid(member)}, token=manager.token))["disableUser"]

    # then they are refused, naming the permission, and nothing changed
    assert codes(refused) == [("FORBIDDEN", "id")]
    assert refused["errors"][0]["message"] == (
        "The user's role Member grants comment:write, which you do not hold"
    )
    assert await audit(database, team.id, "user.") == before
    # once the member holds only the viewer role, whose permissions the manager holds, they may
    await assign(gql, owner.token, member, viewer)
    await assign(
        gql, owner.token, member, (await roles_by_key(gql, owner.token))["member"]["id"], UNASSIGN
    )
    allowed = (await gql.data(DISABLE, {"id": uid(member)}, token=manager.token))["disableUser"]
    assert allowed == {"user": {"status": "DISABLED"}, "errors": []}


async def test_another_tenants_roles_and_users_are_not_found_like_random_ids(
    gql: GraphQL, team: Org, other_org: Org, database: Database, tokens: TokenService
) -> None:
    await set_role(database, other_org.id, other_org.members[0].id, "owner")
    theirs = (await create(gql, other_org.token, name="Theirs"))["role"]
    owner, member = team.members[0], team.members[2]
    mine = (await roles_by_key(gql, owner.token))["viewer"]["id"]
    random_role = encode_global_id("Role", uuid4())

    foreign_role = await assign(gql, owner.token, member, theirs["id"])
    unknown_role = await assign(gql, owner.token, member, random_role)
    foreign_user = await assign(gql, owner.token, other_org.members[0], mine)
    renamed = await gql.data(
        UPDATE, {"input": {"id": theirs["id"], "name": "Mine"}}, token=owner.token
    )

    assert codes(foreign_role) == codes(unknown_role) == [("NOT_FOUND", "roleId")]
    assert foreign_role["errors"][0]["message"] == unknown_role["errors"][0]["message"]
    assert codes(foreign_user) == [("NOT_FOUND", "userId")]
    assert codes(renamed["updateRole"]) == [("NOT_FOUND", "id")]
    assert "Theirs" in await roles_by_key(gql, other_org.token)
    assert "Theirs" not in await roles_by_key(gql, owner.token)


async def test_only_role_managers_change_roles(gql: GraphQL, team: Org) -> None:
    member = team.members[2]
    some_role = (await roles_by_key(gql, member.token))["viewer"]["id"]

    for document, variables in [
        (CREATE, {"input": {"name": "X", "permissions": []}}),
        (UPDATE, {"input": {"id": some_role, "name": "X"}}),
        (DELETE, {"id": some_role}),
        (ASSIGN, {"input": {"userId": uid(member), "roleId": some_role}}),
    ]:
        body = await gql(document, variables, token=member.token)
        assert body["data"] is None
        assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
