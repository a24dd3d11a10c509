"""`tenantry serve` as operators run it: JSON log lines on stderr (uvicorn's included, its
access log replaced by ours), and metrics shared by every process of one
PROMETHEUS_MULTIPROC_DIR, as several workers will be."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.app_fixtures import free_port
from tests.conftest import TestDatabase

QUERY = {"query": "query Ping { __typename }"}


@dataclass
class Process:
    base: str
    process: subprocess.Popen[bytes]
    stderr: Path

    def lines(self) -> list[str]:
        return self.stderr.read_text().splitlines()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)


def start(test_db: TestDatabase, data_dir: Path, metrics_dir: Path) -> Process:
    """`tenantry serve` on the test database, JSON logs, metrics in `metrics_dir`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TENANTRY_", "OTEL_"))}
    env.pop("REDIS_URL", None)
    env.update(
        DATABASE_URL=test_db.urls.app,
        MIGRATION_DATABASE_URL=test_db.urls.owner,
        TENANTRY_DATA_DIR=str(data_dir),
        TENANTRY_LOG_FORMAT="json",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    port = free_port()
    stderr = data_dir / "stderr.log"
    with stderr.open("wb") as err:
        process = subprocess.Popen(  # noqa: S603 (our own CLI)
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    return Process(f"http://127.0.0.1:{port}", process, stderr)


def wait_ready(served: Process) -> None:
    deadline = time.monotonic() + 60
    while True:
        if served.process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"not ready:\n{served.stderr.read_text()}")
        try:
            if httpx.get(f"{served.base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)


@contextmanager
def serving(test_db: TestDatabase, tmp_path: Path, *names: str) -> Iterator[list[Process]]:
    """One `tenantry serve` per name, started together, sharing one metrics directory."""
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    processes: list[Process] = []
    try:
        for name in names:
            (tmp_path / name).mkdir()
            processes.append(start(test_db, tmp_path / name, metrics_dir))
        for served in processes:
            wait_ready(served)
        yield processes
    finally:
        for served in processes:
            served.stop()


def metric(base: str, name: str, **labels: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def test_two_processes_log_json_and_share_their_metrics(
    test_db: TestDatabase, tmp_path: Path
) -> None:
    with serving(test_db, tmp_path, "a", "b") as (a, b):
        for base, times in ((a.base, 3), (b.base, 2)):
            for _ in range(times):
                assert httpx.post(f"{base}/graphql", json=QUERY).status_code == 200

        posts = "tenantry_http_request_duration_seconds_count"
        # Either process answers for both.
        assert metric(a.base, posts, route="/graphql", method="POST") == 5
        assert metric(b.base, posts, route="/graphql", method="POST") == 5
        pool_max = "tenantry_db_pool_connections"
        assert metric(a.base, pool_max, state="max") == 20
        b.stop()
        # A stopped process's requests still count; its pool no longer does.
        assert metric(a.base, posts, route="/graphql", method="POST") == 5
        assert metric(a.base, pool_max, state="max") == 10

    lines = a.lines()
    parsed: list[dict[str, Any]] = [json.loads(line) for line in lines]
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in parsed)
    # uvicorn's own lines come through the same handler; its access log is ours.
    assert any(line["logger"].startswith("uvicorn") for line in parsed)
    access = [line for line in parsed if line.get("event") == "request"]
    assert [(line["path"], line["operation_name"]) for line in access] == [("/graphql", "Ping")] * 3
    assert not any("HTTP/1.1" in line for line in lines)
