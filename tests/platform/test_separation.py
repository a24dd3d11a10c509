"""A tenant user's token can never act as a platform principal, and the reverse.

Kept apart at every layer, each tested here: the tokens (typ, audience, tenant claim), the
field rules (every root field of the schema, walked, never listed by hand), and the
database (platform tables read as empty outside the platform scope; a platform session
binds no tenant).
"""

from __future__ import annotations

import time
from typing import Any
from uuid import uuid4

import asyncpg
import graphql
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.db import Database
from app.core.errors import Unauthenticated
from app.core.security import (
    ACCESS_TOKEN_TYPE,
    PLATFORM_ACCESS_TOKEN_TYPE,
    AccessClaims,
    PlatformClaims,
    TokenService,
)
from app.core.settings import Settings
from app.schema import sdl
from tests.app_fixtures import GRAPHQL_RESPONSE, GraphQL, Org, new_org
from tests.factories import fingerprint, platform_fingerprint, tenant_tables
from tests.isolation.test_catalog import PLATFORM_READABLE
from tests.platform.support import new_admin, sign_in
from tests.properties import examples

TENANT_RULES = {"requiresPermission", "signedIn"}
PLATFORM_RULES = {"requiresPlatformPermission", "platformSignedIn"}
SCHEMA = graphql.build_schema(sdl())
PROVISION = """
mutation ($input: CreateTenantInput!) { createTenant(input: $input) { errors { code } } }
"""


# --- documents for every root field, built from the schema --------------------------------


def _value(type_: graphql.GraphQLInputType) -> Any:
    """A well-typed value: the rule must refuse the call, not argument validation."""
    if isinstance(type_, graphql.GraphQLNonNull):
        return _value(type_.of_type)
    if isinstance(type_, graphql.GraphQLList):
        return []
    if isinstance(type_, graphql.GraphQLEnumType):
        return next(iter(type_.values))
    if isinstance(type_, graphql.GraphQLInputObjectType):
        return {
            name: _value(field.type)
            for name, field in type_.fields.items()
            if graphql.is_required_input_field(field)
        }
    assert isinstance(type_, graphql.GraphQLScalarType)
    return {
        "String": "x",
        "ID": "eA",
        "Int": 1,
        "Float": 1.0,
        "Boolean": True,
        "DateTime": "2026-01-01T00:00:00+00:00",
        "Date": "2026-01-01",
        "JSON": {},
    }[type_.name]


def document(root: str, name: str) -> tuple[str, dict[str, Any]]:
    """A document calling one root field with every required argument as a variable."""
    type_ = SCHEMA.query_type if root == "Query" else SCHEMA.mutation_type
    assert type_ is not None
    field = type_.fields[name]
    required = {a: arg for a, arg in field.args.items() if graphql.is_required_argument(arg)}
    declared = ", ".join(f"${a}: {arg.type}" for a, arg in required.items())
    passed = ", ".join(f"{a}: ${a}" for a in required)
    leaf = graphql.is_leaf_type(graphql.get_named_type(field.type))
    selection = "" if leaf else " { __typename }"
    operation = "query" if root == "Query" else "mutation"
    text = (
        f"{operation}{f' ({declared})' if declared else ''}"
        f" {{ {name}{f'({passed})' if passed else ''}{selection} }}"
    )
    return text, {a: _value(arg.type) for a, arg in required.items()}


def fields_with(rules: set[str]) -> list[tuple[str, str]]:
    found = []
    for root in ("Query", "Mutation"):
        type_ = SCHEMA.query_type if root == "Query" else SCHEMA.mutation_type
        assert type_ is not None
        for name, field in type_.fields.items():
            assert field.ast_node is not None
            if {d.name.value for d in field.ast_node.directives} & rules:
                found.append((root, name))
    return found


TENANT_FIELDS = fields_with(TENANT_RULES)
PLATFORM_FIELDS = fields_with(PLATFORM_RULES)


def test_both_kinds_of_fields_are_found() -> None:
    assert len(TENANT_FIELDS) >= 40
    assert {n for _, n in PLATFORM_FIELDS} >= {
        "platformViewer",
        "platformAuditLog",
        "platformSignOut",
    }


def refused(body: dict[str, Any], name: str, code: str) -> None:
    assert body.get("data") in (None, {name: None}), body
    assert [e["extensions"]["code"] for e in body["errors"]] == [code], body


# --- the fields ----------------------------------------------------------------------------


@pytest.fixture
async def owner(database: Database, tokens: TokenService) -> Org:
    """A tenant owner: every tenant permission there is."""
    return await new_org(database, tokens, role="owner")


