"""Traces: one nested query's span tree (HTTP, then the GraphQL operation, then its SQL
statements), continuing the caller's W3C trace, with tenant and user on every span and no
secret on any."""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from app.core import tracing
from app.core.db import Database
from app.core.settings import ObservabilitySettings, Settings
from tests.app_fixtures import Org, start_server, stop_server

NESTED = """
query Board {
  projects(first: 5) { nodes { name tasks(first: 5) { nodes { title assignee { email } } } } }
}
"""
CREATE = 'mutation Seed { createProject(input: {name: "Traced"}) { project { id } } }'
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture
async def traced(
    app_settings: Settings, database: Database
) -> AsyncIterator[tuple[httpx.AsyncClient, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = tracing.provider(SimpleSpanProcessor(exporter))
    server, url = await start_server(app_settings, database, tracer_provider=provider)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield client, exporter
    finally:
        await stop_server(server)
        provider.shutdown()


def hex_id(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def parent_of(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


async def test_a_nested_query_is_one_tree_in_the_callers_trace(
    traced: tuple[httpx.AsyncClient, InMemorySpanExporter], database: Database, org: Org
) -> None:
    http, exporter = traced
    headers = {"authorization": f"Bearer {org.token}"}
    assert (await http.post("/graphql", json={"query": CREATE}, headers=headers)).is_success
    statements: list[str] = []
    exporter.clear()
    database.statement_listeners.append(statements.append)
    try:
        response = await http.post(
            "/graphql",
            json={"query": NESTED},
            headers={**headers, "traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01"},
        )
    finally:
        database.statement_listeners.remove(statements.append)

    assert response.status_code == 200, response.text
    spans = exporter.get_finished_spans()
    # All in the caller's trace: the HTTP span is the caller's span's child.
    assert {hex_id(s.context.trace_id, 32) for s in spans} == {TRACE_ID}
    [server] = [s for s in spans if s.kind is SpanKind.SERVER]
    assert server.parent is not None
    assert server.parent.is_remote
    assert hex_id(server.parent.span_id, 16) == CALLER_SPAN
    [operation] = [s for s in spans if s.name == "query Board"]
    assert parent_of(operation) == server.context.span_id
    assert operation.attributes is not None
    assert operation.attributes["graphql.operation.name"] == "Board"
    assert operation.attributes["graphql.operation.type"] == "query"
    sql = [s for s in spans if (s.attributes or {}).get("db.system") == "postgresql"]
    # Every statement the resolvers ran is a child of the operation (with the transaction's
    # BEGIN, tenant binding and COMMIT around them).
    in_operation = [s for s in sql if parent_of(s) == operation.context.span_id]
    texts = [str((s.attributes or {}).get("db.statement")) for s in in_operation]
    assert all(any(text == statement for text in texts) for statement in statements)
    assert len(statements) >= 2  # projects, then their tasks
    assert any(text.startswith("BEGIN") for text in texts)
    assert any(text.startswith("COMMIT") for text in texts)
    # Nothing is an orphan or outside the tree.
    ids = {s.context.span_id for s in spans}
    assert all(parent_of(s) in ids for s in spans if s is not server)
    # Tenant and user on the HTTP span (set when the request ends) and on every span started
    # once the token is verified; the request id on every span.
    member = org.members[0]
    verified = [server, operation, *in_operation]
    for span in verified:
        attributes = span.attributes or {}
        assert attributes.get("tenant.id") == str(org.id), span.name
        assert attributes.get("user.id") == str(member.id), span.name
    assert len({(s.attributes or {}).get("tenantry.request.id") for s in spans}) == 1


async def test_redis_calls_are_spans_of_the_request(
    traced: tuple[httpx.AsyncClient, InMemorySpanExporter], org: Org, app_settings: Settings
) -> None:
    if app_settings.redis_url is None:
        pytest.skip("REDIS_URL is not set (CI sets it)")
    http, exporter = traced
    exporter.clear()

    await http.post(
        "/graphql",
        json={"query": "{ viewer { email } }"},
        headers={"authorization": f"Bearer {org.token}"},
    )

    spans = exporter.get_finished_spans()
    [server] = [s for s in spans if s.kind is SpanKind.SERVER]
    redis = [s for s in spans if (s.attributes or {}).get("db.system") == "redis"]
    assert redis
    assert all(s.context.trace_id == server.context.trace_id for s in redis)
    # Keys and values never: the statement is the command with placeholders.
    assert all("?" in str((s.attributes or {}).get("db.statement")) for s in redis)


async def test_no_span_holds_the_documents_secrets(
    traced: tuple[httpx.AsyncClient, InMemorySpanExporter], org: Org
) -> None:
    http, exporter = traced
    exporter.clear()
    secret = "pw-in-a-get-query-string-123"
    query = (
        f'mutation {{ signIn(input: {{tenant: "{org.slug}", email: "x@y.z",'
        f' password: "{secret}"}}) {{ accessToken }} }}'
    )

    await http.get("/graphql", params={"query": query})
    await http.post("/graphql", json={"query": query})

    spans = exporter.get_finished_spans()
    assert len([s for s in spans if s.kind is SpanKind.SERVER]) == 2
    dumped = [repr(dict(s.attributes or {})) + s.name for s in spans]
    assert not [d for d in dumped if secret in d or "signIn(input" in d]


async def test_statements_outside_a_request_are_not_traced(
    traced: tuple[httpx.AsyncClient, InMemorySpanExporter], database: Database, org: Org
) -> None:
    _, exporter = traced
    exporter.clear()

    async with database.transaction(org.id, readonly=True) as session:
        await session.fetchval("SELECT count(*) FROM projects")

    assert exporter.get_finished_spans() == ()


class Collector:
    """An OpenTelemetry collector's OTLP/HTTP traces endpoint, on loopback in a thread."""

    def __init__(self) -> None:
        self.span_names: list[str] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                request = ExportTraceServiceRequest.FromString(body)
                for resource_spans in request.resource_spans:
                    for scope_spans in resource_spans.scope_spans:
                        collector.span_names.extend(s.name for s in scope_spans.spans)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


async def test_spans_are_exported_over_otlp_where_the_variables_say(
    app_settings: Settings, database: Database, org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    collector = Collector()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "tenantry-test")
        settings = replace(
            app_settings,
            observability=ObservabilitySettings.from_env(dict(os.environ), dev=True),
        )
        assert settings.observability.traces_exporter == "otlp"
        server, url = await start_server(settings, database)
        try:
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                response = await http.post(
                    "/graphql",
                    json={"query": NESTED},
                    headers={"authorization": f"Bearer {org.token}"},
                )
                assert response.status_code == 200
        finally:
            # The app's provider flushes its batch when the server stops.
            await stop_server(server)
    finally:
        collector.close()

    assert "query Board" in collector.span_names
    assert any(name.startswith("POST") for name in collector.span_names)
    assert "SELECT" in collector.span_names
