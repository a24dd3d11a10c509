"""Readiness (GET /readyz): each dependency checked within its own short budget, with its
latency, so a probe answers in time even while a dependency hangs.

The database must answer and carry at least the schema this code needs (a newer one is
fine: old servers keep running while a deploy migrates ahead of them); without it the server
is not ready (503). The store may be down: Redis is optional at run time, so the server is
then ready but "degraded". So may the read replica, when there is one: queries then read
from the primary; its report says how many bytes of WAL it has still to replay.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from app.core.db import Database
from app.core.store import Store


async def _timed(budget_s: float, check: Any) -> tuple[Any, float, str | None]:
    """(the check's value, its latency in ms, None) or (None, latency, why it failed)."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(budget_s):
            value = await check
    except TimeoutError:
        return None, _ms(started), "timeout"
    except Exception as exc:
        # The class only: this answer may be public, and driver messages name hosts.
        return None, _ms(started), type(exc).__name__
    return value, _ms(started), None


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


async def _database(database: Database, expected: str, budget_s: float) -> dict[str, Any]:
    version, latency, failure = await _timed(budget_s, database.schema_version())
    check: dict[str, Any] = {"latencyMs": latency, "expectedSchema": expected}
    if failure is not None:
        return {"status": "unavailable", "error": failure, **check}
    check["schema"] = version
    if version is None or version < expected:
        return {"status": "schema-behind", **check}
    return {"status": "ok", **check}


async def _store(store: Store, budget_s: float) -> dict[str, Any]:
    backend = "redis" if store.shared else "memory"
    _, latency, failure = await _timed(budget_s, store.ping())
    if failure is not None:
        return {"status": "degraded", "backend": backend, "error": failure, "latencyMs": latency}
    return {"status": "ok", "backend": backend, "latencyMs": latency}


async def _replica(database: Database, replica: Database, budget_s: float) -> dict[str, Any]:
    # Read at about the same moment; a standby never replays past its primary.
    positions = asyncio.gather(database.wal_position(), replica.wal_position())
    found, latency, failure = await _timed(budget_s, positions)
    if failure is not None:
        return {"status": "degraded", "error": failure, "latencyMs": latency}
    primary, replayed = found
    return {"status": "ok", "behindBytes": max(0, primary - replayed), "latencyMs": latency}


async def readiness(
    database: Database, store: Store, *, expected_schema: str, timeout_ms: int
) -> tuple[bool, dict[str, Any]]:
    """Whether the server is ready, and the report: overall status and each check."""
    budget = timeout_ms / 1000
    checks = [_database(database, expected_schema, budget), _store(store, budget)]
    if database.replica is not None:
        checks.append(_replica(database, database.replica, budget))
    db_check, store_check, *replica_check = await asyncio.gather(*checks)
    ready = db_check["status"] == "ok"
    report = {"database": db_check, "store": store_check}
    if replica_check:
        report["replica"] = replica_check[0]
    healthy = all(check["status"] == "ok" for check in report.values())
    status = "unavailable" if not ready else "ok" if healthy else "degraded"
    return ready, {"status": status, "checks": report}
