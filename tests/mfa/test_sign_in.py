"""The second step of sign-in: TOTP codes once each, recovery codes once each, even when
submitted concurrently; failures audited and throttled."""

from __future__ import annotations

import asyncio
from uuid import UUID

import pytest

from app.core.db import Database
from app.core.security import MFA_ENROLLMENT_TYPE, TokenService
from app.core.settings import Settings
from app.mfa.service import code_checks
from tests.app_fixtures import PASSWORD, GraphQL, new_org
from tests.auth.helpers import STORES, throttled_server
from tests.mfa.helpers import (
    SIGN_IN,
    STATUS,
    audit_actions,
    challenge,
    codes_of,
    enrol,
    now_code,
    seed_totp,
    verify,
)


async def _seeded(
    database: Database, tokens: TokenService, settings: Settings
) -> tuple[UUID, UUID, str]:
    org = await new_org(database, tokens)
    member = org.members[0]
    secret = await seed_totp(database, settings, tenant_id=org.id, user_id=member.id)
    return org.id, member.id, secret


async def test_password_then_code_signs_in_at_aal2(
    gql: GraphQL, database: Database, tokens: TokenService
) -> None:
    org = await new_org(database, tokens, password=PASSWORD)
    member = org.members[0]
    secret = (await enrol(gql, org.token)).secret
    credentials = {"input": {"tenant": org.slug, "email": member.email, "password": PASSWORD}}
    held = (await gql.data(SIGN_IN, credentials))["signIn"]
    assert held["nextStep"] == "MFA_REQUIRED"

    # The enrolment used the current step; the app's next code is still in the window.
    done = await verify(gql, held["challenge"], code=now_code(secret, 1))

    assert done["errors"] == []
    assert done["nextStep"] == "DONE"
    assert done["refreshToken"]
    claims = tokens.verify_access_token(done["accessToken"])
    assert (claims.user_id, claims.tenant_id, claims.aal) == (member.id, org.id, 2)
    assert claims.amr == ("pwd", "otp")
    assert (await gql.data(STATUS, token=done["accessToken"]))["mfaStatus"]["totpEnabled"]


async def test_a_code_is_accepted_once(
    gql: GraphQL, database: Database, tokens: TokenService, app_settings: Settings
) -> None:
    tenant_id, user_id, secret = await _seeded(database, tokens, app_settings)
    code = now_code(secret)

    first = await verify(gql, challenge(tokens, tenant_id=tenant_id, user_id=user_id), code=code)
    replay = await verify(gql, challenge(tokens, tenant_id=tenant_id, user_id=user_id), code=code)
    # A code of an earlier step than the one used is a replay too.
    earlier = await verify(
        gql, challenge(tokens, tenant_id=tenant_id, user_id=user_id), code=now_code(secret, -1)
    )

    assert first["errors"] == []
    assert first["accessToken"]
    assert codes_of(replay) == ["INVALID_MFA_CODE"]
    assert replay["accessToken"] is None
    if now_code(secret, -1) != code:
        assert codes_of(earlier) == ["INVALID_MFA_CODE"]
    assert await audit_actions(database, tenant_id, user_id) == [
        "mfa.totp.verified:success",
        "mfa.verification.failed:failure",
        "mfa.verification.failed:failure",
    ]


async def test_a_completed_challenge_cannot_be_used_again(
    gql: GraphQL, database: Database, tokens: TokenService, app_settings: Settings
) -> None:
    tenant_id, user_id, secret = await _seeded(database, tokens, app_settings)
    held = challenge(tokens, tenant_id=tenant_id, user_id=user_id)
    first = await verify(gql, held, code=now_code(secret))
    assert first["errors"] == []

    again = await verify(gql, held, code=now_code(secret, 1))

    assert codes_of(again) == ["UNAUTHENTICATED"]


async def test_codes_outside_the_window_are_rejected(
    gql: GraphQL, database: Database, tokens: TokenService, app_settings: Settings
) -> None:
    tenant_id, user_id, secret = await _seeded(database, tokens, app_settings)
    # Three steps away: even if a step boundary passes during the request, still outside.
    window = {now_code(secret, offset) for offset in (-2, -1, 0, 1, 2)}
    far = [c for c in (now_code(secret, o) for o in (-6, -3, 3, 6)) if c not in window]
    assert far

    results = [
        await verify(gql, challenge(tokens, tenant_id=tenant_id, user_id=user_id), code=c)
        for c in far
    ]

    assert [codes_of(r) for r in results] == [["INVALID_MFA_CODE"]] * len(far)
    assert all(r["accessToken"] is None for r in results)
    async with database.transaction(tenant_id, readonly=True) as session:
        assert await session.fetchval("SELECT last_used_step FROM mfa_totp") is None


