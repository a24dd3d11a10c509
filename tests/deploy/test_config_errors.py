"""Every configuration mistake an operator can make is one line on stderr and exit status 2.

Each case runs the real command in a process of its own, as an operator would, with nothing
configured but what the case sets (and a data directory of the test's own).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.cli import main
from tests.app_fixtures import free_port
from tests.conftest import TestDatabase
from tests.pg_cluster import PrivateCluster


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


def tenantry(tmp_path: Path, *argv: str, **env: str) -> Ran:
    """`tenantry ARGV` with only `env` configured (and the data directory in tmp_path)."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "MIGRATION_DATABASE_URL", "REDIS_URL", "PGPASSWORD")
        and not k.startswith("TENANTRY_")
    }
    clean["TENANTRY_DATA_DIR"] = str(tmp_path / "data")
    done = subprocess.run(  # noqa: S603 (our own CLI)
        [sys.executable, "-m", "app.cli", *argv],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


def one_line(ran: Ran) -> str:
    """The single line the operator sees; fails on a traceback or several lines."""
    assert ran.code == 2, ran
    assert "Traceback" not in ran.err
    assert ran.err.count("\n") == 1, ran.err
    return ran.err.rstrip("\n")


def closed_port() -> int:
    """A loopback port where nothing listens."""
    return free_port()


def test_a_malformed_database_url(tmp_path: Path) -> None:
    ran = tenantry(tmp_path, "admin", "list", DATABASE_URL="postgresql://app:secret@db:port/x")

    line = one_line(ran)
    assert line == "configuration error: DATABASE_URL is not a valid URL (check its host and port)"
    assert "secret" not in line


def test_a_port_out_of_range(tmp_path: Path) -> None:
    ran = tenantry(tmp_path, "serve", TENANTRY_PORT="99999")

    assert one_line(ran) == "configuration error: TENANTRY_PORT must be at most 65535, got 99999"


@pytest.mark.parametrize("argv", [("admin", "list"), ("tenant", "export", "acme")])
def test_an_unreachable_database(tmp_path: Path, argv: tuple[str, ...]) -> None:
    port = closed_port()

    ran = tenantry(tmp_path, *argv, DATABASE_URL=f"postgresql://tenantry_app@127.0.0.1:{port}/x")

    line = one_line(ran)
    assert line.startswith("cannot reach the database (DATABASE_URL): ")
    assert f"127.0.0.1', {port})" in line
    assert line.endswith("(Connection refused)")
    assert ran.out == ""


def test_a_data_directory_under_a_file(tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a directory\n", encoding="utf-8")
    data_dir = a_file / "tenantry"

    ran = tenantry(tmp_path, "admin", "list", TENANTRY_DATA_DIR=str(data_dir))

    assert one_line(ran) == (
        f"configuration error: cannot use {data_dir} (in TENANTRY_DATA_DIR {data_dir}):"
        " Not a directory"
    )


def test_a_wrong_server_role_password(
    cluster: PrivateCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TENANTRY_OWNER_PASSWORD", "owner-right")
        env.setenv("TENANTRY_APP_PASSWORD", "app-right")
        assert (
            main(["db", "bootstrap", "--admin-url", cluster.admin_url, "--database", "wrong"]) == 0
        )
    capsys.readouterr()
    owner = cluster.url(user="tenantry_owner", password="owner-right", db="wrong")
    wrong = cluster.url(user="tenantry_app", password="app-wrong", db="wrong")
    assert tenantry(tmp_path, "migrate", DATABASE_URL=wrong, MIGRATION_DATABASE_URL=owner).code == 0

    for argv in (("serve", "--port", str(free_port())), ("admin", "list")):
        ran = tenantry(tmp_path, *argv, DATABASE_URL=wrong, MIGRATION_DATABASE_URL=owner)

        assert one_line(ran) == (
            "the database refused DATABASE_URL:"
            ' password authentication failed for user "tenantry_app"'
        ), argv
        assert "Tenantry on" not in ran.out


def test_a_port_in_use_says_so_and_names_the_option(test_db: TestDatabase, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        ran = tenantry(
            tmp_path,
            "serve",
            "--port",
            str(port),
            DATABASE_URL=test_db.urls.app,
            MIGRATION_DATABASE_URL=test_db.urls.owner,
        )

    assert one_line(ran) == (
        f"configuration error: port {port} on 127.0.0.1 is already in use: stop what listens"
        " there, or choose another port with --port (or TENANTRY_PORT)"
    )
    # Nothing claims to be running.
    assert ran.out == ""


def test_version(tmp_path: Path) -> None:
    from importlib.metadata import version

    ran = tenantry(tmp_path, "--version")

    assert (ran.code, ran.out, ran.err) == (0, f"tenantry {version('tenantry')}\n", "")
