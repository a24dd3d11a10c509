"""TOTP enrolment through the API: the secret, its sealed storage, confirmation, sessions."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest

from app.core.db import Database
from app.core.security import MFA_CHALLENGE_TYPE, MFA_ENROLLMENT_TYPE, TokenService
from app.core.settings import Settings
from app.mfa import crypto
from app.mfa.service import code_checks
from tests.app_fixtures import GRAPHQL_RESPONSE, PASSWORD, GraphQL, new_org
from tests.auth.helpers import STORES, throttled_server
from tests.mfa.helpers import (
    CONFIRM,
    SIGN_IN,
    START,
    STATUS,
    audit_actions,
    challenge,
    codes_of,
    enrol,
    now_code,
)


async def test_enrolment_returns_a_uri_and_stores_the_secret_sealed(
    gql: GraphQL, database: Database, tokens: TokenService, app_settings: Settings
) -> None:
    org = await new_org(database, tokens)
    member = org.members[0]

    started = (await gql.data(START, token=member.token))["startTotpEnrollment"]

    assert started["errors"] == []
    secret = started["enrollment"]["secret"]
    uri = urlsplit(started["enrollment"]["otpauthUri"])
    assert pyotp.parse_uri(started["enrollment"]["otpauthUri"]).secret == secret
    assert parse_qs(uri.query)["issuer"] == ["Tenantry"]
    assert uri.path == "/Tenantry:" + member.email.replace("@", "%40")
    async with database.transaction(org.id, readonly=True) as session:
        row = await session.fetchrow(
            "SELECT secret_ciphertext, key_version, confirmed_at FROM mfa_totp WHERE user_id = $1",
            member.id,
        )
    assert row is not None
    assert row["confirmed_at"] is None
    assert secret.encode() not in row["secret_ciphertext"]
    keys = crypto.load_or_create_mfa_keys(app_settings.mfa_keys_path, create=False)
    sealed = crypto.SealedSecret(row["secret_ciphertext"], row["key_version"])
    assert crypto.open_totp_secret(keys, sealed, tenant_id=org.id, user_id=member.id) == secret
    # Copied to another user's row, or read as another tenant's, it does not decrypt.
    other_org = await new_org(database, tokens)
    for tenant_id, user_id in ((other_org.id, member.id), (org.id, other_org.members[0].id)):
        try:
            crypto.open_totp_secret(keys, sealed, tenant_id=tenant_id, user_id=user_id)
        except crypto.SecretDecryptionError:
            pass
        else:
            raise AssertionError("the secret opened with another tenant's or user's data")
    status = (await gql.data(STATUS, token=member.token))["mfaStatus"]
    assert status == {"totpEnabled": False, "totpPending": True, "recoveryCodesRemaining": 0}


async def test_confirming_with_a_valid_code_enables_mfa_and_returns_recovery_codes(
    gql: GraphQL, database: Database, tokens: TokenService
) -> None:
    org = await new_org(database, tokens)
    member = org.members[0]
    secret = (await gql.data(START, token=member.token))["startTotpEnrollment"]["enrollment"][
        "secret"
    ]

    wrong = now_code(secret, 5)
    rejected = (await gql.data(CONFIRM, {"code": wrong}, token=member.token))[
        "confirmTotpEnrollment"
    ]
    confirmed = (await gql.data(CONFIRM, {"code": now_code(secret)}, token=member.token))[
        "confirmTotpEnrollment"
    ]
    # A new AAL 2 session for the caller; the session that enrolled has ended.
    fresh = confirmed["signIn"]["accessToken"]
    again = (await gql.data(CONFIRM, {"code": now_code(secret)}, token=fresh))[
        "confirmTotpEnrollment"
    ]

    assert codes_of(rejected) == ["INVALID_MFA_CODE"]
    assert rejected["recoveryCodes"] is None
    assert confirmed["errors"] == []
    assert len(set(confirmed["recoveryCodes"])) == 10
    assert confirmed["signIn"]["nextStep"] == "DONE"
    assert (await gql.post(STATUS, token=member.token, headers=GRAPHQL_RESPONSE)).status_code == 401
    assert codes_of(again) == ["CONFLICT"]
    status = (await gql.data(STATUS, token=fresh))["mfaStatus"]
    assert status == {"totpEnabled": True, "totpPending": False, "recoveryCodesRemaining": 10}
    async with database.transaction(org.id, readonly=True) as session:
        stored = await session.fetch(
            "SELECT code_hash FROM mfa_recovery_codes WHERE user_id = $1", member.id
        )
    # Only salted digests are stored, never the codes.
    digests = {
        crypto.recovery_code_digest(c, tenant_id=org.id, user_id=member.id)
        for c in confirmed["recoveryCodes"]
    }
    assert {r["code_hash"] for r in stored} == digests
    assert await audit_actions(database, org.id, member.id) == [
        "mfa.verification.failed:failure",
        "mfa.totp.enrolled:success",
        "session.revoked_all:success",
    ]


async def test_a_confirmed_factor_cannot_be_replaced_by_a_new_enrolment(
    gql: GraphQL, database: Database, tokens: TokenService
) -> None:
    org = await new_org(database, tokens)
    enrolled = await enrol(gql, org.token)
    async with database.transaction(org.id, readonly=True) as session:
        before = await session.fetchrow("SELECT * FROM mfa_totp")

    restarted = (await gql.data(START, token=enrolled.token))["startTotpEnrollment"]

    assert codes_of(restarted) == ["CONFLICT"]
    assert restarted["enrollment"] is None
    async with database.transaction(org.id, readonly=True) as session:
        assert await session.fetchrow("SELECT * FROM mfa_totp") == before


async def test_confirming_without_starting_is_not_found(
    gql: GraphQL, database: Database, tokens: TokenService
) -> None:
    org = await new_org(database, tokens)

    body = (await gql.data(CONFIRM, {"code": "123456"}, token=org.token))["confirmTotpEnrollment"]

    assert codes_of(body) == ["NOT_FOUND"]


async def test_enrolment_signed_out_is_refused(gql: GraphQL) -> None:
    body = await gql(START)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_enrolling_ends_every_earlier_session_and_hands_out_a_new_one(
    gql: GraphQL, database: Database, tokens: TokenService, http: httpx.AsyncClient
) -> None:
    org = await new_org(database, tokens, password=PASSWORD)
    member = org.members[0]
    sign_in = {"input": {"tenant": org.slug, "email": member.email, "password": PASSWORD}}
    this = (await gql.data(SIGN_IN, sign_in))["signIn"]["accessToken"]
    other = (await gql.data(SIGN_IN, sign_in))["signIn"]["accessToken"]
    assert (await gql.post(STATUS, token=other)).status_code == 200

    secret = (await gql.data(START, token=this))["startTotpEnrollment"]["enrollment"]["secret"]
    confirmed = (await gql.data(CONFIRM, {"code": now_code(secret)}, token=this))[
        "confirmTotpEnrollment"
    ]

    # This session's tokens end too (a thief may hold a copy); the new ones are AAL 2.
    assert (await gql.post(STATUS, token=this, headers=GRAPHQL_RESPONSE)).status_code == 401
    assert (await gql.post(STATUS, token=other, headers=GRAPHQL_RESPONSE)).status_code == 401
    fresh = confirmed["signIn"]["accessToken"]
    assert (await gql.post(STATUS, token=fresh)).status_code == 200
    assert tokens.verify_access_token(fresh).aal == 2
    assert tokens.verify_access_token(fresh).amr == ("pwd", "otp")
    actions = await audit_actions(database, org.id, member.id)
    assert actions.count("mfa.totp.enrolled:success") == 1
    assert "session.revoked_all:success" in actions
    # From now on the password alone does not sign in.
    again = (await gql.data(SIGN_IN, sign_in))["signIn"]
    assert again["nextStep"] == "MFA_REQUIRED"
    assert again["accessToken"] is None
    assert again["challenge"]


async def test_an_enrolment_challenge_enrols_and_completes_the_sign_in(
    gql: GraphQL, database: Database, tokens: TokenService
) -> None:
    org = await new_org(database, tokens)
    member = org.members[0]
    held = challenge(tokens, tenant_id=org.id, user_id=member.id, typ=MFA_ENROLLMENT_TYPE)

    started = (await gql.data(START, {"challenge": held}))["startTotpEnrollment"]
    secret = started["enrollment"]["secret"]
    confirmed = (await gql.data(CONFIRM, {"code": now_code(secret), "challenge": held}))[
        "confirmTotpEnrollment"
    ]

    assert confirmed["errors"] == []
    assert len(confirmed["recoveryCodes"]) == 10
    signed_in = confirmed["signIn"]
    assert signed_in["nextStep"] == "DONE"
    assert signed_in["refreshToken"]
    claims = tokens.verify_access_token(signed_in["accessToken"])
    assert (claims.user_id, claims.tenant_id) == (member.id, org.id)
    assert claims.aal == 2
    assert claims.amr == ("pwd", "otp")
    status = (await gql.data(STATUS, token=signed_in["accessToken"]))["mfaStatus"]
    assert status["totpEnabled"] is True
    # The challenge has done its work: it cannot complete another sign-in.
    reused = (await gql.data(START, {"challenge": held}))["startTotpEnrollment"]
    assert codes_of(reused) == ["UNAUTHENTICATED"]


async def test_an_mfa_challenge_is_not_an_enrolment_challenge(
    gql: GraphQL, database: Database, tokens: TokenService
) -> None:
    org = await new_org(database, tokens)
    member = org.members[0]
    wrong_kind = challenge(tokens, tenant_id=org.id, user_id=member.id, typ=MFA_CHALLENGE_TYPE)

    started = (await gql.data(START, {"challenge": wrong_kind}))["startTotpEnrollment"]
    confirmed = (await gql.data(CONFIRM, {"code": "123456", "challenge": wrong_kind}))[
        "confirmTotpEnrollment"
    ]

    assert codes_of(started) == ["UNAUTHENTICATED"]
    assert codes_of(confirmed) == ["UNAUTHENTICATED"]
    status = (await gql.data(STATUS, token=org.token))["mfaStatus"]
    assert status["totpPending"] is False


async def test_in_a_tenant_requiring_mfa_sign_in_enrols_then_asks_for_codes(
    gql: GraphQL, database: Database, tokens: TokenService
) -> None:
    org = await new_org(database, tokens, password=PASSWORD)
    member = org.members[0]
    async with database.transaction(org.id) as session:
        await session.execute("UPDATE tenants SET mfa_required = true WHERE id = $1", org.id)
    credentials = {"input": {"tenant": org.slug, "email": member.email, "password": PASSWORD}}

    held = (await gql.data(SIGN_IN, credentials))["signIn"]
    assert held["nextStep"] == "MFA_ENROLLMENT_REQUIRED"
    started = (await gql.data(START, {"challenge": held["challenge"]}))["startTotpEnrollment"]
    secret = started["enrollment"]["secret"]
    confirmed = (
        await gql.data(CONFIRM, {"code": now_code(secret), "challenge": held["challenge"]})
    )["confirmTotpEnrollment"]
    next_time = (await gql.data(SIGN_IN, credentials))["signIn"]

    assert confirmed["errors"] == []
    assert confirmed["signIn"]["nextStep"] == "DONE"
    assert tokens.verify_access_token(confirmed["signIn"]["accessToken"]).aal == 2
    assert next_time["nextStep"] == "MFA_REQUIRED"
    assert next_time["accessToken"] is None


@pytest.mark.parametrize("store", STORES)
async def test_concurrent_confirmations_check_at_most_the_limit(
    store: str, database: Database, tokens: TokenService, app_settings: Settings
) -> None:
    # given a pending enrolment and 30 wrong confirmation codes sent at once
    org = await new_org(database, tokens)
    limit = app_settings.auth.throttle_per_account
    async with throttled_server(app_settings, database, store=store) as gql:
        started = (await gql.data(START, token=org.token))["startTotpEnrollment"]
        secret = started["enrollment"]["secret"]
        window = {now_code(secret, o) for o in (-2, -1, 0, 1, 2)}
        wrong = next(c for c in (f"{n:06d}" for n in range(1000)) if c not in window)
        before = code_checks.value
        results = await asyncio.gather(
            *(gql.data(CONFIRM, {"code": wrong}, token=org.token) for _ in range(30))
        )
        checked = code_checks.value - before

    assert checked == limit
    codes = sorted(c for r in results for c in codes_of(r["confirmTotpEnrollment"]))
    assert codes == ["INVALID_MFA_CODE"] * limit + ["TOO_MANY_ATTEMPTS"] * (30 - limit)
