"""The pool's use as the metrics report it: connections in use, and sessions waiting."""

from __future__ import annotations

import asyncio

from app.core.db import Database
from tests.conftest import TestDatabase


async def test_a_session_waiting_for_the_only_connection_is_counted(test_db: TestDatabase) -> None:
    database = await Database.connect(
        test_db.urls.app, min_size=1, max_size=1, statement_timeout_ms=5000
    )
    try:
        idle = database.pool_usage()
        holder = database.session(None, readonly=True)
        await holder.fetchval("SELECT 1")
        waiter = database.session(None, readonly=True)
        waiting = asyncio.create_task(waiter.fetchval("SELECT 2"))
        while database.pool_usage().waiting == 0:
            assert not waiting.done()
            await asyncio.sleep(0)  # let the waiter reach the pool (no time passes)
        busy = database.pool_usage()
        await holder.close(commit=True)
        assert await waiting == 2
        await waiter.close(commit=True)
        done = database.pool_usage()
    finally:
        await database.close()

    assert (idle.in_use, idle.waiting, idle.max_size) == (0, 0, 1)
    assert (busy.in_use, busy.waiting) == (1, 1)
    assert (done.in_use, done.waiting) == (0, 0)
