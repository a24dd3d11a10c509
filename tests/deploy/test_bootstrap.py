"""`tenantry db bootstrap` against a PostgreSQL that asks for passwords (scram-sha-256).

The CI machine's server trusts local connections, which hid that the second connection
dropped the administrator's password and that the roles were given none. These tests run the
command on a private cluster with password authentication, then connect with what it printed
as the server and the migrations would.
"""

from __future__ import annotations

import asyncio
from urllib.parse import unquote, urlsplit

import asyncpg
import psycopg
import pytest

from app.cli import main
from app.core import migrate
from app.core.dbadmin import APP_ROLE, OWNER_ROLE
from tests.pg_cluster import PrivateCluster


@pytest.fixture(autouse=True)
def _no_ambient_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PGPASSWORD", "TENANTRY_OWNER_PASSWORD", "TENANTRY_APP_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


def bootstrap(capsys: pytest.CaptureFixture[str], admin_url: str, db: str) -> dict[str, str]:
    """Run the command; returns the settings it printed on standard output."""
    code = main(["db", "bootstrap", "--admin-url", admin_url, "--database", db])
    out, err = capsys.readouterr()
    assert code == 0, err
    printed = dict(line.split("=", 1) for line in out.splitlines())
    assert set(printed) == {"DATABASE_URL", "MIGRATION_DATABASE_URL"}
    return printed


async def whoami(url: str) -> str:
    """As the server connects: asyncpg, with the URL as printed."""
    conn = await asyncpg.connect(url)
    try:
        return str(await conn.fetchval("SELECT current_user"))
    finally:
        await conn.close()


def password_of(url: str) -> str:
    password = urlsplit(url).password
    assert password, f"no password in the printed URL of {urlsplit(url).username}"
    return unquote(password)


def test_sets_prints_and_stores_scram_passwords_for_both_roles(
    cluster: PrivateCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    printed = bootstrap(capsys, cluster.admin_url, "generated")

    app, owner = printed["DATABASE_URL"], printed["MIGRATION_DATABASE_URL"]
    assert len(password_of(app)) >= 24
    assert len(password_of(owner)) >= 24
    assert password_of(app) != password_of(owner)
    # The printed URLs are all an operator needs: migrate as the owner, serve as the app.
    assert migrate.migrate(owner)
    assert asyncio.run(whoami(app)) == APP_ROLE
    with psycopg.connect(cluster.admin_url) as conn:
        stored = dict(
            conn.execute(
                "SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY(%s)",
                ([OWNER_ROLE, APP_ROLE],),
            ).fetchall()
        )
    assert all(v is not None and v.startswith("SCRAM-SHA-256$") for v in stored.values())


def test_takes_the_passwords_and_the_admin_password_from_the_environment(
    cluster: PrivateCluster, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Characters that must be escaped in a URL survive the round trip.
    monkeypatch.setenv("TENANTRY_OWNER_PASSWORD", "owner p@ss:w/rd%é")
    monkeypatch.setenv("TENANTRY_APP_PASSWORD", "app#pass?word&1")
    # The administrator's password the libpq way, not in the URL.
    monkeypatch.setenv("PGPASSWORD", cluster.password)

    printed = bootstrap(capsys, cluster.url(), "chosen")

    assert password_of(printed["MIGRATION_DATABASE_URL"]) == "owner p@ss:w/rd%é"
    assert password_of(printed["DATABASE_URL"]) == "app#pass?word&1"
    monkeypatch.delenv("PGPASSWORD")
    with psycopg.connect(printed["MIGRATION_DATABASE_URL"]) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (OWNER_ROLE,)
    assert asyncio.run(whoami(printed["DATABASE_URL"])) == APP_ROLE


def test_a_half_made_setup_completes_and_a_second_run_changes_nothing(
    cluster: PrivateCluster, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the first connection of an interrupted run leaves: roles and the database, but
    # not the grants made in the new database.
    with psycopg.connect(cluster.admin_url, autocommit=True) as conn:
        for role in (OWNER_ROLE, APP_ROLE):
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"CREATE DATABASE halfway OWNER {OWNER_ROLE}")
    monkeypatch.setenv("TENANTRY_OWNER_PASSWORD", "owner-password-1")
    monkeypatch.setenv("TENANTRY_APP_PASSWORD", "app-password-1")

    first = bootstrap(capsys, cluster.admin_url, "halfway")
    second = bootstrap(capsys, cluster.admin_url, "halfway")

    assert first == second
    with psycopg.connect(cluster.url(db="halfway", password=cluster.password)) as conn:
        temporary = conn.execute(
            "SELECT has_database_privilege(%s, 'halfway', 'TEMPORARY')", (APP_ROLE,)
        ).fetchone()
        schema_owner = conn.execute(
            "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'public'"
        ).fetchone()
    assert temporary == (False,)
    assert schema_owner == (OWNER_ROLE,)
    assert migrate.migrate(first["MIGRATION_DATABASE_URL"])
    assert asyncio.run(whoami(first["DATABASE_URL"])) == APP_ROLE
