"""Signing-key rotation: the key file, the live KeyRing, the `tenantry keys` command and a
running server picking up a rotation (JWKS, new kid, old tokens, retired keys)."""

from __future__ import annotations

import json
import os
import secrets
import stat
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import httpx
import pytest
from joserfc import jws

from app.auth import queries as auth_queries
from app.cli import main
from app.core import keys as keys_module
from app.core.db import Database
from app.core.errors import Unauthenticated
from app.core.keys import KeyFileError, KeyRing, read_keys, retire_key, rotate_keys
from app.core.security import TokenService
from app.core.settings import Settings
from app.tenants.service import create_tenant
from app.users.service import create_user
from tests.app_fixtures import GRAPHQL_RESPONSE, start_server, stop_server

VIEWER = "{ viewer { email } }"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _service(ring: KeyRing) -> TokenService:
    return TokenService(ring, issuer="tenantry", audience="tenantry-api", ttl_seconds=600)


@dataclass(frozen=True)
class Someone:
    tenant_id: UUID
    user_id: UUID
    email: str
    # A session of theirs (the server refuses tokens of sessions it does not know).
    session_id: UUID


async def _someone(database: Database) -> Someone:
    slug = f"keys-{secrets.token_hex(5)}"
    tenant = await create_tenant(database, slug=slug, name=slug)
    async with database.transaction(tenant.id) as session:
        user = await create_user(
            session, email=f"a@{slug}.example", display_name="A", password=None
        )
        opened = await auth_queries.insert_session(
            session,
            user_id=user.id,
            aal=1,
            amr=("pwd",),
            user_agent="tests",
            ip=None,
            expires_at=datetime.now(UTC) + timedelta(days=1),
        )
    return Someone(tenant.id, user.id, user.email, opened.id)


def _issue(tokens: TokenService, who: Someone | None = None) -> str:
    return tokens.issue_access_token(
        user_id=who.user_id if who else uuid4(),
        tenant_id=who.tenant_id if who else uuid4(),
        session_id=who.session_id if who else uuid4(),
        aal=1,
        amr=("pwd",),
        auth_time=int(time.time()),
    ).token


def _kid(token: str) -> str:
    return str(jws.extract_compact(token.encode()).headers()["kid"])


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- The key file ------------------------------------------------------------------------


def test_rotate_appends_a_key_that_signs_and_writes_mode_0600(tmp_path: Path) -> None:
    # given
    path = tmp_path / "keys.json"
    first = rotate_keys(path)

    # when
    second = rotate_keys(path)

    # then
    kids = [k.kid for k in read_keys(path).keys]
    assert kids == [first.kid, second.kid]
    assert first.kid != second.kid
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # atomic replacement leaves no temporary files behind (only the lock file)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".keys.json.lock", "keys.json"]
    data = json.loads(path.read_text())
    assert all("d" in k and isinstance(k["iat"], int) for k in data["keys"])


def test_retire_refuses_the_signing_key_and_unknown_kids(tmp_path: Path) -> None:
    # given
    path = tmp_path / "keys.json"
    old = rotate_keys(path)
    current = rotate_keys(path)

    # when / then
    with pytest.raises(KeyFileError, match="current signing key"):
        retire_key(path, str(current.kid))
    with pytest.raises(KeyFileError, match="no key with kid 'nope'"):
        retire_key(path, "nope")
    assert [k.kid for k in read_keys(path).keys] == [old.kid, current.kid]

    retire_key(path, str(old.kid))
    assert [k.kid for k in read_keys(path).keys] == [current.kid]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not a JSON Web Key set"),
        ('{"keys": []}', "not a JSON Web Key set|holds no keys"),
        (
            json.dumps({"keys": [{"kty": "oct", "k": "eHh4" * 10 + "eHg", "kid": "a"}]}),
            "not a private P-256",
        ),
    ],
)
def test_unusable_key_files_are_refused(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "keys.json"
    path.write_text(content)

    with pytest.raises(KeyFileError, match=message):
        read_keys(path)


def test_public_only_key_is_refused(tmp_path: Path) -> None:
    # given a set holding only the public half of a key
    path = tmp_path / "keys.json"
    key = rotate_keys(path)
    path.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))

    with pytest.raises(KeyFileError, match="not a private P-256"):
        read_keys(path)


# --- The KeyRing of a running server ----------------------------------------------------


def test_key_ring_picks_up_a_rotation_after_the_check_interval(tmp_path: Path) -> None:
    # given
    path = tmp_path / "keys.json"
    old = rotate_keys(path)
    clock = FakeClock()
    ring = KeyRing(path, read_keys(path), check_interval=5, clock=clock)
    tokens = _service(ring)
    old_token = _issue(tokens)

    # when the file is rotated
    new = rotate_keys(path)

    # then nothing changes before the interval (no stat per request) ...
    clock.now += 4
    assert ring.signing_key.kid == old.kid
    # ... and after it the new key signs while the old one still verifies
    clock.now += 1
    new_token = _issue(tokens)
    assert (_kid(old_token), _kid(new_token)) == (old.kid, new.kid)
    assert [k["kid"] for k in tokens.public_jwks()["keys"]] == [old.kid, new.kid]
    assert tokens.verify_access_token(old_token).token_id
    assert tokens.verify_access_token(new_token).token_id


def test_key_ring_drops_retired_keys(tmp_path: Path) -> None:
    # given
    path = tmp_path / "keys.json"
    old = rotate_keys(path)
    tokens = _service(KeyRing.from_file(path, check_interval=0))
    old_token = _issue(tokens)
    rotate_keys(path)

    # when
    retire_key(path, str(old.kid))

    # then
    with pytest.raises(Unauthenticated):
        tokens.verify_access_token(old_token)
    assert tokens.verify_access_token(_issue(tokens)).token_id