async def test_malformed_codes_and_wrong_input_shapes_are_rejected(
    gql: GraphQL, database: Database, tokens: TokenService, app_settings: Settings
) -> None:
    tenant_id, user_id, secret = await _seeded(database, tokens, app_settings)

    def held() -> str:
        return challenge(tokens, tenant_id=tenant_id, user_id=user_id)

    both = await verify(gql, held(), code=now_code(secret), recovery="aaaa-bbbb-cccc")
    neither = await verify(gql, held())
    garbage = await verify(gql, held(), code="12345x" * 100)
    bad_challenge = await verify(gql, "not-a-challenge", code=now_code(secret))
    enrolment = challenge(tokens, tenant_id=tenant_id, user_id=user_id, typ=MFA_ENROLLMENT_TYPE)
    wrong_kind = await verify(gql, enrolment, code=now_code(secret))

    assert codes_of(both) == ["INVALID"]
    assert codes_of(neither) == ["INVALID"]
    assert codes_of(garbage) == ["INVALID_MFA_CODE"]
    assert codes_of(bad_challenge) == ["UNAUTHENTICATED"]
    assert codes_of(wrong_kind) == ["UNAUTHENTICATED"]
    # Nothing was used up: the current code still signs in.
    ok = await verify(gql, held(), code=now_code(secret))
    assert ok["errors"] == []


async def test_concurrent_submissions_of_one_code_sign_in_once(
    gql: GraphQL, database: Database, tokens: TokenService, app_settings: Settings
) -> None:
    tenant_id, user_id, secret = await _seeded(database, tokens, app_settings)
    code = now_code(secret)

    results = await asyncio.gather(
        *(
            verify(gql, challenge(tokens, tenant_id=tenant_id, user_id=user_id), code=code)
            for _ in range(2)
        )
    )

    assert sorted(bool(r["accessToken"]) for r in results) == [False, True]
    assert sorted(codes_of(r) for r in results) == [[], ["INVALID_MFA_CODE"]]


async def test_a_recovery_code_signs_in_once_even_when_submitted_twice_at_once(
    gql: GraphQL, database: Database, tokens: TokenService
) -> None:
    org = await new_org(database, tokens)
    member = org.members[0]
    recovery_codes = (await enrol(gql, org.token)).codes
    code = recovery_codes[3]

    results = await asyncio.gather(
        *(
            verify(gql, challenge(tokens, tenant_id=org.id, user_id=member.id), recovery=code)
            for _ in range(2)
        )
    )
    later = await verify(gql, challenge(tokens, tenant_id=org.id, user_id=member.id), recovery=code)

    winners = [r for r in results if r["accessToken"]]
    assert len(winners) == 1
    assert sorted(codes_of(r) for r in results) == [[], ["INVALID_MFA_CODE"]]
    assert codes_of(later) == ["INVALID_MFA_CODE"]
    claims = tokens.verify_access_token(winners[0]["accessToken"])
    assert claims.aal == 2
    assert claims.amr == ("pwd", "recovery")
    status = (await gql.data(STATUS, token=winners[0]["accessToken"]))["mfaStatus"]
    assert status["recoveryCodesRemaining"] == 9
    actions = await audit_actions(database, org.id, member.id)
    assert actions.count("mfa.recovery_code.used:success") == 1
    assert actions.count("mfa.verification.failed:failure") == 2


async def test_a_recovery_code_may_be_typed_in_capitals_without_hyphens(
    gql: GraphQL, database: Database, tokens: TokenService
) -> None:
    org = await new_org(database, tokens)
    member = org.members[0]
    recovery_codes = (await enrol(gql, org.token)).codes
    typed = recovery_codes[0].replace("-", " ").upper()

    done = await verify(gql, challenge(tokens, tenant_id=org.id, user_id=member.id), recovery=typed)

    assert done["errors"] == []
    assert tokens.verify_access_token(done["accessToken"]).amr == ("pwd", "recovery")


async def test_another_users_recovery_code_does_not_work(
    gql: GraphQL, database: Database, tokens: TokenService
) -> None:
    org = await new_org(database, tokens, members=2)
    first, second = org.members
    first_codes = (await enrol(gql, first.token)).codes
    await enrol(gql, second.token)

    result = await verify(
        gql, challenge(tokens, tenant_id=org.id, user_id=second.id), recovery=first_codes[0]
    )

    assert codes_of(result) == ["INVALID_MFA_CODE"]
    # And it is still unused for its owner.
    own = await verify(
        gql, challenge(tokens, tenant_id=org.id, user_id=first.id), recovery=first_codes[0]
    )
    assert own["errors"] == []


