"""A connection lost during COMMIT: the answer is COMMIT_OUTCOME_UNKNOWN (never a plain
failure, never success), and a retry with the same idempotency key finds out which it was.

A proxy between the server and PostgreSQL cuts the connection exactly at the COMMIT of the
mutation's transaction: after the server committed (the row exists, the answer is lost) or
before the COMMIT reached it (nothing was saved). Both get the same answer; the retry with
the key then returns the stored result in the first case, and creates the task once in the
second.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from app.core.db import Database
from app.core.security import TokenService
from app.core.settings import Settings
from tests.app_fixtures import Org, new_org, start_server, stop_server
from tests.conftest import TestDatabase
from tests.resilience.pgproxy import CommitCutter, Cut

CREATE_PROJECT = """
mutation ($name: String!) { createProject(input: {name: $name}) { project { id } errors { code } } }
"""
CREATE_TASK = """
mutation ($input: CreateTaskInput!) {
  createTask(input: $input) { task { id title } errors { code message field } }
}"""


@dataclass
class CutServer:
    proxy: CommitCutter
    database: Database
    http: httpx.AsyncClient
    # The cut to make at the next read-write COMMIT the server sends.
    next_cut: Cut | None = None

    async def post(self, query: str, variables: dict[str, Any], org: Org, key: str | None) -> Any:
        headers = {"authorization": f"Bearer {org.token}"}
        if key is not None:
            headers["idempotency-key"] = key
        return await self.http.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )


@pytest.fixture
async def cut_server(test_db: TestDatabase, app_settings: Settings) -> AsyncIterator[CutServer]:
    upstream = urlsplit(test_db.urls.app)
    proxy = CommitCutter(upstream.hostname or "127.0.0.1", upstream.port or 5432)
    await proxy.start()
    database = await Database.connect(
        proxy.url(test_db.urls.app), min_size=1, max_size=2, statement_timeout_ms=5000
    )
    server, url = await start_server(app_settings, database)
    http = httpx.AsyncClient(base_url=url, timeout=30)
    made = CutServer(proxy, database, http)

    def cut_now() -> None:
        # Called just before a read-write transaction sends COMMIT (app/core/db.py).
        if made.next_cut is not None:
            proxy.arm(made.next_cut)
            made.next_cut = None

    database.commit_listeners.append(cut_now)
    try:
        yield made
    finally:
        await http.aclose()
        await stop_server(server)
        await database.close()
        await proxy.close()


async def tasks_titled(database: Database, org: Org, title: str) -> list[str]:
    async with database.transaction(org.id, readonly=True) as session:
        rows = await session.fetch("SELECT id FROM tasks WHERE title = $1", title)
    return [str(r["id"]) for r in rows]


def assert_outcome_unknown(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    body = response.json()
    assert body.get("data") is None
    [error] = body["errors"]
    assert error["extensions"] == {
        "code": "COMMIT_OUTCOME_UNKNOWN",
        "retryAfter": int(response.headers["retry-after"]),
        "requestId": response.headers["x-request-id"],
    }
    assert "closed" not in error["message"]  # no driver text ("connection was closed ...")


@pytest.fixture
async def project(cut_server: CutServer, database: Database, tokens: TokenService) -> Any:
    org = await new_org(database, tokens)
    response = await cut_server.post(CREATE_PROJECT, {"name": "Commits"}, org, None)
    return org, response.json()["data"]["createProject"]["project"]["id"]


async def test_a_commit_whose_answer_was_lost_is_unknown_and_the_retry_returns_it(
    cut_server: CutServer, database: Database, project: Any
) -> None:
    # given
    org, project_id = project
    title, key = f"Saved {secrets.token_hex(3)}", secrets.token_hex(16)
    variables = {"input": {"projectId": project_id, "title": title}}

    # when the connection is cut after PostgreSQL committed, before the answer came back
    cut_server.next_cut = Cut.AFTER_COMMIT
    lost = await cut_server.post(CREATE_TASK, variables, org, key)

    # then the client is told the outcome is unknown, though the task was saved
    assert cut_server.proxy.cuts == [Cut.AFTER_COMMIT]
    assert_outcome_unknown(lost)
    [saved] = await tasks_titled(database, org, title)

    # and the retry with the same key answers the saved task, creating nothing
    retry = await cut_server.post(CREATE_TASK, variables, org, key)
    assert retry.status_code == 200
    assert retry.headers["idempotent-replayed"] == "true"
    task = retry.json()["data"]["createTask"]["task"]
    assert task["title"] == title
    assert await tasks_titled(database, org, title) == [saved]


async def test_a_commit_that_never_reached_the_database_is_unknown_and_the_retry_runs(
    cut_server: CutServer, database: Database, project: Any
) -> None:
    # given
    org, project_id = project
    title, key = f"Lost {secrets.token_hex(3)}", secrets.token_hex(16)
    variables = {"input": {"projectId": project_id, "title": title}}

    # when the connection is cut as the COMMIT is sent, so PostgreSQL never gets it
    cut_server.next_cut = Cut.BEFORE_COMMIT
    lost = await cut_server.post(CREATE_TASK, variables, org, key)

    # then the same answer (the server cannot tell the two apart), and nothing was saved
    assert cut_server.proxy.cuts == [Cut.BEFORE_COMMIT]
    assert_outcome_unknown(lost)
    assert await tasks_titled(database, org, title) == []

    # and the retry with the same key runs: the task exists once
    retry = await cut_server.post(CREATE_TASK, variables, org, key)
    assert retry.status_code == 200
    assert "idempotent-replayed" not in retry.headers
    assert retry.json()["data"]["createTask"]["errors"] == []
    assert len(await tasks_titled(database, org, title)) == 1


async def test_without_a_key_the_unknown_outcome_is_still_never_reported_as_a_failure(
    cut_server: CutServer, database: Database, project: Any
) -> None:
    org, project_id = project
    title = f"Unkeyed {secrets.token_hex(3)}"
    cut_server.next_cut = Cut.AFTER_COMMIT
    lost = await cut_server.post(
        CREATE_TASK, {"input": {"projectId": project_id, "title": title}}, org, None
    )
    assert_outcome_unknown(lost)
    assert len(await tasks_titled(database, org, title)) == 1
