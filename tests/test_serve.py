"""README command 1, end to end: `tenantry serve --demo` on a fresh machine (no configuration).

Runs the real command in a subprocess with an empty data directory and no DATABASE_URL, so
it starts the embedded PostgreSQL, migrates, seeds the demo and serves; signs in over HTTP as
the printed instructions say, and stops it as a process manager would (SIGTERM).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.app_fixtures import free_port

SIGN_IN = re.compile(r'signIn\(input: \{tenant: "(\S+)", email: "(\S+)", password: "(\S+)"\}\)')
SIGN_IN_DOC = "mutation($i: SignInInput!) { signIn(input: $i) { accessToken } }"


@dataclass
class Served:
    base: str
    output: str = ""
    returncode: int | None = None


@contextmanager
def serving(data_dir: Path) -> Iterator[Served]:
    """`tenantry serve --demo` with nothing configured but the data directory."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "MIGRATION_DATABASE_URL", "REDIS_URL")
        and not k.startswith("TENANTRY_")
    }
    env["TENANTRY_DATA_DIR"] = str(data_dir)
    port = free_port()
    served = Served(f"http://127.0.0.1:{port}")
    started = time.monotonic()
    process = subprocess.Popen(  # noqa: S603 (our own CLI)
        [sys.executable, "-m", "app.cli", "serve", "--demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = started + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"not ready:\n{process.communicate()[0]}")
            try:
                if httpx.get(f"{served.base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield served
    finally:
        process.send_signal(signal.SIGTERM)
        served.output = process.communicate(timeout=30)[0]
        served.returncode = process.returncode


def sign_in_and_count_projects(base: str, tenant: str, email: str, password: str) -> int:
    variables = {"i": {"tenant": tenant, "email": email, "password": password}}
    body = httpx.post(f"{base}/graphql", json={"query": SIGN_IN_DOC, "variables": variables})
    token = body.json()["data"]["signIn"]["accessToken"]
    projects = httpx.post(
        f"{base}/graphql",
        json={"query": "{ projects { totalCount } }"},
        headers={"authorization": f"Bearer {token}"},
    )
    return int(projects.json()["data"]["projects"]["totalCount"])


def test_serve_demo_from_nothing(embedded_data_dir: Path) -> None:
    data_dir = embedded_data_dir / "data"

    with serving(data_dir) as served:
        page = httpx.get(f"{served.base}/graphql", headers={"accept": "text/html"})

    assert served.returncode == 0, served.output
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()
    assert f"GraphiQL: {served.base}/graphql" in served.output
    pgdata = data_dir / "postgres"
    assert (pgdata / "PG_VERSION").exists()
    # The embedded server stopped with the process: no postmaster left behind.
    assert not (pgdata / "postmaster.pid").exists()


def test_printed_sign_in_works_and_data_survives_a_restart(embedded_data_dir: Path) -> None:
    data_dir = embedded_data_dir / "data"
    with serving(data_dir) as first:
        pass
    printed = SIGN_IN.search(first.output)
    assert printed, first.output

    with serving(data_dir) as second:
        projects = sign_in_and_count_projects(second.base, *printed.groups())

    assert printed.groups() == ("demo", "alice@demo.example", "tenantry-demo-password")
    again = SIGN_IN.search(second.output)
    assert again
    assert again.groups() == printed.groups()
    assert projects == 3  # seeded once, kept across the restart
