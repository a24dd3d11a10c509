"""TOTP secrets sealed to their tenant and user, step matching, recovery codes, the key file."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from uuid import UUID, uuid4

import pyotp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.settings import AuthSettings, Settings
from app.mfa import crypto, service
from tests.properties import examples

KEYS = crypto.MfaKeys.generate()
SECRET = crypto.new_totp_secret()
# A fixed instant in the middle of a step, so "now" and its neighbours are exact.
NOW = 1_800_000_015.0
# Pure computation, microseconds per example: four times the suite's default count.
CHEAP = settings(max_examples=examples(100))
STEP = int(NOW // 30)


def code(offset: int) -> str:
    return crypto.code_at_step(SECRET, STEP + offset)


# -- Sealing --------------------------------------------------------------------------------


def test_a_sealed_secret_opens_only_for_its_tenant_and_user() -> None:
    tenant, user = uuid4(), uuid4()
    sealed = crypto.seal_totp_secret(KEYS, SECRET, tenant_id=tenant, user_id=user)

    assert SECRET.encode() not in sealed.ciphertext
    assert sealed.key_version == KEYS.current
    assert crypto.open_totp_secret(KEYS, sealed, tenant_id=tenant, user_id=user) == SECRET
    for other_tenant, other_user in ((uuid4(), user), (tenant, uuid4()), (user, tenant)):
        with pytest.raises(crypto.SecretDecryptionError):
            crypto.open_totp_secret(KEYS, sealed, tenant_id=other_tenant, user_id=other_user)


@CHEAP
@given(tenant=st.uuids(), user=st.uuids(), other=st.uuids(), secret=st.text(min_size=1))
def test_sealing_binds_any_secret_to_its_ids(
    tenant: UUID, user: UUID, other: UUID, secret: str
) -> None:
    sealed = crypto.seal_totp_secret(KEYS, secret, tenant_id=tenant, user_id=user)
    assert crypto.open_totp_secret(KEYS, sealed, tenant_id=tenant, user_id=user) == secret
    if other != tenant:
        with pytest.raises(crypto.SecretDecryptionError):
            crypto.open_totp_secret(KEYS, sealed, tenant_id=other, user_id=user)
    if other != user:
        with pytest.raises(crypto.SecretDecryptionError):
            crypto.open_totp_secret(KEYS, sealed, tenant_id=tenant, user_id=other)


def test_resealing_moves_a_secret_to_another_tenant_only() -> None:
    old, new, user = uuid4(), uuid4(), uuid4()
    sealed = crypto.seal_totp_secret(KEYS, SECRET, tenant_id=old, user_id=user)

    moved = crypto.reseal_totp_secret(KEYS, sealed, user_id=user, from_tenant=old, to_tenant=new)

    assert crypto.open_totp_secret(KEYS, moved, tenant_id=new, user_id=user) == SECRET
    with pytest.raises(crypto.SecretDecryptionError):
        crypto.open_totp_secret(KEYS, moved, tenant_id=old, user_id=user)
    # A secret that was not the old tenant's does not open, so it is never moved.
    with pytest.raises(crypto.SecretDecryptionError):
        crypto.reseal_totp_secret(KEYS, sealed, user_id=user, from_tenant=new, to_tenant=old)


@CHEAP
@given(position=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_a_tampered_ciphertext_does_not_open(position: int, flip: int) -> None:
    tenant, user = UUID(int=1), UUID(int=2)
    sealed = crypto.seal_totp_secret(KEYS, SECRET, tenant_id=tenant, user_id=user)
    data = bytearray(sealed.ciphertext)
    data[position % len(data)] ^= flip
    tampered = crypto.SealedSecret(bytes(data), sealed.key_version)
    with pytest.raises(crypto.SecretDecryptionError):
        crypto.open_totp_secret(KEYS, tampered, tenant_id=tenant, user_id=user)


def test_a_nonce_is_never_reused() -> None:
    tenant, user = uuid4(), uuid4()
    sealed = {
        crypto.seal_totp_secret(KEYS, SECRET, tenant_id=tenant, user_id=user).ciphertext[:12]
        for _ in range(100)
    }
    assert len(sealed) == 100


def test_secrets_sealed_with_an_older_key_still_open_after_rotation() -> None:
    tenant, user = uuid4(), uuid4()
    old = crypto.seal_totp_secret(KEYS, SECRET, tenant_id=tenant, user_id=user)
    rotated = crypto.MfaKeys(current=2, keys={**KEYS.keys, 2: bytes(range(32))})

    new = crypto.seal_totp_secret(rotated, SECRET, tenant_id=tenant, user_id=user)

    assert new.key_version == 2
    for sealed in (old, new):
        assert crypto.open_totp_secret(rotated, sealed, tenant_id=tenant, user_id=user) == SECRET
    # A key version missing from the file is a configuration error, not a wrong code.
    with pytest.raises(crypto.MfaKeyError):
        crypto.open_totp_secret(KEYS, new, tenant_id=tenant, user_id=user)


# -- The key file ---------------------------------------------------------------------------


def test_a_missing_key_file_is_created_private_in_development(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "mfa-keys.json"

    created = crypto.load_or_create_mfa_keys(path, create=True)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["current"] == 1
    assert set(data["keys"]) == {"1"}
    assert crypto.load_or_create_mfa_keys(path, create=False) == created
    assert len(created.keys[1]) == 32


def test_a_missing_key_file_is_an_error_in_production(tmp_path: Path) -> None:
    path = tmp_path / "mfa-keys.json"
    with pytest.raises(crypto.MfaKeyError, match="does not exist"):
        crypto.load_or_create_mfa_keys(path, create=False)
    assert not path.exists()


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "{}",
        '{"current": 1, "keys": {}}',
        '{"current": 2, "keys": {"1": "' + "A" * 44 + '"}}',
        '{"current": 1, "keys": {"1": "c2hvcnQ="}}',
        '{"current": 1, "keys": {"1": "!!!"}}',
        '{"current": 0, "keys": {"0": "' + "A" * 43 + '="}}',
        "[]",
    ],
)
def test_a_malformed_key_file_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "mfa-keys.json"
    path.write_text(content)
    with pytest.raises(crypto.MfaKeyError):
        crypto.load_or_create_mfa_keys(path, create=True)


# -- TOTP -----------------------------------------------------------------------------------


def test_the_provisioning_uri_names_issuer_account_and_secret() -> None:
    uri = crypto.provisioning_uri(SECRET, account="ada@example.com")

    parts = urlsplit(uri)
    query = parse_qs(parts.query)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert parts.path == "/Tenantry:ada%40example.com"
    assert query["secret"] == [SECRET]
    assert query["issuer"] == ["Tenantry"]
    # What an authenticator app computes from the URI is what the server accepts.
    app = pyotp.parse_uri(uri)
    assert isinstance(app, pyotp.TOTP)
    assert crypto.matching_step(SECRET, app.at(NOW), last_used_step=None, now=NOW) == STEP


def test_a_secret_has_160_random_bits() -> None:
    secrets_ = {crypto.new_totp_secret() for _ in range(50)}
    assert len(secrets_) == 50
    assert all(re.fullmatch(r"[A-Z2-7]{32}", s) for s in secrets_)


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_codes_of_the_current_step_and_its_neighbours_match_that_step(offset: int) -> None:
    assert crypto.matching_step(SECRET, code(offset), last_used_step=None, now=NOW) == STEP + offset


@pytest.mark.parametrize("offset", [-10, -3, -2, 2, 3, 10])
def test_codes_outside_the_window_are_rejected(offset: int) -> None:
    if code(offset) in {code(-1), code(0), code(1)}:
        pytest.skip("this step's code happens to equal one inside the window")
    assert crypto.matching_step(SECRET, code(offset), last_used_step=None, now=NOW) is None


def test_a_used_step_and_earlier_ones_are_rejected() -> None:
    assert crypto.matching_step(SECRET, code(0), last_used_step=STEP, now=NOW) is None
    assert crypto.matching_step(SECRET, code(-1), last_used_step=STEP, now=NOW) is None
    assert crypto.matching_step(SECRET, code(1), last_used_step=STEP, now=NOW) == STEP + 1
    assert crypto.matching_step(SECRET, code(0), last_used_step=STEP - 1, now=NOW) == STEP


def test_spaces_in_a_code_are_ignored() -> None:
    typed = f"{code(0)[:3]} {code(0)[3:]}"
    assert crypto.matching_step(SECRET, typed, last_used_step=None, now=NOW) == STEP


@CHEAP
@given(st.text(max_size=60))
def test_arbitrary_input_is_rejected_unless_it_is_a_valid_code(text: str) -> None:
    valid = {code(-1), code(0), code(1)}
    result = crypto.matching_step(SECRET, text, last_used_step=None, now=NOW)
    if text.replace(" ", "") in valid and len(text) <= 20:
        assert result is not None
    else:
        assert result is None


@CHEAP
@given(st.from_regex(r"[0-9]{6}", fullmatch=True))
def test_six_digit_guesses_match_only_the_window_codes(guess: str) -> None:
    expected = [s for s in (STEP - 1, STEP, STEP + 1) if crypto.code_at_step(SECRET, s) == guess]
    result = crypto.matching_step(SECRET, guess, last_used_step=None, now=NOW)
    assert result == (max(expected) if expected else None)


# -- Recovery codes -------------------------------------------------------------------------


def test_recovery_codes_are_ten_distinct_60_bit_codes() -> None:
    codes = crypto.new_recovery_codes()

    assert len(codes) == 10 == len(set(codes))
    for c in codes:
        # 12 base32 characters: 60 bits.
        assert re.fullmatch(r"[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}", c)


@CHEAP
@given(
    upper=st.booleans(),
    separator=st.sampled_from(["-", "", " ", " - "]),
    padding=st.sampled_from(["", " ", "  "]),
)
def test_recovery_codes_ignore_case_separators_and_padding(
    upper: bool, separator: str, padding: str
) -> None:
    tenant, user = UUID(int=1), UUID(int=2)
    original = crypto.new_recovery_codes(1)[0]
    typed = padding + separator.join(original.split("-")) + padding
    typed = typed.upper() if upper else typed

    assert crypto.recovery_code_digest(
        typed, tenant_id=tenant, user_id=user
    ) == crypto.recovery_code_digest(original, tenant_id=tenant, user_id=user)


def test_a_recovery_code_digest_is_salted_by_tenant_and_user() -> None:
    c = crypto.new_recovery_codes(1)[0]
    a, b = uuid4(), uuid4()
    digests = {
        crypto.recovery_code_digest(c, tenant_id=a, user_id=b),
        crypto.recovery_code_digest(c, tenant_id=b, user_id=a),
        crypto.recovery_code_digest(c, tenant_id=a, user_id=a),
    }
    assert len(digests) == 3
    assert None not in digests


@CHEAP
@given(st.text(max_size=80))
def test_malformed_recovery_codes_have_no_digest(text: str) -> None:
    plain = text.strip().lower().replace("-", "").replace(" ", "")
    digest = crypto.recovery_code_digest(text, tenant_id=UUID(int=1), user_id=UUID(int=2))
    well_formed = len(text) <= 40 and re.fullmatch(r"[a-z2-7]{12}", plain) is not None
    assert (digest is not None) == well_formed


def test_start_up_refuses_a_production_server_without_a_key_file(tmp_path: Path) -> None:
    production = Settings(
        environment="production", data_dir=tmp_path, auth=AuthSettings(mfa_keys_file=None)
    )
    development = Settings(environment="development", data_dir=tmp_path)

    with pytest.raises(crypto.MfaKeyError):
        service.ensure_keys(production)
    service.ensure_keys(development)
    service.ensure_keys(production)

    assert development.mfa_keys_path == tmp_path / "keys" / "mfa-keys.json"
    assert stat.S_IMODE(development.mfa_keys_path.stat().st_mode) == 0o600