async def test_a_platform_token_is_refused_by_every_tenant_field(
    gql: GraphQL, database: Database, app_settings: Settings, owner: Org
) -> None:
    admin = await new_admin(database, app_settings)
    token = await sign_in(gql, admin)
    tenant_before = await fingerprint(database, owner.id)
    platform_before = await platform_fingerprint(database)

    for root, name in TENANT_FIELDS:
        text, variables = document(root, name)
        body = await gql(text, variables, token=token)
        refused(body, name, "FORBIDDEN")

    assert await fingerprint(database, owner.id) == tenant_before
    assert await platform_fingerprint(database) == platform_before
    # viewer (@public) answers "no tenant user" rather than failing.
    assert await gql.data("{ viewer { id } }", token=token) == {"viewer": None}


async def test_a_tenant_token_is_refused_by_every_platform_field(
    gql: GraphQL, database: Database, owner: Org
) -> None:
    tenant_before = await fingerprint(database, owner.id)
    platform_before = await platform_fingerprint(database)

    for root, name in PLATFORM_FIELDS:
        text, variables = document(root, name)
        refused(await gql(text, variables, token=owner.token), name, "FORBIDDEN")
        refused(await gql(text, variables), name, "UNAUTHENTICATED")

    assert await fingerprint(database, owner.id) == tenant_before
    assert await platform_fingerprint(database) == platform_before


# --- the tokens ----------------------------------------------------------------------------


def _platform_claims() -> dict[str, Any]:
    return {"sub": str(uuid4()), "sid": str(uuid4()), "amr": ["pwd", "otp"], "auth_time": 1}


def forged(tokens: TokenService, typ: str, claims: dict[str, Any], audience: str) -> str:
    """A token signed with the server's own key, but of a mixed-up shape."""
    return tokens._sign(typ, claims, 300, audience=audience).token


def test_each_token_verifies_only_as_its_own_kind(tokens: TokenService) -> None:
    tenant = tokens.issue_access_token(
        user_id=uuid4(),
        tenant_id=uuid4(),
        session_id=uuid4(),
        aal=1,
        amr=("pwd",),
        auth_time=int(time.time()),
    ).token
    platform = tokens.issue_platform_token(
        admin_id=uuid4(), session_id=uuid4(), amr=("pwd", "otp"), auth_time=int(time.time())
    ).token

    assert isinstance(tokens.verify_bearer(tenant), AccessClaims)
    assert isinstance(tokens.verify_bearer(platform), PlatformClaims)
    with pytest.raises(Unauthenticated):
        tokens.verify_platform_token(tenant)
    with pytest.raises(Unauthenticated):
        tokens.verify_access_token(platform)


def test_mixed_up_tokens_are_refused(tokens: TokenService) -> None:
    tenant_claims = {
        **_platform_claims(),
        "tid": str(uuid4()),
        "aal": 2,
    }
    mixed = {
        "platform typ, API audience": forged(
            tokens, PLATFORM_ACCESS_TOKEN_TYPE, _platform_claims(), tokens.audience
        ),
        "platform typ naming a tenant": forged(
            tokens, PLATFORM_ACCESS_TOKEN_TYPE, tenant_claims, tokens.platform_audience
        ),
        "tenant typ, platform audience": forged(
            tokens, ACCESS_TOKEN_TYPE, tenant_claims, tokens.platform_audience
        ),
        "tenant typ without a tenant": forged(
            tokens, ACCESS_TOKEN_TYPE, {**_platform_claims(), "aal": 2}, tokens.audience
        ),
    }
    for token in mixed.values():
        with pytest.raises(Unauthenticated):
            tokens.verify_bearer(token)


def test_only_a_tenant_token_may_name_an_actor_and_only_in_its_one_shape(
    tokens: TokenService,
) -> None:
    act = {"sub": str(uuid4()), "sid": str(uuid4())}
    tenant_claims = {**_platform_claims(), "tid": str(uuid4()), "aal": 2}
    plain = forged(tokens, ACCESS_TOKEN_TYPE, tenant_claims, tokens.audience)
    acting = forged(tokens, ACCESS_TOKEN_TYPE, {**tenant_claims, "act": act}, tokens.audience)
    assert tokens.verify_access_token(plain).impersonator is None
    assert tokens.verify_access_token(acting).impersonator is not None
    refused = {
        "platform token naming an actor": forged(
            tokens,
            PLATFORM_ACCESS_TOKEN_TYPE,
            {**_platform_claims(), "act": act},
            tokens.platform_audience,
        ),
        "act with the platform audience": forged(
            tokens, ACCESS_TOKEN_TYPE, {**tenant_claims, "act": act}, tokens.platform_audience
        ),
        **{
            f"act {name}": forged(
                tokens, ACCESS_TOKEN_TYPE, {**tenant_claims, "act": value}, tokens.audience
            )
            for name, value in {
                "as a string": act["sub"],
                "without sid": {"sub": act["sub"]},
                "nested": {**act, "act": act},
                "with more": {**act, "iss": "elsewhere"},
                "not a uuid": {"sub": "admin", "sid": act["sid"]},
            }.items()
        },
    }
    for name, token in refused.items():
        with pytest.raises(Unauthenticated):
            tokens.verify_bearer(token)
        assert isinstance(tokens.verify_bearer(plain), AccessClaims), name


