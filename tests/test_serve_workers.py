"""Many server processes: each is stateless between requests, so two `tenantry serve`
processes on one database and one Redis behave as one server (a session signed out on one is
refused by the other; a rate limit counts the requests of both), and `--workers N` runs N
of them behind one port."""

from __future__ import annotations

import os
import secrets
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

from app.core.db import Database
from app.core.security import TokenService
from app.core.settings import Settings
from tests.app_fixtures import SHARED_REDIS_TIMEOUT_MS, free_port, new_org
from tests.conftest import TestDatabase
from tests.test_serve_observability import metric

VIEWER = {"query": "query Me { viewer { email } }"}
SIGN_OUT = {"query": "mutation Out { signOut { revokedSessions errors { code } } }"}
TYPENAME = {"query": "query Ping { __typename }"}


def _redis_url() -> str:
    url = os.environ.get("REDIS_URL")
    if not url:
        # CI sets it: many processes are only correct with a shared store.
        pytest.fail("REDIS_URL is not set: these tests need the shared Redis")
    return url


@dataclass
class Served:
    base: str
    process: subprocess.Popen[bytes]
    output: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _environment(test_db: TestDatabase, settings: Settings, data_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TENANTRY_", "OTEL_", "PROMETHEUS_"))
    }
    env.update(
        DATABASE_URL=test_db.urls.app,
        MIGRATION_DATABASE_URL=test_db.urls.owner,
        REDIS_URL=_redis_url(),
        TENANTRY_DATA_DIR=str(data_dir),
        # The test's TokenService signs with these keys; every process verifies with them.
        TENANTRY_SIGNING_KEYS_FILE=str(settings.keys_file),
        # Each test's requests come from addresses of its own (X-Forwarded-For, believed
        # from 127.0.0.1): no run sees a previous run's counts in the shared Redis.
        TENANTRY_FORWARDED_ALLOW_IPS="127.0.0.1",
        TENANTRY_ANONYMOUS_BURST="3",
        TENANTRY_ANONYMOUS_PER_MINUTE="1",
        # A loaded machine must not open the store's circuit breaker (each process would
        # then fall back to its own memory, which is what this test must not measure).
        TENANTRY_REDIS_TIMEOUT_MS=str(SHARED_REDIS_TIMEOUT_MS),
    )
    return env


def _start(env: dict[str, str], data_dir: Path, *extra: str) -> Served:
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    output = data_dir / "output.log"
    with output.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 (our own CLI)
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port), *extra],
            env=env | {"TENANTRY_DATA_DIR": str(data_dir)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    served = Served(f"http://127.0.0.1:{port}", process, output)
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            served.stop()
            pytest.fail(f"not ready:\n{output.read_text()}")
        try:
            if httpx.get(f"{served.base}/readyz", timeout=2).status_code == 200:
                return served
        except httpx.TransportError:
            pass
        time.sleep(0.1)


@contextmanager
def serving(env: dict[str, str], tmp_path: Path, count: int) -> Iterator[list[Served]]:
    processes: list[Served] = []
    try:
        for n in range(count):
            processes.append(_start(env, tmp_path / f"server-{n}"))
        yield processes
    finally:
        for served in processes:
            served.stop()


def _address() -> dict[str, str]:
    return {"x-forwarded-for": f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.7"}


def _post(base: str, body: dict[str, str], **headers: str) -> httpx.Response:
    return httpx.post(f"{base}/graphql", json=body, headers=headers, timeout=30)


async def test_two_processes_share_revocations_and_rate_limits(
    test_db: TestDatabase,
    app_settings: Settings,
    database: Database,
    tokens: TokenService,
    tmp_path: Path,
) -> None:
    org = await new_org(database, tokens)
    env = _environment(test_db, app_settings, tmp_path)
    with serving(env, tmp_path, 2) as (a, b):
        bearer = {"authorization": f"Bearer {org.token}"}
        # given: the session is valid on both (each process has now seen it once)
        for served in (a, b):
            response = _post(served.base, VIEWER, **bearer)
            assert response.json()["data"]["viewer"]["email"] == org.members[0].email

        # when: it is signed out on one
        out = _post(a.base, SIGN_OUT, **bearer).json()["data"]["signOut"]
        assert out["errors"] == []

        # then: the other refuses it too
        refused = _post(b.base, VIEWER, **bearer)
        assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

        # and: one address's anonymous requests count once, whichever process answers
        address = _address()
        answers = [_post(s.base, TYPENAME, **address).status_code for s in (a, b, a, b)]
        assert answers == [200, 200, 200, 429]


def test_workers_serve_one_port_from_several_processes(
    test_db: TestDatabase, app_settings: Settings, tmp_path: Path
) -> None:
    env = _environment(test_db, app_settings, tmp_path)
    served = _start(env, tmp_path / "workers", "--workers", "2")
    try:
        # Two worker processes under the supervisor, each with its own pool and heap.
        children = Path(f"/proc/{served.process.pid}/task/{served.process.pid}/children")
        workers = [pid for pid in children.read_text().split() if _is_worker(int(pid))]
        assert len(workers) == 2
        address = _address()
        answers = [_post(served.base, TYPENAME, **address).status_code for _ in range(4)]
        # Limits are counted in Redis, so the workers share them.
        assert answers == [200, 200, 200, 429]
        # Metrics from any worker count every worker's requests (a shared directory the
        # supervisor created, since none was given).
        posts = "tenantry_http_request_duration_seconds_count"
        assert metric(served.base, posts, route="/graphql", method="POST") == 4
    finally:
        served.stop()
    assert served.process.returncode == 0
    assert "2 worker processes" in served.output.read_text()


def _is_worker(pid: int) -> bool:
    """uvicorn's workers are spawned interpreters; multiprocessing's resource tracker is not
    one of them."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"resource_tracker" not in cmdline


def test_workers_without_redis_is_one_line(
    test_db: TestDatabase, app_settings: Settings, tmp_path: Path
) -> None:
    env = _environment(test_db, app_settings, tmp_path)
    del env["REDIS_URL"]
    result = subprocess.run(  # noqa: S603 (our own CLI)
        [sys.executable, "-m", "app.cli", "serve", "--port", str(free_port()), "--workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "configuration error: --workers 2 needs REDIS_URL: the processes share limits,"
        " revocations and caches through Redis"
    ]
