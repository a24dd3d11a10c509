"""The `tenantry` command against a real server: migrate, status, rollback, serve's checks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import main
from app.core import dbadmin
from app.core.dbadmin import DatabaseUrls
from app.core.keys import KeyRing
from app.core.migrate import MIGRATIONS_DIR
from tests.conftest import TestDatabase, create_throwaway_database

MIGRATION_IDS = sorted(
    p.name.removesuffix(".sql")
    for p in MIGRATIONS_DIR.glob("*.sql")
    if not p.name.endswith(".rollback.sql")
)


@pytest.fixture
def fresh(test_db: TestDatabase, monkeypatch: pytest.MonkeyPatch) -> Iterator[DatabaseUrls]:
    """An unmigrated database, configured the way an operator would (environment)."""
    name, urls = create_throwaway_database(test_db.admin_url)
    monkeypatch.setenv("DATABASE_URL", urls.app)
    monkeypatch.setenv("MIGRATION_DATABASE_URL", urls.owner)
    try:
        yield urls
    finally:
        dbadmin.drop_database(test_db.admin_url, name)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_migrate_status_and_rollback(
    fresh: DatabaseUrls, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "migrate", "--status")[:2] == (
        0,
        "".join(f"pending  {m}\n" for m in MIGRATION_IDS),
    )

    code, out, _ = run(capsys, "migrate")
    assert code == 0
    assert out == f"applied {', '.join(MIGRATION_IDS)}\npolicies re-applied\n"
    assert run(capsys, "migrate")[1] == "no pending migrations\npolicies re-applied\n"
    assert run(capsys, "migrate", "--status")[1] == "".join(
        f"applied  {m}\n" for m in MIGRATION_IDS
    )

    assert run(capsys, "migrate", "--rollback")[1] == f"rolled back {MIGRATION_IDS[-1]}\n"
    assert run(capsys, "migrate", "--status")[1].endswith(f"pending  {MIGRATION_IDS[-1]}\n")


def test_serve_refuses_pending_migrations(
    fresh: DatabaseUrls, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "serve")

    assert code == 1
    assert "run `tenantry migrate` first" in err


def test_migrate_as_the_server_role_is_a_clear_error(
    fresh: DatabaseUrls, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MIGRATION_DATABASE_URL", fresh.app)

    code, _, err = run(capsys, "migrate")

    assert code == 2
    assert "must run as the owner role" in err


def test_unreachable_database_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    monkeypatch.delenv("MIGRATION_DATABASE_URL", raising=False)

    code, _, err = run(capsys, "migrate", "--status")

    assert code == 2
    assert err.startswith("cannot reach the database (MIGRATION_DATABASE_URL): ")
    # libpq's hint is on a line of its own; the operator gets one line.
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_bad_setting_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TENANTRY_MAX_PAGE_SIZE", "lots")

    code, _, err = run(capsys, "export-schema", "--check")

    assert code == 2
    assert err == "configuration error: TENANTRY_MAX_PAGE_SIZE must be a whole number, got 'lots'\n"


def test_production_without_its_mfa_keys_is_one_clear_line(
    fresh: DatabaseUrls,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    assert run(capsys, "migrate")[0] == 0
    signing = tmp_path / "signing-keys.json"
    KeyRing.from_file(signing, create=True)
    monkeypatch.setenv("TENANTRY_ENV", "production")
    monkeypatch.setenv("TENANTRY_SIGNING_KEYS_FILE", str(signing))
    monkeypatch.setenv("TENANTRY_MFA_KEYS_FILE", str(tmp_path / "mfa-keys.json"))
    monkeypatch.setenv("TENANTRY_DATA_DIR", str(tmp_path / "data"))

    code, _, err = run(capsys, "serve")

    assert code == 2
    assert err.startswith("configuration error: MFA keys file")
    assert "Traceback" not in err
    # Nothing was generated in production: secrets are the operator's to provide.
    assert not (tmp_path / "mfa-keys.json").exists()
    assert not (tmp_path / "data" / "keys").exists()
