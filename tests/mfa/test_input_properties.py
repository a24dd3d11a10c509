"""Hypothesis: arbitrary codes, recovery codes and challenges through the real server get a
clean, typed rejection: never tokens, never an internal error, never a used-up code."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.db import Database
from app.core.security import TokenService
from app.core.settings import Settings
from app.core.validation import encodable
from tests.api.helpers import refused_input
from tests.app_fixtures import GraphQL, Org
from tests.mfa.helpers import CONFIRM, START, VERIFY, challenge, now_code, seed_totp
from tests.properties import examples

SETTINGS = settings(max_examples=examples(30))
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=200)
REJECTIONS = {"INVALID", "INVALID_MFA_CODE", "TOO_MANY_ATTEMPTS", "UNAUTHENTICATED"}


def assert_clean(body: dict[str, Any]) -> dict[str, Any]:
    assert "errors" not in body, body
    [payload] = body["data"].values()
    assert isinstance(payload, dict)
    for error in payload["errors"]:
        for word in ("SELECT", "UPDATE", "Traceback", "asyncpg", "InvalidTag"):
            assert word not in error["message"], body
    return payload


def refused(body: dict[str, Any], values: dict[str, str | None]) -> bool:
    """Whether the request was refused before running for a string no service could store;
    then it names one of those (nothing else is checked)."""
    unstorable = [k for k, v in values.items() if v is not None and not encodable(v)]
    if unstorable:
        assert refused_input(body) in unstorable
    return bool(unstorable)


@SETTINGS
@given(
    code=st.one_of(st.none(), ANY_TEXT, st.from_regex(r"[0-9]{6}", fullmatch=True)),
    recovery=st.one_of(st.none(), ANY_TEXT, st.from_regex(r"[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}")),
    forged_challenge=st.one_of(st.none(), ANY_TEXT),
)
async def test_arbitrary_second_steps_are_rejected_cleanly(
    gql: GraphQL,
    org: Org,
    tokens: TokenService,
    database: Database,
    app_settings: Settings,
    examples_run: list[int],
    code: str | None,
    recovery: str | None,
    forged_challenge: str | None,
) -> None:
    examples_run.append(1)
    user = org.members[1]
    async with database.transaction(org.id, readonly=True) as session:
        seeded = await session.fetchval("SELECT count(*) FROM mfa_totp WHERE user_id = $1", user.id)
    secret = None
    if not seeded:
        secret = await seed_totp(database, app_settings, tenant_id=org.id, user_id=user.id)
    window = {now_code(secret, o) for o in (-2, -1, 0, 1, 2)} if secret else set()
    if code is not None and code.replace(" ", "") in window:
        code = None
    held = forged_challenge or challenge(tokens, tenant_id=org.id, user_id=user.id)

    values = {"challenge": held, "code": code, "recoveryCode": recovery}
    body = await gql(VERIFY, {"input": values})

    if refused(body, values):
        return
    payload = assert_clean(body)
    assert payload["accessToken"] is None
    assert payload["refreshToken"] is None
    assert len(payload["errors"]) == 1
    assert payload["errors"][0]["code"] in REJECTIONS
    async with database.transaction(org.id, readonly=True) as session:
        row = await session.fetchrow(
            "SELECT last_used_step FROM mfa_totp WHERE user_id = $1", user.id
        )
    assert row is not None
    assert row["last_used_step"] is None


@SETTINGS
@given(code=ANY_TEXT, forged_challenge=st.one_of(st.none(), ANY_TEXT))
async def test_arbitrary_enrolment_codes_are_rejected_cleanly(
    gql: GraphQL,
    org: Org,
    examples_run: list[int],
    code: str,
    forged_challenge: str | None,
) -> None:
    examples_run.append(1)
    started = await gql(START, {"challenge": forged_challenge}, token=org.token)
    if refused(started, {"challenge": forged_challenge}):
        return
    if forged_challenge is not None:
        assert assert_clean(started)["errors"][0]["code"] == "UNAUTHENTICATED"
    else:
        assert assert_clean(started)["errors"] == []

    body = await gql(CONFIRM, {"code": code, "challenge": forged_challenge}, token=org.token)

    if refused(body, {"code": code}):
        return
    payload = assert_clean(body)
    assert payload["recoveryCodes"] is None
    assert payload["errors"][0]["code"] in REJECTIONS
