"""A PostgreSQL cluster of a test's own, started with initdb and pg_ctl on a free port.

Unlike the CI machine's server (which trusts local connections), it asks for passwords
(scram-sha-256) on every connection, as a managed or production server does. As root, the
server runs as the `postgres` system user, which initdb requires.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.app_fixtures import free_port

SUPERUSER = "postgres"


@dataclass(frozen=True)
class PrivateCluster:
    """A running cluster: its superuser's password and how to reach it."""

    port: int
    password: str

    def url(
        self, *, user: str = SUPERUSER, password: str | None = None, db: str = "postgres"
    ) -> str:
        credentials = user if password is None else f"{user}:{password}"
        return f"postgresql://{credentials}@127.0.0.1:{self.port}/{db}"

    @property
    def admin_url(self) -> str:
        return self.url(password=self.password)


def _server_binary(name: str) -> str | None:
    """On PATH, or where Debian's packages put them (not on PATH by default)."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3])
    )
    return str(versions[-1]) if versions else None


def _as_server_user() -> dict[str, object]:
    """initdb and postgres refuse to run as root: run them as `postgres` when we are root."""
    if os.geteuid() != 0:
        return {}
    return {"user": SUPERUSER, "group": pwd.getpwnam(SUPERUSER).pw_gid}


@contextmanager
def private_cluster(password: str) -> Iterator[PrivateCluster]:
    """initdb with password authentication for every connection, then start it; stop and
    delete it afterwards."""
    # Outside pytest's tmp tree, whose root is 0700 (the server user must reach the files).
    root = Path(tempfile.mkdtemp(prefix="tenantry-pg-"))
    root.chmod(0o755)
    data = root / "data"
    pwfile = root / "password"
    pwfile.write_text(password + "\n", encoding="utf-8")
    as_user = _as_server_user()
    if as_user:
        info = pwd.getpwnam(SUPERUSER)
        os.chown(root, info.pw_uid, info.pw_gid)
        os.chown(pwfile, info.pw_uid, info.pw_gid)
    port = free_port()
    initdb, pg_ctl = _server_binary("initdb"), _server_binary("pg_ctl")
    # Never a skip: CI must have the PostgreSQL server binaries.
    assert initdb, "initdb (PostgreSQL server binaries) is needed"
    assert pg_ctl, "pg_ctl (PostgreSQL server binaries) is needed"
    try:
        subprocess.run(  # noqa: S603 (fixed arguments)
            [
                initdb,
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
            check=True,
            capture_output=True,
            **as_user,  # type: ignore[call-overload]
        )
        options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
        subprocess.run(  # noqa: S603
            [pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"],
            check=True,
            capture_output=True,
            **as_user,  # type: ignore[call-overload]
        )
        try:
            yield PrivateCluster(port=port, password=password)
        finally:
            subprocess.run(  # noqa: S603
                [pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
                check=False,
                capture_output=True,
                **as_user,  # type: ignore[call-overload]
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
