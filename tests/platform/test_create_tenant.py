"""createTenant: provisioning in one transaction, idempotent retries, clear errors for bad
input, only for holders of tenant:create, and nothing half-created when any step fails."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import Any

import pytest

from app.core.db import Database
from app.core.settings import Settings
from app.platform import lifecycle
from app.platform import queries as platform_queries
from app.rbac import service as rbac
from app.tenants import queries as tenant_queries
from app.tenants.service import lookup_slug
from tests.accounts.support import audit, outbox, sign_in, user_row
from tests.app_fixtures import GraphQL
from tests.factories import platform_fingerprint
from tests.platform.support import AUDIT, Admin, codes, new_admin
from tests.platform.support import sign_in as platform_sign_in

CREATE = """
mutation ($input: CreateTenantInput!) {
  createTenant(input: $input) {
    tenant { id slug name plan status }
    created
    errors { code message field }
  }
}"""
VIEWER = "{ viewer { email roles { key } } tenant { slug plan } }"


def tenant_input(**overrides: Any) -> dict[str, Any]:
    slug = f"new-{secrets.token_hex(5)}"
    values: dict[str, Any] = {
        "slug": slug,
        "name": "New Customer Ltd",
        "plan": "team",
        "owner": {"email": f"owner@{slug}.example", "password": "owner pass phrase"},
        "reason": "signed contract #42",
    }
    values.update(overrides)
    return values


@pytest.fixture
async def creator(gql: GraphQL, database: Database, app_settings: Settings) -> tuple[Admin, str]:
    admin = await new_admin(database, app_settings, permissions=["tenant:create", "platform:audit"])
    return admin, await platform_sign_in(gql, admin)


async def test_a_tenant_with_an_owner_who_signs_in(
    gql: GraphQL, database: Database, creator: tuple[Admin, str]
) -> None:
    admin, token = creator
    values = tenant_input()

    payload = (await gql.data(CREATE, {"input": values}, token=token))["createTenant"]

    assert payload["errors"] == []
    assert payload["created"] is True
    tenant = payload["tenant"]
    assert {k: tenant[k] for k in ("slug", "name", "plan", "status")} == {
        "slug": values["slug"],
        "name": "New Customer Ltd",
        "plan": "team",
        "status": "ACTIVE",
    }
    owner = values["owner"]
    signed_in = await sign_in(gql, values["slug"], owner["email"], owner["password"])
    me = await gql.data(VIEWER, token=signed_in["accessToken"])
    assert me == {
        "viewer": {"email": owner["email"], "roles": [{"key": "owner"}]},
        "tenant": {"slug": values["slug"], "plan": "team"},
    }
    ref = await lookup_slug(database, values["slug"])
    assert ref is not None
    # One entry in the tenant's log and one in the platform's, both naming the admin.
    [entry] = await audit(database, ref.id, "tenant.created")
    assert (entry["actor_kind"], entry["actor_id"]) == ("platform", admin.id)
    assert entry["metadata"]["reason"] == "signed contract #42"
    logged = (await gql.data(AUDIT, {"action": "tenant.created"}, token=token))["platformAuditLog"][
        "nodes"
    ]
    assert [e["actorAdminId"] for e in logged if e["targetId"] == str(ref.id)] == [str(admin.id)]


async def test_without_a_password_the_owner_is_invited(
    gql: GraphQL, database: Database, creator: tuple[Admin, str]
) -> None:
    values = tenant_input(owner={"email": "boss@invited.example", "displayName": "The Boss"})

    payload = (await gql.data(CREATE, {"input": values}, token=creator[1]))["createTenant"]

    assert payload["errors"] == []
    ref = await lookup_slug(database, values["slug"])
    assert ref is not None
    owner = await user_row(database, ref.id, "boss@invited.example")
    assert owner is not None
    assert (owner["status"], owner["display_name"], owner["password_hash"]) == (
        "invited",
        "The Boss",
        None,
    )
    [mail] = await outbox(database, ref.id)
    assert mail["recipient"] == "boss@invited.example"
    assert "accept-invitation" in mail["body"]


async def test_a_retry_with_the_same_key_returns_the_same_tenant(
    gql: GraphQL, database: Database, creator: tuple[Admin, str]
) -> None:
    values = tenant_input(idempotencyKey=f"req-{secrets.token_hex(4)}")

    first = (await gql.data(CREATE, {"input": values}, token=creator[1]))["createTenant"]
    again = (await gql.data(CREATE, {"input": values}, token=creator[1]))["createTenant"]

    assert first["created"] is True
    assert again == {**first, "created": False}
    different = {**values, "name": "Someone Else"}
    body = (await gql.data(CREATE, {"input": different}, token=creator[1]))["createTenant"]
    assert body["errors"] == [
        {
            "code": "CONFLICT",
            "message": "This idempotency key was used for a different request",
            "field": "idempotencyKey",
        }
    ]


async def test_concurrent_retries_create_one_tenant(
    gql: GraphQL, creator: tuple[Admin, str]
) -> None:
    values = tenant_input(idempotencyKey="same-key-" + secrets.token_hex(4))

    bodies = await asyncio.gather(
        *(gql.data(CREATE, {"input": values}, token=creator[1]) for _ in range(4))
    )

    payloads = [b["createTenant"] for b in bodies]
    assert all(p["errors"] == [] for p in payloads), payloads
    assert len({p["tenant"]["id"] for p in payloads}) == 1
    assert sorted(p["created"] for p in payloads) == [False, False, False, True]


def _owner(**fields: Any) -> dict[str, Any]:
    return {"email": "o@x.example", "password": "owner pass phrase", **fields}


BAD_INPUT = [
    ({"slug": "Not A Slug"}, "INVALID", "slug"),
    ({"slug": "admin"}, "INVALID", "slug"),
    ({"slug": "-edge"}, "INVALID", "slug"),
    ({"name": "   "}, "INVALID", "name"),
    ({"name": "x" * 201}, "INVALID", "name"),
    ({"plan": "platinum"}, "INVALID", "plan"),
    ({"owner": _owner(email="nobody")}, "INVALID", "owner.email"),
    ({"owner": _owner(password="short")}, "INVALID", "owner.password"),
    ({"owner": _owner(displayName="")}, "INVALID", "owner.displayName"),
    ({"reason": "r" * 501}, "INVALID", "reason"),
    ({"idempotencyKey": ""}, "INVALID", "idempotencyKey"),
]


@pytest.mark.parametrize(("override", "code", "field"), BAD_INPUT)
async def test_bad_input_is_a_clear_error_and_creates_nothing(
    gql: GraphQL,
    database: Database,
    creator: tuple[Admin, str],
    override: dict[str, Any],
    code: str,
    field: str,
) -> None:
    values = tenant_input(**override)
    before = await platform_fingerprint(database)

    payload = (await gql.data(CREATE, {"input": values}, token=creator[1]))["createTenant"]

    assert payload["tenant"] is None
    assert payload["created"] is False
    [error] = payload["errors"]
    assert (error["code"], error["field"]) == (code, field), error
    assert await platform_fingerprint(database) == before
    assert await lookup_slug(database, values["slug"]) is None


async def test_a_taken_slug_is_a_conflict(gql: GraphQL, creator: tuple[Admin, str]) -> None:
    values = tenant_input()
    await gql.data(CREATE, {"input": values}, token=creator[1])

    again = tenant_input(slug=values["slug"].upper())
    payload = (await gql.data(CREATE, {"input": again}, token=creator[1]))["createTenant"]

    assert payload["errors"] == [
        {
            "code": "CONFLICT",
            "message": f"The slug {values['slug']!r} is already taken",
            "field": "slug",
        }
    ]


async def test_only_holders_of_tenant_create(
    gql: GraphQL, database: Database, app_settings: Settings
) -> None:
    reader = await new_admin(database, app_settings, permissions=["tenant:read"])
    token = await platform_sign_in(gql, reader)
    values = tenant_input()

    body = await gql(CREATE, {"input": values}, token=token)

    assert codes(body) == ["FORBIDDEN"]
    assert body["data"] is None
    assert codes(await gql(CREATE, {"input": values})) == ["UNAUTHENTICATED"]
    assert await lookup_slug(database, values["slug"]) is None


def _fail_on(call: int) -> Callable[..., Any]:
    calls = 0

    async def fail(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls >= call:
            raise RuntimeError("injected failure")
        return await original(*args, **kwargs)

    original: Any = None

    def wrap(real: Any) -> Any:
        nonlocal original
        original = real
        return fail

    return wrap


# Every step of provisioning, in order; (where, name, which call fails, owner invited?).
STEPS = [
    (tenant_queries, "insert", 1, False),
    (rbac, "provision", 1, False),
    (lifecycle, "record", 1, False),  # the tenant's audit log
    (lifecycle, "record", 2, False),  # the platform's audit log
    (platform_queries, "insert_provisioning", 1, False),
    (lifecycle, "create_user", 1, False),
    (lifecycle, "invite_owner", 1, True),
]


@pytest.mark.parametrize(
    ("where", "name", "call", "invited"),
    STEPS,
    ids=[f"{name}-{call}{'-invited' if invited else ''}" for _, name, call, invited in STEPS],
)
async def test_a_failure_at_any_step_leaves_nothing(
    gql: GraphQL,
    database: Database,
    creator: tuple[Admin, str],
    monkeypatch: pytest.MonkeyPatch,
    where: Any,
    name: str,
    call: int,
    invited: bool,
) -> None:
    owner = {"email": "o@fail.example"} if invited else _owner()
    values = tenant_input(owner=owner, idempotencyKey="k-" + secrets.token_hex(4))
    before = await platform_fingerprint(database)
    monkeypatch.setattr(where, name, _fail_on(call)(getattr(where, name)))

    body = await gql(CREATE, {"input": values}, token=creator[1])

    assert codes(body) == ["INTERNAL_SERVER_ERROR"]
    assert "injected" not in str(body)
    assert await lookup_slug(database, values["slug"]) is None
    assert await platform_fingerprint(database) == before
    # Every tenant table's rows reference their tenant: without the tenant row, none remain.
    monkeypatch.undo()
    retried = (await gql.data(CREATE, {"input": values}, token=creator[1]))["createTenant"]
    assert retried["created"] is True


async def test_requests_naming_the_new_slug_find_it_at_once(
    gql: GraphQL, creator: tuple[Admin, str]
) -> None:
    values = tenant_input()
    owner = values["owner"]

    async def viewer(token: str | None) -> int:
        headers = {"x-tenant": values["slug"]}
        if token:
            headers["authorization"] = f"Bearer {token}"
        response = await gql.http.post(
            "/graphql", json={"query": "{ viewer { id } }"}, headers=headers
        )
        return response.status_code

    # Before it exists the slug is unknown, and remembered so for a few seconds...
    assert await viewer(None) == 200
    await gql.data(CREATE, {"input": values}, token=creator[1])
    signed_in = await sign_in(gql, values["slug"], owner["email"], owner["password"])

    # ...but creating the tenant forgets that at once: the owner's token and the header agree.
    assert await viewer(signed_in["accessToken"]) == 200
