"""The fault test: PostgreSQL stopped (`pg_ctl stop -m immediate`) during the commits of
createTask under load, and restarted; clients retry with the same idempotency key.

At the end: no task twice, no task the server did not report created, every answer JSON with
a code. Half the stops happen before the COMMIT leaves the server (the outcome is known to
PostgreSQL: not committed; the server cannot know, and says so), half race it (either may
happen). Nothing here depends on timing: whatever interleaving happens, the properties hold.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from app.core.db import Database
from tests.app_fixtures import GraphQL, Org
from tests.pg_cluster import PrivateCluster

logger = logging.getLogger(__name__)

CREATE_PROJECT = """
mutation ($name: String!) { createProject(input: {name: $name}) { project { id } errors { code } } }
"""
CREATE_TASK = """
mutation ($input: CreateTaskInput!) {
  createTask(input: $input) { task { id title } errors { code message } }
}"""
CLIENTS = 4
TASKS_PER_CLIENT = 12
STOP_EVERY = 5  # read-write commits between two stops
STOPS = 6


@dataclass
class Chaos:
    """Stops PostgreSQL at every STOP_EVERY-th read-write commit (called just before the
    COMMIT is sent), STOPS times, and restarts it in the background."""

    cluster: PrivateCluster
    up: asyncio.Event = field(default_factory=asyncio.Event)
    commits: int = 0
    stops: list[str] = field(default_factory=list)
    restarting: asyncio.Task[None] | None = None

    def before_commit(self) -> None:
        self.commits += 1
        if self.commits % STOP_EVERY or len(self.stops) >= STOPS or not self.up.is_set():
            return
        self.up.clear()
        if len(self.stops) % 2 == 0:
            # Down before this COMMIT is sent: the transaction cannot have committed.
            self.cluster.stop("immediate")
            self.stops.append("before")
        else:
            # Signalled as the COMMIT is sent: it may commit or not.
            self.cluster.signal_stop("immediate")
            self.stops.append("racing")
        self.restarting = asyncio.get_running_loop().create_task(self._restart())

    async def _restart(self) -> None:
        await asyncio.to_thread(self.cluster.wait_stopped)
        await asyncio.to_thread(self.cluster.start)
        self.up.set()


@dataclass
class Client:
    """Creates its tasks one after another, each retried with its key until the server gives
    a definite answer."""

    name: str
    http: httpx.AsyncClient
    org: Org
    project: str
    chaos: Chaos
    answers: Counter[str] = field(default_factory=Counter)
    created: dict[str, str] = field(default_factory=dict)  # title -> task id
    replays: int = 0

    async def run(self) -> None:
        for n in range(TASKS_PER_CLIENT):
            await self.create(f"{self.name} task {n}", secrets.token_hex(16))

    async def create(self, title: str, key: str) -> None:
        variables = {"input": {"projectId": self.project, "title": title}}
        while True:
            response = await self.http.post(
                "/graphql",
                json={"query": CREATE_TASK, "variables": variables},
                headers={"authorization": f"Bearer {self.org.token}", "idempotency-key": key},
            )
            body = response.json()  # every answer is JSON
            if response.status_code == 200 and body.get("data"):
                payload = body["data"]["createTask"]
                assert payload["errors"] == [], payload
                self.answers["created"] += 1
                self.replays += response.headers.get("idempotent-replayed") == "true"
                self.created[title] = payload["task"]["id"]
                return
            assert response.status_code == 503, response.text
            [error] = body["errors"]
            code = error["extensions"]["code"]
            assert code in ("UNAVAILABLE", "COMMIT_OUTCOME_UNKNOWN"), body
            assert error["extensions"]["requestId"] == response.headers["x-request-id"]
            assert int(response.headers["retry-after"]) >= 1
            self.answers[code] += 1
            # Retry with the same key once the database is back (a client would wait
            # Retry-After seconds; here the test knows when it is back).
            await self.chaos.up.wait()


@pytest.fixture
def quiet_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING)
    caplog.set_level(logging.INFO, logger=__name__)  # the run's numbers, for the record
    return caplog


async def test_stopping_postgresql_during_commits_loses_and_duplicates_nothing(
    cluster: PrivateCluster,
    cluster_db: Database,
    cluster_http: httpx.AsyncClient,
    cluster_gql: GraphQL,
    cluster_org: Org,
    quiet_log: pytest.LogCaptureFixture,
) -> None:
    # given a project, and PostgreSQL to be stopped at every 5th commit, 6 times
    data = await cluster_gql.data(CREATE_PROJECT, {"name": "Load"}, token=cluster_org.token)
    project = data["createProject"]["project"]["id"]
    chaos = Chaos(cluster)
    chaos.up.set()
    cluster_db.commit_listeners.append(chaos.before_commit)
    quiet_log.clear()

    # when 4 clients create 12 tasks each, retrying with their keys
    clients = [
        Client(f"client {i}", cluster_http, cluster_org, project, chaos) for i in range(CLIENTS)
    ]
    try:
        await asyncio.gather(*(c.run() for c in clients))
    finally:
        cluster_db.commit_listeners.remove(chaos.before_commit)
        if chaos.restarting is not None:
            await chaos.restarting

    # then the stops happened, and the server said so where a commit was cut
    assert len(chaos.stops) == STOPS
    answers = sum((c.answers for c in clients), Counter())
    assert answers["COMMIT_OUTCOME_UNKNOWN"] >= chaos.stops.count("before")
    # and each task exists exactly once, as the server reported it created
    async with cluster_db.transaction(cluster_org.id, readonly=True) as session:
        rows = await session.fetch(
            "SELECT title, id FROM tasks WHERE project_id = (SELECT id FROM projects"
            " WHERE name = 'Load')"
        )
    stored = Counter(r["title"] for r in rows)
    assert [t for t, n in stored.items() if n > 1] == []  # no duplicate
    reported: dict[str, str] = {}
    for client in clients:
        reported.update(client.created)
    assert set(stored) == set(reported)  # no phantom, nothing lost
    assert len(reported) == CLIENTS * TASKS_PER_CLIENT
    ids = {r["title"]: r["id"] for r in rows}
    for title, global_id in reported.items():
        assert _pk(global_id) == str(ids[title])
    # and each outage was logged as a line at its start and one at its end, no traceback
    db_lines = [r for r in quiet_log.records if r.name == "tenantry.db"]
    starts = [r for r in db_lines if r.levelname == "ERROR"]
    ends = [r for r in db_lines if r.levelname == "WARNING"]
    assert 1 <= len(starts) <= STOPS
    assert len(ends) == len(starts)
    assert not any(r.exc_info for r in quiet_log.records)
    logger.info(
        "stops %s; answers %s; replays %d",
        chaos.stops,
        dict(answers),
        sum(c.replays for c in clients),
    )


def _pk(global_id: str) -> str:
    from app.api.relay import decode_global_id

    decoded: Any = decode_global_id(global_id)
    return str(decoded[1])
