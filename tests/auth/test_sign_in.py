"""signIn beyond the basics: equal work for every failure, rehash, suspended tenants."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from app.core.db import Database
from app.core.passwords import argon2_computations, needs_rehash
from app.core.security import TokenService
from tests.app_fixtures import PASSWORD, GraphQL, Org, new_org
from tests.auth.helpers import refresh, sign_in


@pytest.fixture
async def team(database: Database, tokens: TokenService) -> Org:
    return await new_org(database, tokens, members=1, password=PASSWORD)


async def _argon2_runs(gql: GraphQL, tenant: str, email: str, password: str) -> int:
    before = argon2_computations.value
    await sign_in(gql, tenant, email, password)
    return argon2_computations.value - before


async def test_every_kind_of_failure_costs_one_argon2_run_like_a_success(
    gql: GraphQL, team: Org
) -> None:
    member = team.members[0]
    runs = {
        "success": await _argon2_runs(gql, team.slug, member.email, PASSWORD),
        "wrong password": await _argon2_runs(gql, team.slug, member.email, "wrong password"),
        "unknown email": await _argon2_runs(gql, team.slug, "nobody@x.example", PASSWORD),
        "unknown tenant": await _argon2_runs(gql, "no-such-org", member.email, PASSWORD),
    }

    assert runs == dict.fromkeys(runs, 1)


async def test_a_hash_with_old_parameters_is_replaced_at_sign_in(
    gql: GraphQL, team: Org, database: Database
) -> None:
    member = team.members[0]
    old = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    async with database.transaction(team.id) as s:
        await s.execute("UPDATE users SET password_hash = $2 WHERE id = $1", member.id, old)

    result = await sign_in(gql, team.slug, member.email, PASSWORD)

    assert result["errors"] == []
    async with database.transaction(team.id, readonly=True) as s:
        stored = await s.fetchval("SELECT password_hash FROM users WHERE id = $1", member.id)
    assert stored != old
    assert not needs_rehash(stored)
    # The new hash still verifies the same password.
    assert (await sign_in(gql, team.slug, member.email, PASSWORD))["errors"] == []


async def test_a_suspended_tenant_can_neither_sign_in_nor_refresh(
    gql: GraphQL, team: Org, database: Database
) -> None:
    member = team.members[0]
    signed_in = await sign_in(gql, team.slug, member.email, PASSWORD)
    async with database.transaction(team.id) as s:
        await s.execute("UPDATE tenants SET status = 'suspended'")

    again = await sign_in(gql, team.slug, member.email, PASSWORD)
    wrong = await sign_in(gql, team.slug, member.email, "not the password")
    refreshed = await refresh(gql, signed_in["refreshToken"])

    # Only the holder of the right credentials (or of a genuine refresh token) learns why.
    assert [e["code"] for e in again["errors"]] == ["TENANT_SUSPENDED"]
    assert again["accessToken"] is None
    assert [e["code"] for e in wrong["errors"]] == ["INVALID_CREDENTIALS"]
    assert [e["code"] for e in refreshed["errors"]] == ["TENANT_SUSPENDED"]
    assert refreshed["accessToken"] is None
