"""GET /readyz names each check with its latency, answers within its own budget, and is
503 only when the database is not usable; /healthz stays trivial.

The store (Redis) may be frozen (SIGSTOP: connections are accepted, nothing is answered):
readiness then says "degraded" after its budget instead of hanging. The database may carry
an older schema than the code needs (one migration rolled back): not ready.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import httpx
import pytest

from app.core import migrate
from app.core.db import Database
from app.core.settings import Settings
from tests.app_fixtures import free_port, start_server, stop_server
from tests.conftest import TestDatabase

LATEST = migrate.known_versions()[-1]


@contextmanager
def frozen_redis() -> Iterator[str]:
    """A private redis-server, stopped with SIGSTOP once it listens: it accepts connections
    and never answers. Yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server is needed for the frozen-Redis test"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 (a fixed binary, arguments of our own)
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        _until_listening(port)
        os.kill(process.pid, signal.SIGSTOP)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        os.kill(process.pid, signal.SIGCONT)
        process.terminate()
        process.wait()


def _until_listening(port: int) -> None:
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return


async def _ready(settings: Settings, database: Database) -> tuple[int, dict[str, Any]]:
    server, url = await start_server(settings, database)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            response = await client.get("/readyz")
    finally:
        await stop_server(server)
    return response.status_code, response.json()


async def test_ready_names_each_check_with_its_latency(http: httpx.AsyncClient) -> None:
    response = await http.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    database, store = body["checks"]["database"], body["checks"]["store"]
    assert database == {
        "status": "ok",
        "schema": LATEST,
        "expectedSchema": LATEST,
        "latencyMs": database["latencyMs"],
    }
    assert database["latencyMs"] >= 0
    backend = "redis" if os.environ.get("REDIS_URL") else "memory"
    assert store == {"status": "ok", "backend": backend, "latencyMs": store["latencyMs"]}


async def test_health_stays_trivial(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_a_frozen_store_is_degraded_within_the_budget_not_a_hang(
    app_settings: Settings, database: Database
) -> None:
    with frozen_redis() as url:
        settings = replace(app_settings, redis_url=url, ready_timeout_ms=200)
        status, body = await _ready(settings, database)

    # ready (Redis is optional at run time), but degraded: the check ran out of its budget
    assert status == 200
    assert body["status"] == "degraded"
    assert body["checks"]["database"]["status"] == "ok"
    store = body["checks"]["store"]
    assert (store["status"], store["backend"], store["error"]) == ("degraded", "redis", "timeout")


@pytest.fixture
async def rewound_database(scratch_db: TestDatabase) -> AsyncIterator[Database]:
    """A database one migration behind the code."""
    assert migrate.rollback_last(scratch_db.urls.owner) == LATEST
    database = await Database.connect(
        scratch_db.urls.app, min_size=1, max_size=2, statement_timeout_ms=5000
    )
    try:
        yield database
    finally:
        await database.close()


async def test_a_database_behind_the_codes_schema_is_not_ready(
    app_settings: Settings, rewound_database: Database
) -> None:
    status, body = await _ready(app_settings, rewound_database)

    assert status == 503
    assert body["status"] == "unavailable"
    database = body["checks"]["database"]
    assert database["status"] == "schema-behind"
    assert database["schema"] == migrate.known_versions()[-2]
    assert database["expectedSchema"] == LATEST
