"""The access log: one line per request with its ids, operation, outcome and SQL work; every
other line of the request carries the same ids; a slow request gets a line of its own."""

from __future__ import annotations

import logging
from typing import Any

import httpx
from starlette.types import Receive, Scope, Send

from app.api.observability import ObservabilityMiddleware, Telemetry
from app.core import telemetry
from app.core.db import Database
from app.core.settings import ObservabilitySettings
from tests.app_fixtures import Org
from tests.logs import capture_logs

BOARD = """
query Board {
  projects(first: 5) { nodes { name tasks(first: 5) { nodes { title assignee { email } } } } }
}
"""
CREATE_PROJECT = """
mutation NewProject($name: String!) {
  createProject(input: {name: $name}) { project { id } errors { code field } }
}
"""
# A caller's W3C trace context (the example of the specification).
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


async def post(
    http: httpx.AsyncClient, request_id: str, query: str, token: str | None, **headers: str
) -> httpx.Response:
    sent = {"x-request-id": request_id, **headers}
    if token is not None:
        sent["authorization"] = f"Bearer {token}"
    return await http.post("/graphql", json={"query": query}, headers=sent)


async def test_one_line_per_request_with_ids_operation_and_sql_work(
    http: httpx.AsyncClient, database: Database, org: Org
) -> None:
    statements: list[str] = []
    database.statement_listeners.append(statements.append)
    try:
        with capture_logs(logger="tenantry.access") as captured:
            response = await post(http, "access-board-1", BOARD, org.token, traceparent=TRACEPARENT)
    finally:
        database.statement_listeners.remove(statements.append)

    assert response.status_code == 200, response.text
    [line] = captured.events("request", request_id="access-board-1")
    member = org.members[0]
    assert {k: line[k] for k in EXPECTED_KEYS} == {
        "level": "INFO",
        "logger": "tenantry.access",
        "method": "POST",
        "path": "/graphql",
        "status": 200,
        "outcome": "OK",
        "operation_name": "Board",
        "operation_type": "query",
        "tenant_id": str(org.id),
        "user_id": str(member.id),
        # This server does not trace: the caller's trace id still ties the line to its trace.
        "trace_id": TRACE_ID,
    }
    # Every statement the request ran, as the database saw them, and the time they took.
    assert line["sql_statements"] == len(statements) > 0
    assert 0 <= line["sql_ms"] <= line["duration_ms"]
    assert line["time"].endswith("+00:00")
    assert "query Board" in line["message"]


EXPECTED_KEYS = (
    "level",
    "logger",
    "method",
    "path",
    "status",
    "outcome",
    "operation_name",
    "operation_type",
    "tenant_id",
    "user_id",
    "trace_id",
)


async def test_the_outcome_is_the_first_error_code(http: httpx.AsyncClient, org: Org) -> None:
    with capture_logs(logger="tenantry.access") as captured:
        invalid = await http.post(
            "/graphql",
            json={"query": CREATE_PROJECT, "variables": {"name": " "}},
            headers={"authorization": f"Bearer {org.token}", "x-request-id": "access-invalid"},
        )
        refused = await post(http, "access-refused", BOARD, "not-a-token")
        forbidden = await post(http, "access-anonymous", BOARD, None)

    assert invalid.json()["data"]["createProject"]["errors"][0]["code"] == "INVALID"
    [line] = captured.events("request", request_id="access-invalid")
    assert (line["outcome"], line["operation_type"], line["operation_name"]) == (
        "INVALID",
        "mutation",
        "NewProject",
    )
    # A refused token makes no caller: the operation is refused before it executes, as one
    # without a token is, and the line names no tenant and no user.
    assert refused.status_code == 200
    [line] = captured.events("request", request_id="access-refused")
    assert (line["status"], line["outcome"], line["operation_type"], line["operation_name"]) == (
        200,
        "UNAUTHENTICATED",
        "query",
        "Board",
    )
    assert "tenant_id" not in line
    assert "user_id" not in line
    assert forbidden.status_code == 200
    [line] = captured.events("request", request_id="access-anonymous")
    assert line["outcome"] == "UNAUTHENTICATED"


async def test_every_line_of_a_request_carries_its_ids(http: httpx.AsyncClient) -> None:
    with capture_logs() as captured:
        await post(http, "access-every-line", BOARD, "not-a-token")

    mine = [line for line in captured.lines if line.get("request_id") == "access-every-line"]
    assert {line["logger"] for line in mine} == {"tenantry.auth", "tenantry.access"}


async def test_text_lines_are_readable(http: httpx.AsyncClient, org: Org) -> None:
    with capture_logs(logger="tenantry.access", log_format="text") as captured:
        await post(http, "access-text", BOARD, org.token)

    [line] = [t for t in captured.text.splitlines() if "request=access-text" in t]
    assert " INFO tenantry.access POST /graphql 200 OK query Board " in line
    assert f"tenant={org.id} user={org.members[0].id}]" in line


async def inner(scope: Scope, receive: Receive, send: Send) -> None:
    """An app whose request ran 2 s and two statements, the slower one 1.5 s."""
    observation = telemetry.current()
    assert observation is not None
    observation.started -= 2.0
    telemetry.statement("SELECT id\n  FROM tasks WHERE tenant_id = $1", 1.5)
    telemetry.statement("SELECT 1", 0.1)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def run(settings: ObservabilitySettings, path: str = "/graphql", **headers: str) -> Any:
    app = ObservabilityMiddleware(inner, telemetry=Telemetry(settings))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        return await client.get(path, headers=headers)


async def test_a_slow_request_gets_a_warning_naming_its_slowest_statement() -> None:
    with capture_logs(logger="tenantry.access") as captured:
        await run(ObservabilitySettings(slow_request_ms=1000))

    [slow] = captured.events("slow_request")
    assert slow["level"] == "WARNING"
    assert slow["slowest_sql"] == "SELECT id FROM tasks WHERE tenant_id = $1"
    assert slow["sql_statements"] == 2
    assert slow["sql_ms"] == 1600
    assert slow["duration_ms"] >= 2000


async def test_no_slow_line_when_the_threshold_is_off() -> None:
    with capture_logs(logger="tenantry.access") as captured:
        await run(ObservabilitySettings(slow_request_ms=0))

    assert captured.events("request")
    assert not captured.events("slow_request")


async def test_probes_are_logged_only_at_debug() -> None:
    with capture_logs(logger="tenantry.access") as info:
        await run(ObservabilitySettings(), "/healthz")
    with capture_logs(logging.DEBUG, logger="tenantry.access") as debug:
        await run(ObservabilitySettings(), "/healthz")

    assert info.events("request") == []
    assert [line["level"] for line in debug.events("request")] == ["DEBUG"]