def test_key_ring_keeps_its_keys_when_the_file_breaks(tmp_path: Path) -> None:
    # given
    path = tmp_path / "keys.json"
    key = rotate_keys(path)
    ring = KeyRing.from_file(path, check_interval=0)

    # when the file is overwritten with garbage, then removed
    path.write_text('{"keys": [')
    broken_kid = ring.signing_key.kid
    os.unlink(path)
    missing_kid = ring.signing_key.kid

    # then
    assert broken_kid == missing_kid == key.kid


def test_key_ring_from_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "keys.json"

    with pytest.raises(FileNotFoundError):
        KeyRing.from_file(path)
    ring = KeyRing.from_file(path, create=True)

    assert [k.kid for k in read_keys(path).keys] == [ring.signing_key.kid]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# --- tenantry keys ------------------------------------------------------------------------


def test_cli_rotate_list_retire(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # given
    path = tmp_path / "keys.json"
    code, out, _ = _run(capsys, "keys", "rotate", "--file", str(path))
    assert code == 0
    first = read_keys(path).keys[0].kid
    assert f"added key {first}" in out
    assert _run(capsys, "keys", "rotate", "--file", str(path))[0] == 0
    second = read_keys(path).keys[1].kid

    # when
    code, listing, _ = _run(capsys, "keys", "list", "--file", str(path))

    # then
    assert code == 0
    lines = [line.split() for line in listing.splitlines()]
    assert [line[0] for line in lines] == [first, second]
    assert [line[2:] for line in lines] == [[], ["current"]]
    assert all(line[1].endswith("Z") for line in lines)

    assert _run(capsys, "keys", "retire", "--file", str(path), str(first))[0] == 0
    assert [k.kid for k in read_keys(path).keys] == [second]


def test_cli_uses_the_configured_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "configured.json"
    monkeypatch.setenv("TENANTRY_SIGNING_KEYS_FILE", str(path))

    assert _run(capsys, "keys", "rotate")[0] == 0

    assert len(read_keys(path).keys) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("keys", "retire", "CURRENT"), "is the current signing key"),
        (("keys", "retire", "unknown-kid"), "no key with kid 'unknown-kid'"),
    ],
)
def test_cli_retire_errors_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    # given
    path = tmp_path / "keys.json"
    current = str(rotate_keys(path).kid)
    before = path.read_bytes()
    argv = tuple(current if a == "CURRENT" else a for a in argv)

    # when
    code, out, err = _run(capsys, *argv, "--file", str(path))

    # then
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert message in err
    assert path.read_bytes() == before


def test_cli_list_of_a_missing_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "keys", "list", "--file", str(tmp_path / "missing.json"))

    assert code == 2
    assert err.count("\n") == 1
    assert "does not exist" in err


# --- A running server --------------------------------------------------------------------


@pytest.fixture
async def rotating_server(
    app_settings: Settings,
    database: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[str, Path]]:
    """A live server with its own key file, checking it on every request (no waiting)."""
    monkeypatch.setattr(keys_module, "RELOAD_CHECK_SECONDS", 0.0)
    path = tmp_path / "keys.json"
    rotate_keys(path)
    server, url = await start_server(replace(app_settings, signing_keys_file=path), database)
    try:
        yield url, path
    finally:
        await stop_server(server)


async def test_running_server_picks_up_rotation_and_retirement(
    rotating_server: tuple[str, Path], database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a token signed with the server's first key
    url, path = rotating_server
    someone = await _someone(database)
    tokens = _service(KeyRing.from_file(path, check_interval=0))
    old_kid = read_keys(path).keys[0].kid
    old_token = _issue(tokens, someone)

    async with httpx.AsyncClient(base_url=url) as http:

        async def viewer(token: str) -> httpx.Response:
            headers = {"authorization": f"Bearer {token}", **GRAPHQL_RESPONSE}
            return await http.post("/graphql", json={"query": VIEWER}, headers=headers)

        assert (await viewer(old_token)).status_code == 200

        # when the operator rotates
        assert _run(capsys, "keys", "rotate", "--file", str(path))[0] == 0
        new_kid = read_keys(path).keys[1].kid

        # then the JWKS lists both, new tokens carry the new kid, old tokens still verify
        jwks = (await http.get("/.well-known/jwks.json")).json()
        assert [k["kid"] for k in jwks["keys"]] == [old_kid, new_kid]
        assert all("d" not in k for k in jwks["keys"])
        new_token = _issue(tokens, someone)
        assert _kid(new_token) == new_kid
        for token in (old_token, new_token):
            response = await viewer(token)
            assert response.status_code == 200, response.text
            assert response.json()["data"]["viewer"]["email"] == someone.email

        # when the old key is retired
        assert _run(capsys, "keys", "retire", "--file", str(path), str(old_kid))[0] == 0

        # then its tokens are refused, the new key's are not
        refused = await viewer(old_token)
        assert refused.status_code == 401
        assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert (await viewer(new_token)).status_code == 200
        jwks = (await http.get("/.well-known/jwks.json")).json()
        assert [k["kid"] for k in jwks["keys"]] == [new_kid]


def test_cli_rotate_where_no_file_can_be_written_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a key path whose parent is a file (fails even for root, unlike permissions)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")

    code, out, err = _run(capsys, "keys", "rotate", "--file", str(blocker / "keys.json"))

    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("error: ")
