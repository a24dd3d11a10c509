"""Signed-in requests while Redis is frozen or dead: answered from process memory after the
breaker opens (three calls waited one budget each, none after), limits still bound, readiness
says degraded, one log line when the outage starts and one when it ends.

The server uses a private redis-server this test starts, freezes (SIGSTOP), resumes and
kills; nothing is timed: the breaker's counts say how many calls reached Redis.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest

from app.core.db import Database
from app.core.security import TokenService
from app.core.settings import Settings
from app.core.store import Store
from app.tenants.plans import PLANS
from tests.app_fixtures import GraphQL, Org, new_org, start_server, stop_server
from tests.redis_server import PrivateRedis, private_redis

PING = "{ viewer { id } }"
FAILURES_TO_OPEN = 3


@pytest.fixture
async def served(
    app_settings: Settings, database: Database, gql: GraphQL
) -> AsyncIterator[tuple[GraphQL, Store, PrivateRedis]]:
    """A server of its own on a private Redis, with the default budget (after the shared
    server, `gql`, which creates the key files)."""
    with private_redis() as redis_server:
        settings = replace(
            app_settings,
            redis_url=redis_server.url,
            redis_timeout_ms=Settings.redis_timeout_ms,
            redis_failures_to_open=FAILURES_TO_OPEN,
            # a probe may start at any call while open: the test awaits it
            redis_retry_ms=0,
        )
        server, url = await start_server(settings, database)
        try:
            store: Store = server.config.app.state.store
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                yield GraphQL(client), store, redis_server
        finally:
            await stop_server(server)


async def _recover(gql: GraphQL, org: Org, store: Store) -> None:
    for _ in range(5):
        if not store.breaker.is_open:
            return
        # (a bypassed call starts a probe; this user may be over their rate meanwhile)
        await gql.post(PING, token=org.token)
        probe = store.breaker.probing
        if probe is not None:
            await probe
    assert not store.breaker.is_open


async def test_requests_keep_answering_through_a_frozen_then_dead_redis(
    served: tuple[GraphQL, Store, PrivateRedis],
    database: Database,
    tokens: TokenService,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gql, store, redis_server = served
    org = await new_org(database, tokens, members=1, plan="free")
    assert (await gql.post(PING, token=org.token)).status_code == 200
    caplog.set_level(logging.WARNING, logger="tenantry.breaker")

    # when Redis freezes, twenty requests come
    redis_server.freeze()
    try:
        frozen = [await gql.post(PING, token=org.token) for _ in range(20)]
        ready = await gql.http.get("/readyz")
    finally:
        redis_server.resume()

    # then every one was answered; at most three calls waited a budget (fewer when a write
    # failed: that opens the breaker at once), the rest never asked Redis
    assert [r.status_code for r in frozen] == [200] * 20
    assert [r.json()["data"]["viewer"] is not None for r in frozen] == [True] * 20
    failures = store.breaker.stats.failures
    assert 1 <= failures <= FAILURES_TO_OPEN
    assert store.breaker.stats.opened == 1
    assert store.breaker.stats.bypassed >= 20
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"

    # and when it is killed outright, requests still answer, and the user's rate (60 a
    # minute on free) still bounds them, counted in this process's memory
    redis_server.kill()
    per_user = PLANS["free"].user_requests_per_minute
    assert per_user is not None
    statuses = [(await gql.post(PING, token=org.token)).status_code for _ in range(2 * per_user)]
    assert 429 in statuses
    assert statuses.index(429) <= per_user + 5
    assert store.breaker.stats.failures == failures

    # and once Redis is back, the breaker closes by itself and Redis is used again
    redis_server.start()
    await _recover(gql, org, store)
    # (the restarted Redis lost the buckets: this user's is full again)
    assert (await gql.post(PING, token=org.token)).status_code == 200
    assert store.breaker.stats.closed == 1

    # one line when the outage started, one when it ended
    lines = [r.getMessage() for r in caplog.records if r.name == "tenantry.breaker"]
    assert len(lines) == 2, lines
    assert lines[0].startswith("Redis unavailable")
    assert lines[1].startswith("Redis available again")
