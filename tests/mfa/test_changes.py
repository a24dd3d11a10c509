"""Disabling MFA and regenerating recovery codes: only with a fresh second factor."""

from __future__ import annotations

import pytest

from app.core.db import Database
from app.core.security import TokenService
from app.core.settings import Settings
from tests.app_fixtures import GRAPHQL_RESPONSE, PASSWORD, GraphQL, Org, new_org
from tests.mfa.helpers import (
    DISABLE,
    REGENERATE,
    SIGN_IN,
    STATUS,
    access_token,
    audit_actions,
    challenge,
    codes_of,
    enrol,
    verify,
)


async def _token(
    database: Database, tokens: TokenService, org: Org, *, aal: int, age_seconds: int = 0
) -> str:
    member = org.members[0]
    return await access_token(
        database, tokens, tenant_id=org.id, user_id=member.id, aal=aal, age_seconds=age_seconds
    )


@pytest.mark.parametrize("document", [DISABLE, REGENERATE])
@pytest.mark.parametrize(
    ("aal", "age"),
    [(1, 0), (2, 10_000)],
    ids=["password-only", "mfa-too-long-ago"],
)
async def test_changes_need_a_fresh_second_factor(
    gql: GraphQL,
    database: Database,
    tokens: TokenService,
    app_settings: Settings,
    document: str,
    aal: int,
    age: int,
) -> None:
    assert age == 0 or age > app_settings.auth.fresh_auth_seconds
    org = await new_org(database, tokens)
    enrolled = await enrol(gql, org.token)

    body = await gql.data(
        document, token=await _token(database, tokens, org, aal=aal, age_seconds=age)
    )

    payload = next(iter(body.values()))
    assert codes_of(payload) == ["FRESH_AUTH_REQUIRED"]
    status = (await gql.data(STATUS, token=enrolled.token))["mfaStatus"]
    assert status == {"totpEnabled": True, "totpPending": False, "recoveryCodesRemaining": 10}
    actions = await audit_actions(database, org.id, org.members[0].id)
    # Enrolling ended the enrolling session; the refused changes recorded nothing.
    assert actions == ["mfa.totp.enrolled:success", "session.revoked_all:success"]


async def test_disabling_removes_the_factor_and_restarts_every_session(
    gql: GraphQL, database: Database, tokens: TokenService
) -> None:
    org = await new_org(database, tokens, password=PASSWORD)
    member = org.members[0]
    recovery_codes = (await enrol(gql, org.token)).codes
    credentials = {"input": {"tenant": org.slug, "email": member.email, "password": PASSWORD}}

    async def mfa_session() -> str:
        held = (await gql.data(SIGN_IN, credentials))["signIn"]["challenge"]
        done = await verify(gql, held, recovery=recovery_codes.pop())
        token: str = done["accessToken"]
        return token

    this, other = await mfa_session(), await mfa_session()

    disabled = (await gql.data(DISABLE, token=this))["disableMfa"]

    assert disabled["disabled"] is True
    assert disabled["errors"] == []
    # Every earlier session ends, this one too; the caller continues with the new tokens.
    assert (await gql.post(STATUS, token=other, headers=GRAPHQL_RESPONSE)).status_code == 401
    assert (await gql.post(STATUS, token=this, headers=GRAPHQL_RESPONSE)).status_code == 401
    fresh = disabled["signIn"]["accessToken"]
    assert disabled["signIn"]["nextStep"] == "DONE"
    status = (await gql.data(STATUS, token=fresh))["mfaStatus"]
    assert status == {"totpEnabled": False, "totpPending": False, "recoveryCodesRemaining": 0}
    async with database.transaction(org.id, readonly=True) as session:
        assert await session.fetchval("SELECT count(*) FROM mfa_totp") == 0
        assert await session.fetchval("SELECT count(*) FROM mfa_recovery_codes") == 0
    actions = await audit_actions(database, org.id, member.id)
    assert actions.count("mfa.disabled:success") == 1
    assert actions[-2:] == ["mfa.disabled:success", "session.revoked_all:success"]
    async with database.transaction(org.id, readonly=True) as session:
        aal, amr = await session.fetchrow(
            "SELECT aal, amr FROM auth_sessions WHERE revoked_at IS NULL"
        )
    assert (aal, amr) == (1, ["pwd"])
    # The password alone signs in again; the remaining recovery codes are gone.
    again = (await gql.data(SIGN_IN, credentials))["signIn"]
    assert again["nextStep"] == "DONE"
    stale = await verify(
        gql, challenge(tokens, tenant_id=org.id, user_id=member.id), recovery=recovery_codes[0]
    )
    assert codes_of(stale) == ["INVALID_MFA_CODE"]


async def test_disabling_without_a_factor_is_not_found(
    gql: GraphQL, database: Database, tokens: TokenService
) -> None:
    org = await new_org(database, tokens)

    body = (await gql.data(DISABLE, token=await _token(database, tokens, org, aal=2)))["disableMfa"]

    assert body["disabled"] is False
    assert codes_of(body) == ["NOT_FOUND"]
    assert await audit_actions(database, org.id, org.members[0].id) == []


async def test_regenerating_replaces_every_recovery_code(
    gql: GraphQL, database: Database, tokens: TokenService
) -> None:
    org = await new_org(database, tokens)
    member = org.members[0]
    enrolled = await enrol(gql, org.token)
    old_codes = enrolled.codes
    used = await verify(
        gql, challenge(tokens, tenant_id=org.id, user_id=member.id), recovery=old_codes[0]
    )
    assert used["errors"] == []

    body = (await gql.data(REGENERATE, token=await _token(database, tokens, org, aal=2)))[
        "regenerateRecoveryCodes"
    ]

    assert body["errors"] == []
    new_codes = body["recoveryCodes"]
    assert len(set(new_codes)) == 10
    assert not set(new_codes) & set(old_codes)
    status = (await gql.data(STATUS, token=enrolled.token))["mfaStatus"]
    assert status["recoveryCodesRemaining"] == 10
    old = await verify(
        gql, challenge(tokens, tenant_id=org.id, user_id=member.id), recovery=old_codes[1]
    )
    new = await verify(
        gql, challenge(tokens, tenant_id=org.id, user_id=member.id), recovery=new_codes[1]
    )
    assert codes_of(old) == ["INVALID_MFA_CODE"]
    assert new["errors"] == []
    actions = await audit_actions(database, org.id, member.id)
    assert actions.count("mfa.recovery_codes.regenerated:success") == 1


async def test_regenerating_without_a_factor_is_not_found(
    gql: GraphQL, database: Database, tokens: TokenService
) -> None:
    org = await new_org(database, tokens)

    body = (await gql.data(REGENERATE, token=await _token(database, tokens, org, aal=2)))[
        "regenerateRecoveryCodes"
    ]

    assert codes_of(body) == ["NOT_FOUND"]
    assert body["recoveryCodes"] is None
