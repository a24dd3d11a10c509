"""Nullability that lets partial data through (GraphQL's nullability guidance): a root field
that a signed-in caller can be refused is nullable, so a refusal nulls that field alone and
its siblings keep their data; what is never null once an operation succeeded says so.
"""

from __future__ import annotations

from graphql import GraphQLNonNull
from strawberry.types.field import StrawberryField

from app.api.permissions import RuleKind, rules_of
from app.core.db import Database
from app.core.security import TokenService
from app.schema import build_schema
from tests.app_fixtures import GraphQL, new_org

# Rules a signed-in caller of the right kind may still fail: a permission they lack.
REFUSABLE = {RuleKind.PERMISSION, RuleKind.PLATFORM_PERMISSION}

VIEWER_AND_AUDIT_LOG = """
{
  viewer { email }
  auditLog(first: 5) { totalCount edges { node { action } } }
}
"""


def test_root_queries_needing_a_permission_are_nullable() -> None:
    schema = build_schema()
    query = schema._schema.query_type
    assert query is not None
    non_null = []
    checked = []
    for name, field in query.fields.items():
        definition = (field.extensions or {}).get("strawberry-definition")
        assert isinstance(definition, StrawberryField), name
        if any(r.kind in REFUSABLE for r in rules_of(definition)):
            checked.append(name)
            if isinstance(field.type, GraphQLNonNull):
                non_null.append(name)
    assert non_null == []
    # The check saw the fields it is about (a rename cannot make it vacuous).
    assert {"auditLog", "users", "projects", "tasks", "roles", "tenants"} <= set(checked)


async def test_a_refused_root_field_keeps_its_siblings(
    gql: GraphQL, database: Database, tokens: TokenService
) -> None:
    # Given a member, who may not read the audit log
    org = await new_org(database, tokens, role="member")
    member = org.members[0]

    # When they ask for their own record and the audit log in one query
    body = await gql(VIEWER_AND_AUDIT_LOG, token=member.token)

    # Then the record is there, the audit log alone is null, with FORBIDDEN at its path
    assert body["data"] == {"viewer": {"email": member.email}, "auditLog": None}
    [error] = body["errors"]
    assert error["path"] == ["auditLog"]
    assert error["extensions"]["code"] == "FORBIDDEN"


async def test_an_allowed_root_field_beside_it_is_unchanged(
    gql: GraphQL, database: Database, tokens: TokenService
) -> None:
    # Given an owner, who may read the audit log
    org = await new_org(database, tokens, role="owner")

    # When they send the same query
    data = await gql.data(VIEWER_AND_AUDIT_LOG, token=org.token)

    # Then both fields are answered
    assert data["viewer"] == {"email": org.members[0].email}
    assert data["auditLog"]["totalCount"] >= 0
