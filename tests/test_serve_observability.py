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
from contextlib import ExitStack, contextmanager
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


@contextmanager
def serving(test_db: TestDatabase, data_dir: Path, metrics_dir: Path) -> Iterator[Process]:
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
    served = Process(f"http://127.0.0.1:{port}", process, stderr)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"not ready:\n{stderr.read_text()}")
            try:
                if httpx.get(f"{served.base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield served
    finally:
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
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with ExitStack() as stack:
        a = stack.enter_context(serving(test_db, tmp_path / "a", metrics_dir))
        b = stack.enter_context(serving(test_db, tmp_path / "b", metrics_dir))
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