async def test_an_actor_that_is_not_a_live_impersonation_is_401(
    gql: GraphQL, database: Database, app_settings: Settings, tokens: TokenService, owner: Org
) -> None:
    admin = await new_admin(database, app_settings)
    platform_session = tokens.verify_platform_token(await sign_in(gql, admin)).session_id
    member = owner.members[0]
    tenant_before = await fingerprint(database, owner.id)

    def acting(admin_id: Any, session_id: Any) -> str:
        claims = {
            **_platform_claims(),
            "sub": str(member.id),
            "tid": str(owner.id),
            "aal": 2,
            "act": {"sub": str(admin_id), "sid": str(session_id)},
        }
        return forged(tokens, ACCESS_TOKEN_TYPE, claims, tokens.audience)

    # An unknown administrator; a real one in a live session, but no impersonation session
    # of theirs behind the token's `sid`.
    for token in (acting(uuid4(), uuid4()), acting(admin.id, platform_session)):
        response = await gql.post("{ viewer { id } }", token=token, headers=GRAPHQL_RESPONSE)
        assert response.status_code == 401
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    # The plain tenant token of the same user is unaffected.
    assert (await gql.data("{ viewer { id } }", token=owner.token))["viewer"] is not None
    assert await fingerprint(database, owner.id) == tenant_before


async def test_mixed_up_tokens_are_401_before_anything_runs(
    gql: GraphQL, tokens: TokenService
) -> None:
    token = forged(tokens, PLATFORM_ACCESS_TOKEN_TYPE, _platform_claims(), tokens.audience)

    response = await gql.post("{ platformViewer { id } }", token=token, headers=GRAPHQL_RESPONSE)

    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


# --- the database --------------------------------------------------------------------------


async def platform_tables(database: Database) -> list[str]:
    return list(await platform_fingerprint(database))


async def test_tenant_sessions_read_and_write_no_platform_row(
    gql: GraphQL, database: Database, app_settings: Settings, owner: Org
) -> None:
    # A row in every platform table, whatever ran before: an administrator signed in
    # (admin, session, audit entries) who provisioned a tenant with an idempotency key, in
    # its input and in the Idempotency-Key header.
    admin = await new_admin(database, app_settings, permissions=["tenant:create"])
    token = await sign_in(gql, admin)
    slug = f"sep-{uuid4().hex[:10]}"
    response = await gql.http.post(
        "/graphql",
        json={
            "query": PROVISION,
            "variables": {
                "input": {
                    "slug": slug,
                    "name": "Sep",
                    "idempotencyKey": slug,
                    "owner": {"email": f"o@{slug}.example"},
                }
            },
        },
        headers={"authorization": f"Bearer {token}", "idempotency-key": slug},
    )
    assert response.json()["data"]["createTenant"]["errors"] == []
    tables = await platform_tables(database)
    async with database.transaction(None, readonly=True, platform=True) as session:
        for table in tables:
            assert await session.fetchval(f"SELECT count(*) FROM {table}") > 0, table  # noqa: S608

    for tenant in (owner.id, None):
        async with database.transaction(tenant, readonly=True) as session:
            for table in tables:
                count = await session.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608
                assert count == 0, (tenant, table)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        async with database.transaction(owner.id) as session:
            await session.execute(
                "INSERT INTO platform_audit_log (actor_kind, action, outcome)"
                " VALUES ('system', 'forged.entry', 'success')"
            )


async def test_platform_sessions_read_no_tenant_row(database: Database, owner: Org) -> None:
    async with database.transaction(None, readonly=True, platform=True) as session:
        for table in await tenant_tables(session):
            count = await session.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608
            # The registry is the one exception (platform administrators list tenants).
            assert (count > 0) is (table in PLATFORM_READABLE), table


async def test_a_platform_session_bound_to_a_tenant_sees_only_that_tenant(
    database: Database, owner: Org, other_org: Org
) -> None:
    async with database.transaction(owner.id, readonly=True, platform=True) as session:
        ids = [r["id"] for r in await session.fetch("SELECT id FROM tenants")]
        users = await session.fetchval("SELECT count(DISTINCT tenant_id) FROM users")
    assert ids == [owner.id]
    assert users == 1


@settings(max_examples=examples(25))
@given(scope=st.text(max_size=20).filter(lambda s: s != "on" and "\x00" not in s))
async def test_any_other_scope_value_reads_no_platform_row(
    database: Database, app_settings: Settings, scope: str, examples_run: list[int]
) -> None:
    examples_run.append(1)
    tables = await platform_tables(database)
    async with database.transaction(None, readonly=True) as session:
        # Forged straight in SQL, as a bug or an injection might: only 'on' opens the scope.
        await session.execute("SELECT set_config('app.platform', $1, true)", scope)
        for table in tables:
            count = await session.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608
            assert count == 0, (scope, table)