async def test_failed_codes_are_throttled_per_user(
    gql: GraphQL, database: Database, tokens: TokenService, app_settings: Settings
) -> None:
    tenant_id, user_id, secret = await _seeded(database, tokens, app_settings)
    other_org = await new_org(database, tokens)
    other_secret = await seed_totp(
        database, app_settings, tenant_id=other_org.id, user_id=other_org.members[0].id
    )
    window = {now_code(secret, o) for o in (-2, -1, 0, 1, 2)}
    wrong = next(c for c in (f"{n:06d}" for n in range(1000)) if c not in window)

    for _ in range(app_settings.auth.throttle_per_account):
        failed = await verify(
            gql, challenge(tokens, tenant_id=tenant_id, user_id=user_id), code=wrong
        )
        assert codes_of(failed) == ["INVALID_MFA_CODE"]
    blocked = await verify(
        gql, challenge(tokens, tenant_id=tenant_id, user_id=user_id), code=now_code(secret)
    )
    unaffected = await verify(
        gql,
        challenge(tokens, tenant_id=other_org.id, user_id=other_org.members[0].id),
        code=now_code(other_secret),
    )

    assert codes_of(blocked) == ["TOO_MANY_ATTEMPTS"]
    assert blocked["accessToken"] is None
    assert unaffected["errors"] == []
    actions = await audit_actions(database, tenant_id, user_id)
    assert actions == ["mfa.verification.failed:failure"] * app_settings.auth.throttle_per_account


def _wrong_code(secret: str) -> str:
    window = {now_code(secret, o) for o in (-2, -1, 0, 1, 2)}
    return next(c for c in (f"{n:06d}" for n in range(1000)) if c not in window)


@pytest.mark.parametrize("store", STORES)
@pytest.mark.parametrize("factor", ["totp", "recovery"])
async def test_concurrent_codes_on_one_challenge_check_at_most_the_limit(
    store: str, factor: str, database: Database, tokens: TokenService, app_settings: Settings
) -> None:
    # given one challenge and 60 wrong codes sent at once
    tenant_id, user_id, secret = await _seeded(database, tokens, app_settings)
    held = challenge(tokens, tenant_id=tenant_id, user_id=user_id)
    wrong = {"code": _wrong_code(secret)} if factor == "totp" else {"recovery": "aaaa-bbbb-cccc"}
    limit = app_settings.auth.throttle_per_account
    async with throttled_server(app_settings, database, store=store) as gql:
        before = code_checks.value
        results = await asyncio.gather(*(verify(gql, held, **wrong) for _ in range(60)))
        checked = code_checks.value - before

    # then only the limit's worth were checked (and audited); the rest refused unchecked
    assert checked == limit
    codes = sorted(c for r in results for c in codes_of(r))
    assert codes == ["INVALID_MFA_CODE"] * limit + ["TOO_MANY_ATTEMPTS"] * (60 - limit)
    actions = await audit_actions(database, tenant_id, user_id)
    assert actions == ["mfa.verification.failed:failure"] * limit


async def test_an_accepted_code_gives_its_attempt_back(
    gql: GraphQL, database: Database, tokens: TokenService, app_settings: Settings
) -> None:
    # given a user one failure short of the limit
    tenant_id, user_id, secret = await _seeded(database, tokens, app_settings)
    for _ in range(app_settings.auth.throttle_per_account - 1):
        held = challenge(tokens, tenant_id=tenant_id, user_id=user_id)
        assert codes_of(await verify(gql, held, code=_wrong_code(secret))) == ["INVALID_MFA_CODE"]

    # when they sign in with a right code, then mistype once more
    held = challenge(tokens, tenant_id=tenant_id, user_id=user_id)
    assert (await verify(gql, held, code=now_code(secret)))["errors"] == []
    held = challenge(tokens, tenant_id=tenant_id, user_id=user_id)
    mistyped = await verify(gql, held, code=_wrong_code(secret))

    # then the success did not count: the mistake is checked, not refused
    assert codes_of(mistyped) == ["INVALID_MFA_CODE"]


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE users SET status = 'disabled' WHERE id = $1",
        "UPDATE tenants SET status = 'suspended' WHERE $1::uuid IS NOT NULL",
    ],
    ids=["user-disabled", "tenant-suspended"],
)
async def test_a_challenge_fails_once_its_user_or_tenant_may_no_longer_sign_in(
    gql: GraphQL,
    database: Database,
    tokens: TokenService,
    app_settings: Settings,
    change: str,
) -> None:
    tenant_id, user_id, secret = await _seeded(database, tokens, app_settings)
    held = challenge(tokens, tenant_id=tenant_id, user_id=user_id)
    async with database.transaction(tenant_id) as session:
        await session.execute(change, user_id)

    result = await verify(gql, held, code=now_code(secret))

    assert codes_of(result) == ["UNAUTHENTICATED"]
    assert result["accessToken"] is None
