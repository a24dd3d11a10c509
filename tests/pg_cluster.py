"""Private PostgreSQL clusters: initdb and pg_ctl on free ports, the one helper of the suite.

Tests that stop, kill or restart PostgreSQL, that need it to ask for passwords, or that need
a primary with a hot standby must never touch the machine's shared server, so each module
that needs one starts a cluster of its own in a temporary directory:

- `private_cluster()`: trusting local connections, bootstrapped and migrated with the
  project's own code (app/core/dbadmin.py, migrate.py): the fault tests' cluster.
- `private_cluster(password=…, bootstrap=False)`: asking every connection for a password
  (scram-sha-256), as a managed or production server does; nothing created in it yet.
- `cluster.standby()`: a hot standby streaming from the cluster (pg_basebackup -R).

As root (CI containers), the servers run as the `postgres` OS user, as PostgreSQL requires.
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
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import quote

import pytest

from app.core import dbadmin, migrate
from app.core.dbadmin import DatabaseUrls

DATABASE = "tenantry"
SUPERUSER = "postgres"


def _binary(name: str) -> str:
    """On PATH, or where Debian's packages put them (not on PATH by default)."""
    found = shutil.which(name)
    if found is None:
        versions = sorted(
            Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3])
        )
        found = str(versions[-1]) if versions else None
    if found is None:
        message = f"{name} (PostgreSQL server binaries) is needed for private clusters"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _private_root(prefix: str) -> Path:
    """A directory outside pytest's tmp tree (its root is 0700), owned by the server user."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    if os.geteuid() == 0:
        user = pwd.getpwnam(SUPERUSER)
        os.chown(root, user.pw_uid, user.pw_gid)
    return root


@dataclass
class PrivateCluster:
    """A cluster of the test's own. `password`: the superuser's (None: trust); `urls`: the
    Tenantry roles on its migrated database, once bootstrapped."""

    root: Path
    port: int
    password: str | None = None
    urls: DatabaseUrls | None = None
    standbys: list[PrivateCluster] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def url(
        self, *, user: str = SUPERUSER, password: str | None = None, db: str = "postgres"
    ) -> str:
        credentials = user if password is None else f"{user}:{quote(password, safe='')}"
        return f"postgresql://{credentials}@127.0.0.1:{self.port}/{db}"

    @property
    def admin_url(self) -> str:
        """The superuser, with its password when the cluster asks for one."""
        return self.url(password=self.password)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if os.geteuid() == 0:
            command = ["runuser", "-u", SUPERUSER, "--", *command]
        return subprocess.run(  # noqa: S603 (fixed binaries, arguments of our own)
            command, check=check, capture_output=True, text=True, cwd=self.root
        )

    def init(self) -> None:
        auth = ["--auth=trust"]
        if self.password is not None:
            pwfile = self.root / "password"
            pwfile.write_text(self.password + "\n", encoding="utf-8")
            if os.geteuid() == 0:
                user = pwd.getpwnam(SUPERUSER)
                os.chown(pwfile, user.pw_uid, user.pw_gid)
            auth = ["--auth=scram-sha-256", f"--pwfile={pwfile}"]
        self._run(
            _binary("initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            *auth,
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        )
        # The OS never crashes under these tests, only PostgreSQL is stopped: WAL in the page
        # cache survives `pg_ctl stop -m immediate`, so fsync buys nothing but time.
        # wal_level=replica and the replication lines initdb writes to pg_hba.conf let a
        # standby stream from it.
        self._configure("fsync = off\nmax_connections = 50\nwal_level = replica\n")

    def _configure(self, extra: str = "") -> None:
        """Its own port and socket directory (the last setting in the file wins)."""
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\n{extra}"
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

    def standby(self) -> PrivateCluster:
        """A started hot standby of this (trusting) cluster on a port of its own, streaming
        from it: a copy by pg_basebackup -R (standby.signal, primary_conninfo). Its `urls`
        are this cluster's roles and database on the standby's port. Stopped and deleted
        with this cluster."""
        copy = PrivateCluster(_private_root("tenantry-standby-"), _free_port())
        copy.urls = None if self.urls is None else _on_port(self.urls, self.port, copy.port)
        self.standbys.append(copy)
        self._run(
            _binary("pg_basebackup"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            SUPERUSER,
            "-D",
            str(copy.data_dir),
            "-R",
            "--wal-method=stream",
            "--checkpoint=fast",
            "--no-sync",
        )
        copy._configure()
        copy.start()
        return copy

    def discard(self) -> None:
        """Stop (immediately) and delete this cluster and its standbys."""
        for standby in self.standbys:
            standby.discard()
        with contextlib.suppress(subprocess.CalledProcessError):
            if self.data_dir.exists() and self.running:
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def _on_port(urls: DatabaseUrls, old: int, new: int) -> DatabaseUrls:
    return replace(
        urls,
        app=urls.app.replace(f":{old}/", f":{new}/", 1),
        owner=urls.owner.replace(f":{old}/", f":{new}/", 1),
    )


@contextlib.contextmanager
def private_cluster(
    *, password: str | None = None, bootstrap: bool = True
) -> Iterator[PrivateCluster]:
    """A started cluster, deleted afterwards; with `bootstrap`, its Tenantry roles and
    migrated database made (`urls`)."""
    _binary("initdb")
    cluster = PrivateCluster(_private_root("tenantry-pg-"), _free_port(), password=password)
    try:
        cluster.init()
        cluster.start()
        if bootstrap:
            cluster.urls = dbadmin.bootstrap(cluster.admin_url, DATABASE)
            migrate.migrate(cluster.urls.owner)
        yield cluster
    finally:
        cluster.discard()
