"""A real PgBouncer in transaction mode, started by a test (or a benchmark) on a free port.

PgBouncer is Debian's package (`pgbouncer`, installed by .ci/run). It runs in front of any
PostgreSQL the test names (the suite's server or a private cluster), with the settings
docs/scale-out.md recommends, and asks clients for a password (scram-sha-256) as a
production pooler does. As root (CI containers) it runs as the `postgres` system user:
PgBouncer refuses to run as root.

Without the binary a test fails under CI=true and is skipped elsewhere.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from tests.app_fixtures import free_port

# Every client connects to this database name; PgBouncer maps it onto the real one.
ALIAS = "tenantry"
_START_SECONDS = 30


@dataclass(frozen=True)
class Bouncer:
    """A running PgBouncer: where it listens and the passwords it accepts."""

    port: int
    passwords: dict[str, str]
    log: Path

    def url(self, user: str) -> str:
        """A client URL for `user` (one of `passwords`) through the pooler."""
        password = quote(self.passwords[user], safe="")
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{ALIAS}"


def find_pgbouncer() -> str | None:
    """Debian installs it in /usr/sbin, which is not on every PATH."""
    return shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(p, os.X_OK)), None
    )


def pgbouncer_binary() -> str:
    """The binary, or (in a test) a failure under CI=true and a skip elsewhere."""
    found = find_pgbouncer()
    if found is None:
        message = "pgbouncer (Debian's package) is needed for the transaction-pooler tests"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


def _config(
    upstream: str, *, port: int, root: Path, pool_size: int, query_wait_timeout: int
) -> str:
    parts = urlsplit(upstream)
    database = parts.path.lstrip("/")
    return f"""\
[databases]
{ALIAS} = host={parts.hostname} port={parts.port or 5432} dbname={database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {root / "userlist.txt"}
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 500
; Not sent in transaction mode anyway (server_reset_query_always = 0): the server leaves
; nothing on a connection beyond a transaction.
server_reset_query =
; How long a transaction may wait for a free server connection before it is refused.
query_wait_timeout = {query_wait_timeout}
"""


@contextmanager
def pgbouncer(
    upstream: str,
    passwords: dict[str, str],
    *,
    pool_size: int,
    query_wait_timeout: int = 20,
    binary: str | None = None,
) -> Iterator[Bouncer]:
    """PgBouncer in transaction mode in front of the database of `upstream` (a URL naming
    its host, port and database), with `pool_size` server connections per user; it logs
    into PostgreSQL with the client's password, so the upstream must accept it (or trust).
    `binary`: where it is (the benchmarks find it themselves), else found for a test."""
    binary = binary or pgbouncer_binary()
    root = Path(tempfile.mkdtemp(prefix="tenantry-pgbouncer-"))
    port = free_port()
    log = root / "pgbouncer.log"
    (root / "pgbouncer.ini").write_text(
        _config(
            upstream,
            port=port,
            root=root,
            pool_size=pool_size,
            query_wait_timeout=query_wait_timeout,
        ),
        encoding="utf-8",
    )
    # Plain passwords: PgBouncer checks the client's SCRAM proof against them and logs into
    # PostgreSQL with them.
    (root / "userlist.txt").write_text(
        "".join(f'"{user}" "{password}"\n' for user, password in passwords.items()),
        encoding="utf-8",
    )
    command = [binary, str(root / "pgbouncer.ini")]
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        for path in (root, *root.iterdir()):
            os.chown(path, user.pw_uid, user.pw_gid)
        command[1:1] = ["-u", "postgres"]
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 (a fixed binary, our own configuration)
            command, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        _wait_listening(port, process, log)
        yield Bouncer(port=port, passwords=dict(passwords), log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(root, ignore_errors=True)


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _START_SECONDS
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"pgbouncer did not start:\n{log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
