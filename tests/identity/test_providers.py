"""Managing identity providers: owners and admins only, validated, audited, per tenant."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app.core.db import Database
from tests.app_fixtures import GraphQL, Org
from tests.identity.support import (
    ADD_PROVIDER,
    AUDIENCE,
    FakeIdp,
    add_provider,
    audit,
    set_role,
)

PROVIDERS = "{ identityProviders { id name issuer createUsers defaultRole enabled } }"
UPDATE = """
mutation ($input: UpdateIdentityProviderInput!) {
  updateIdentityProvider(input: $input) {
    identityProvider { id name audience createUsers defaultRole enabled }
    errors { code message field }
  }
}
"""
REMOVE = """
mutation ($id: ID!) { removeIdentityProvider(id: $id) { deletedId errors { code field } } }
"""


@pytest.fixture
def idp() -> Iterator[FakeIdp]:
    provider = FakeIdp()
    try:
        yield provider
    finally:
        provider.close()


def _input(idp: FakeIdp, **changes: Any) -> dict[str, Any]:
    given = {"name": "SSO", "issuer": idp.issuer, "audience": AUDIENCE, "jwksUrl": idp.jwks_url}
    given.update(changes)
    return {"input": given}


async def test_admin_adds_lists_updates_and_removes_a_provider(
    gql: GraphQL, org: Org, database: Database, idp: FakeIdp
) -> None:
    # given
    admin = org.members[0]
    await set_role(database, org.id, admin.id, "admin")

    # when added
    added = await add_provider(gql, admin.token, idp, createUsers=True)

    # then defaults apply and the list shows it
    assert added["subjectClaim"] == "sub"
    assert (added["emailClaim"], added["nameClaim"]) == ("email", "name")
    assert (added["defaultRole"], added["enabled"]) == ("MEMBER", True)
    listed = (await gql.data(PROVIDERS, token=admin.token))["identityProviders"]
    assert listed == [
        {
            "id": added["id"],
            "name": "Corporate SSO",
            "issuer": idp.issuer,
            "createUsers": True,
            "defaultRole": "MEMBER",
            "enabled": True,
        }
    ]

    # when updated (omitted fields kept)
    changes = {"id": added["id"], "name": "Renamed", "enabled": False, "defaultRole": "VIEWER"}
    updated = (await gql.data(UPDATE, {"input": changes}, token=admin.token))[
        "updateIdentityProvider"
    ]

    # then
    assert updated["errors"] == []
    assert updated["identityProvider"] == {
        "id": added["id"],
        "name": "Renamed",
        "audience": AUDIENCE,
        "createUsers": True,
        "defaultRole": "VIEWER",
        "enabled": False,
    }

    # when removed
    removed = (await gql.data(REMOVE, {"id": added["id"]}, token=admin.token))[
        "removeIdentityProvider"
    ]

    # then
    assert removed == {"deletedId": added["id"], "errors": []}
    assert (await gql.data(PROVIDERS, token=admin.token))["identityProviders"] == []
    actions = [
        (a, e["outcome"], e["actor_id"])
        for a in (
            "identity_provider.added",
            "identity_provider.updated",
            "identity_provider.removed",
        )
        for e in await audit(database, org.id, a)
    ]
    assert actions == [
        ("identity_provider.added", "success", admin.id),
        ("identity_provider.updated", "success", admin.id),
        ("identity_provider.removed", "success", admin.id),
    ]
    [update_entry] = await audit(database, org.id, "identity_provider.updated")
    assert update_entry["metadata"]["changed"] == ["default_role", "enabled", "name"]


@pytest.mark.parametrize("role", ["member", "viewer"])
async def test_non_admins_are_forbidden_and_change_nothing(
    gql: GraphQL, org: Org, database: Database, idp: FakeIdp, role: str
) -> None:
    # given an existing provider and a user who is not an owner or admin
    owner, other = org.members
    await set_role(database, org.id, owner.id, "owner")
    await set_role(database, org.id, other.id, role)
    existing = await add_provider(gql, owner.token, idp)

    # when
    added = await gql(ADD_PROVIDER, _input(idp, issuer="https://x.example"), token=other.token)
    updated = await gql(
        UPDATE, {"input": {"id": existing["id"], "name": "Mine"}}, token=other.token
    )
    removed = await gql(REMOVE, {"id": existing["id"]}, token=other.token)
    listed = await gql(PROVIDERS, token=other.token)

    # then each is refused by its @requiresPermission before the resolver runs
    for body in (added, updated, removed, listed):
        assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
    # a refused mutation fails the operation; a refused query field is null on its own
    assert [b["data"] for b in (added, updated, removed)] == [None] * 3
    assert listed["data"] == {"identityProviders": None}
    providers = (await gql.data(PROVIDERS, token=owner.token))["identityProviders"]
    assert [(p["id"], p["name"]) for p in providers] == [(existing["id"], "Corporate SSO")]


async def test_anonymous_cannot_list_providers(gql: GraphQL) -> None:
    body = await gql(PROVIDERS)

    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"jwksUrl": "ftp://keys.example/jwks"}, "jwksUrl"),
        ({"jwksUrl": "not a url"}, "jwksUrl"),
        ({"jwksUrl": "http://user:pw@127.0.0.1/jwks"}, "jwksUrl"),
        ({"issuer": " "}, "issuer"),
        ({"issuer": "https://a.example/ b"}, "issuer"),
        ({"name": ""}, "name"),
        ({"subjectClaim": "sub; drop"}, "subjectClaim"),
        ({"audience": "x" * 2001}, "audience"),
    ],
)
async def test_invalid_settings_are_rejected(
    gql: GraphQL, org: Org, database: Database, idp: FakeIdp, changes: dict[str, Any], field: str
) -> None:
    await set_role(database, org.id, org.members[0].id, "owner")

    data = await gql.data(ADD_PROVIDER, _input(idp, **changes), token=org.token)

    [error] = data["addIdentityProvider"]["errors"]
    assert (error["code"], error["field"]) == ("INVALID", field)
    assert (await gql.data(PROVIDERS, token=org.token))["identityProviders"] == []


async def test_same_issuer_twice_is_a_conflict_but_another_tenant_may_trust_it(
    gql: GraphQL, org: Org, other_org: Org, database: Database, idp: FakeIdp
) -> None:
    # given
    await set_role(database, org.id, org.members[0].id, "owner")
    await set_role(database, other_org.id, other_org.members[0].id, "admin")
    await add_provider(gql, org.token, idp)

    # when
    again = await gql.data(ADD_PROVIDER, _input(idp), token=org.token)
    elsewhere = await gql.data(ADD_PROVIDER, _input(idp), token=other_org.token)

    # then
    [error] = again["addIdentityProvider"]["errors"]
    assert (error["code"], error["field"]) == ("CONFLICT", "issuer")
    assert elsewhere["addIdentityProvider"]["errors"] == []


async def test_another_tenants_provider_is_not_found(
    gql: GraphQL, org: Org, other_org: Org, database: Database, idp: FakeIdp
) -> None:
    # given B's provider and an admin of A
    await set_role(database, org.id, org.members[0].id, "owner")
    await set_role(database, other_org.id, other_org.members[0].id, "owner")
    theirs = await add_provider(gql, other_org.token, idp)

    # when A tries to change, remove or list it
    updated = await gql.data(
        UPDATE, {"input": {"id": theirs["id"], "enabled": False}}, token=org.token
    )
    removed = await gql.data(REMOVE, {"id": theirs["id"]}, token=org.token)
    listed = await gql.data(PROVIDERS, token=org.token)
    node = await gql.data(
        "query ($id: ID!) { node(id: $id) { id } }", {"id": theirs["id"]}, token=org.token
    )

    # then
    assert updated["updateIdentityProvider"]["errors"][0]["code"] == "NOT_FOUND"
    assert removed["removeIdentityProvider"]["errors"][0]["code"] == "NOT_FOUND"
    assert listed["identityProviders"] == []
    # nor through node(id:), which reads another tenant's provider as absent
    assert node["node"] is None
    mine = (await gql.data(PROVIDERS, token=other_org.token))["identityProviders"]
    assert [(p["id"], p["enabled"]) for p in mine] == [(theirs["id"], True)]
