"""A private PostgreSQL cluster for fault tests: initdb and pg_ctl on a free port.

Fault tests stop, kill and restart PostgreSQL; they must never touch the machine's shared
server, so each module that needs it starts a cluster of its own in a temporary directory,
bootstrapped and migrated with the project's own code (app/core/dbadmin.py, migrate.py). As
root (CI containers), the server runs as the `postgres` OS user, as PostgreSQL requires.

Without the binaries a test fails under CI=true and is skipped elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from glob import glob
from pathlib import Path

import pytest

from app.core import dbadmin, migrate
from app.core.dbadmin import DatabaseUrls

DATABASE = "tenantry"


def _binary(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        message = f"{name} (PostgreSQL server binaries) is needed for fault tests"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PrivateCluster:
    """A cluster of the test's own; `urls` are the Tenantry roles on its migrated database."""

    root: Path
    port: int
    urls: DatabaseUrls | None = None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(  # noqa: S603 (fixed binaries, arguments of our own)
            command, check=check, capture_output=True, text=True, cwd=self.root
        )

    def init(self) -> None:
        self._run(
            _binary("initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        # The OS never crashes under these tests, only PostgreSQL is stopped: WAL in the page
        # cache survives `pg_ctl stop -m immediate`, so fsync buys nothing but time.
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\nfsync = off\n"
                "max_connections = 50\n"
            )

    def start(self) -> None:
        """Start (or restart after a stop) and wait until it accepts connections."""
        self._run(_binary("pg_ctl"), "start", "-w", "-D", str(self.data_dir), "-l", str(self.log))

    def stop(self, mode: str = "fast") -> None:
        """`pg_ctl stop -m <mode>`, waiting until the server has exited."""
        self._run(_binary("pg_ctl"), "stop", "-w", "-m", mode, "-D", str(self.data_dir))

    def signal_stop(self, mode: str = "immediate") -> None:
        """`pg_ctl stop -m <mode>` without waiting: the signal is sent when this returns."""
        self._run(_binary("pg_ctl"), "stop", "-W", "-m", mode, "-D", str(self.data_dir))

    def wait_stopped(self) -> None:
        """Block until the server has exited (after `signal_stop`)."""
        # A second stop of a stopping server waits for it; "not running" is fine too.
        self._run(
            _binary("pg_ctl"),
            "stop",
            "-w",
            "-m",
            "immediate",
            "-D",
            str(self.data_dir),
            check=False,
        )

    @property
    def running(self) -> bool:
        done = self._run(_binary("pg_ctl"), "status", "-D", str(self.data_dir), check=False)
        return done.returncode == 0

    @property
    def log(self) -> Path:
        return self.root / "server.log"


@contextlib.contextmanager
def private_cluster() -> Iterator[PrivateCluster]:
    """A started, bootstrapped and migrated cluster, deleted afterwards."""
    _binary("initdb")
    root = Path(tempfile.mkdtemp(prefix="tenantry-pg-"))
    if os.geteuid() == 0:
        # The server runs as `postgres` and owns its directory (and the socket in it).
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
    cluster = PrivateCluster(root, _free_port())
    try:
        cluster.init()
        cluster.start()
        cluster.urls = dbadmin.bootstrap(cluster.admin_url, DATABASE)
        migrate.migrate(cluster.urls.owner)
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            if cluster.running:
                cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
