"""Password policy and hashing: length limits, common passwords, Unicode, rehash on sign-in."""

from __future__ import annotations

import unicodedata

import pytest
from argon2 import PasswordHasher
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core import passwords
from app.core.errors import Invalid
from app.core.passwords import (
    MAX_PASSWORD_LENGTH,
    argon2_computations,
    check_password_policy,
    hash_password,
    needs_rehash,
    verify_and_maybe_rehash,
    verify_password,
)
from tests.properties import examples

LONG_UNICODE = "пароль-密码-🔑-" * 60  # 780 code points, about 2 KB of UTF-8


async def test_a_too_long_password_is_refused_before_any_argon2_work() -> None:
    huge = "a" * (MAX_PASSWORD_LENGTH + 1)
    before = argon2_computations.value

    with pytest.raises(Invalid) as raised:
        await hash_password(huge)
    verified = await verify_password(await _some_hash(), huge)

    assert raised.value.field == "password"
    assert "at most 1024" in raised.value.message
    assert verified is False
    # Only the hash made by _some_hash ran; neither the refusal nor the check did.
    assert argon2_computations.value == before + 1


async def _some_hash() -> str:
    return await hash_password("a perfectly fine passphrase")


def test_the_maximum_length_itself_is_allowed() -> None:
    check_password_policy("b" * MAX_PASSWORD_LENGTH)


@pytest.mark.parametrize("password", ["", "short", "1234567"])
def test_short_passwords_are_refused(password: str) -> None:
    with pytest.raises(Invalid, match="at least 8"):
        check_password_policy(password)


@pytest.mark.parametrize(
    "password", ["password1", "PASSWORD1", "12345678", "iloveyou1", "qwertyuiop"]
)
def test_common_passwords_are_refused_in_any_case(password: str) -> None:
    with pytest.raises(Invalid, match="too common") as raised:
        check_password_policy(password, field="newPassword")
    assert raised.value.field == "newPassword"


def test_the_bundled_list_is_loaded_and_large() -> None:
    common = passwords.common_passwords()
    assert len(common) > 8000
    assert all(len(p) >= 8 for p in common)
    assert "baseball1" in common


def test_a_lone_surrogate_is_refused_not_crashed_on() -> None:
    with pytest.raises(Invalid, match="not allowed"):
        check_password_policy("abcdefgh\ud800")


async def test_a_lone_surrogate_never_verifies_and_still_costs_one_run() -> None:
    stored = await _some_hash()
    before = argon2_computations.value

    assert await verify_password(stored, "abcdefgh\ud800") is False
    assert argon2_computations.value == before + 1


async def test_long_unicode_passwords_are_not_truncated() -> None:
    stored = await hash_password(LONG_UNICODE)

    assert await verify_password(stored, LONG_UNICODE)
    assert not await verify_password(stored, LONG_UNICODE + "x")
    assert not await verify_password(stored, LONG_UNICODE[:-1])


async def test_canonically_equivalent_forms_are_the_same_password() -> None:
    composed = "café crème brûlée"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed

    stored = await hash_password(decomposed)

    assert await verify_password(stored, composed)


async def test_compatibility_forms_stay_distinct() -> None:
    # NFC, not NFKC: full-width letters are a different password from ASCII ones.
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in "passphrase")
    stored = await hash_password(full_width)

    assert not await verify_password(stored, "passphrase")


async def test_a_missing_hash_costs_one_run_and_fails() -> None:
    before = argon2_computations.value

    assert await verify_password(None, "whatever it is") is False
    assert argon2_computations.value == before + 1


async def test_verify_and_maybe_rehash_keeps_a_current_hash() -> None:
    stored = await _some_hash()

    assert not needs_rehash(stored)
    assert await verify_and_maybe_rehash(stored, "a perfectly fine passphrase") == (True, None)
    assert await verify_and_maybe_rehash(stored, "a wrong passphrase!") == (False, None)
    assert await verify_and_maybe_rehash(None, "a perfectly fine passphrase") == (False, None)


async def test_verify_and_maybe_rehash_upgrades_weaker_parameters() -> None:
    old = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("legacy passphrase")
    assert needs_rehash(old)

    ok, new_hash = await verify_and_maybe_rehash(old, "legacy passphrase")

    assert ok
    assert new_hash is not None
    assert new_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert not needs_rehash(new_hash)
    assert await verify_password(new_hash, "legacy passphrase")


async def test_a_wrong_password_against_an_old_hash_gives_no_new_hash() -> None:
    old = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("legacy passphrase")

    assert await verify_and_maybe_rehash(old, "legacy passphrasf") == (False, None)


def test_an_unparseable_hash_needs_rehash() -> None:
    assert needs_rehash("$2b$12$not-an-argon2-hash")


# Printable-ish Unicode without surrogates, at least 8 code points.
_passwords = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=8, max_size=64
).filter(lambda p: p.casefold() not in passwords.common_passwords())


# Argon2 per example: slow on purpose (and the profile's own suppression is replaced here).
@settings(
    max_examples=examples(15),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(password=_passwords, extra=st.characters(blacklist_categories=("Cs", "Mn", "Mc", "Me")))
async def test_any_unicode_password_round_trips_and_one_more_char_does_not(
    password: str, extra: str, examples_run: list[int]
) -> None:
    examples_run.append(1)
    stored = await hash_password(password)

    assert await verify_password(stored, password)
    assert await verify_password(stored, unicodedata.normalize("NFD", password))
    assert not await verify_password(stored, password + extra)
