"""Seeing what the server does: one access log line per request, its metrics, its spans.

`Telemetry` is built once per app (app/main.py). `ObservabilityMiddleware` opens the
request's `Observation` (app/core/telemetry.py), answers GET /metrics, and at the end
writes the access line (and a slow-request line above the threshold) and the request's
metrics. `OperationObserver`, the outermost schema extension, names the GraphQL operation,
collects its error codes and wraps it in a span. docs/observability.md shows the result.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

from graphql import get_operation_ast
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import SchemaExtension

from app.api.encoding import JSONBody
from app.api.view import STATIC_PREFIX
from app.core import telemetry
from app.core.metrics import Metrics
from app.core.settings import ObservabilitySettings
from app.core.telemetry import NOBODY, Identity, Observation
from app.core.tracing import request_attributes, tracer_provider

logger = logging.getLogger("tenantry.access")

METRICS_PATH = "/metrics"
# Scrapes of /metrics are answered before any of this: they are not observed.
_ROUTES = frozenset({"/graphql", "/healthz", "/readyz", "/.well-known/jwks.json"})
# Probes come every few seconds: their lines only at DEBUG.
_QUIET_ROUTES = frozenset({"/healthz", "/readyz"})
_METHODS = frozenset({"GET", "HEAD", "POST", "OPTIONS", "PUT", "PATCH", "DELETE"})
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
_PATH_SHOWN = 200


class Telemetry:
    """An app's metrics and (when tracing) its tracer provider, with their settings."""

    def __init__(
        self, settings: ObservabilitySettings, *, provider: TracerProvider | None = None
    ) -> None:
        self.settings = settings
        self.metrics = Metrics(settings)
        self.tracer_provider = provider if provider is not None else tracer_provider(settings)
        # A provider given by the caller (a test) is the caller's to shut down.
        self._owns_provider = provider is None

    def outer_middleware(self) -> list[Middleware]:
        """The HTTP server span, outside every other middleware (none without tracing). It
        continues a caller's W3C `traceparent`."""
        if self.tracer_provider is None:
            return []
        return [
            Middleware(
                OpenTelemetryMiddleware,
                tracer_provider=self.tracer_provider,
                excluded_urls="/healthz$,/readyz$,/metrics$",
                exclude_spans=["receive", "send"],
                server_request_hook=_without_query,
            )
        ]

    def shutdown(self) -> None:
        """Flush the spans not yet exported (of a provider made here), and take this
        process's gauges out of the sums of live processes."""
        if self.tracer_provider is not None and self._owns_provider:
            self.tracer_provider.shutdown()
        self.metrics.process_ended()


def _without_query(span: trace.Span, scope: dict[str, Any]) -> None:
    # A GET request's query string holds the GraphQL document and its variables (passwords,
    # tokens): the instrumentation would put them on the span as part of the URL.
    if span.is_recording():
        path = scope.get("path", "")
        span.set_attribute("http.url", f"{scope.get('scheme', 'http')}://{_host(scope)}{path}")
        span.set_attribute("url.full", f"{scope.get('scheme', 'http')}://{_host(scope)}{path}")
        span.set_attribute("url.query", "")


def _host(scope: dict[str, Any]) -> str:
    host = Headers(scope=scope).get("host")
    if host:
        return host
    server = scope.get("server")
    return f"{server[0]}:{server[1]}" if server else "localhost"


def identity_of(state: dict[str, Any]) -> Identity:
    """Who the request acts for, from what the authentication middleware verified."""
    principal = state.get("principal")
    if principal is not None:
        acting = principal.claims.impersonator
        return Identity(
            tenant_id=principal.tenant_id,
            user_id=principal.user_id,
            admin_id=None if acting is None else acting.admin_id,
        )
    platform = state.get("platform_principal")
    if platform is not None:
        return Identity(admin_id=platform.admin_id)
    named = state.get("named_tenant")
    if named is not None and named.id is not None:
        return Identity(tenant_id=named.id)
    return NOBODY


class ObservabilityMiddleware:
    """Observes every HTTP request (and answers GET /metrics)."""

    def __init__(self, app: ASGIApp, *, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == METRICS_PATH:
            await self._metrics(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        observation = Observation(
            self.telemetry.metrics,
            tracer_provider=self.telemetry.tracer_provider,
            request_id=state.get("request_id"),
            caller_trace_id=_caller_trace_id(scope),
            identify=lambda: identity_of(state),
        )
        status = 500

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # Now: the HTTP span ends with the response's last byte, before we do.
                span = trace.get_current_span()
                if span.is_recording():
                    span.set_attributes(request_attributes(observation))
            await send(message)

        with telemetry.observing(observation):
            try:
                await self.app(scope, receive, observed_send)
            except asyncio.CancelledError:
                # The client went away (or the server is stopping) before the answer.
                observation.codes.append("CANCELLED")
                raise
            except Exception:
                # Answered 500 by Starlette's outermost handler; logged in full there.
                observation.codes.append("INTERNAL_SERVER_ERROR")
                raise
            finally:
                self._finish(scope, observation, status)

    def _finish(self, scope: Scope, observation: Observation, status: int) -> None:
        seconds = time.perf_counter() - observation.started
        path = str(scope["path"])
        method = str(scope["method"])
        outcome = observation.outcome if status < 400 or observation.codes else f"HTTP_{status}"
        metrics = self.telemetry.metrics
        route = _route(path)
        metrics.http_duration.labels(
            route, method if method in _METHODS else "other", str(status)
        ).observe(seconds)
        for code in observation.codes:
            metrics.errors.labels(code).inc()
        limited = [c for c in observation.codes if c in telemetry.RATE_LIMIT_CODES]
        if status == 429 or limited:
            metrics.rate_limited.labels(limited[0] if limited else outcome).inc()
        identity = observation.identity()
        if identity.tenant_id is not None:
            tenant = metrics.tenant_label(str(identity.tenant_id))
            metrics.tenant_requests.labels(tenant, "error" if observation.codes else "ok").inc()
            metrics.tenant_seconds.labels(tenant).inc(seconds)
            metrics.tenant_database_seconds.labels(tenant).inc(observation.database_seconds)
        database = scope.get("state", {}).get("database")
        if database is not None:
            metrics.pool(database.pool_usage())
        self._log(method, path, status, outcome, observation, seconds, route)

    def _log(
        self,
        method: str,
        path: str,
        status: int,
        outcome: str,
        observation: Observation,
        seconds: float,
        route: str,
    ) -> None:
        ms = seconds * 1000
        shown = path[:_PATH_SHOWN]
        operation = ""
        if observation.operation_type is not None:
            operation = f" {observation.operation_type} {observation.operation_name or '-'}"
        fields: dict[str, Any] = {
            "event": "request",
            "method": method,
            "path": shown,
            "status": status,
            "outcome": outcome,
            "operation_name": observation.operation_name,
            "operation_type": observation.operation_type,
            "duration_ms": round(ms, 2),
            "sql_statements": observation.statements,
            "sql_ms": round(observation.database_seconds * 1000, 2),
        }
        message = (
            f"{method} {shown} {status} {outcome}{operation} {ms:.1f} ms"
            f" ({observation.statements} SQL, {observation.database_seconds * 1000:.1f} ms)"
        )
        quiet = route in _QUIET_ROUTES or route == STATIC_PREFIX
        logger.log(logging.DEBUG if quiet else logging.INFO, message, extra=fields)
        threshold = self.telemetry.settings.slow_request_ms
        if threshold and ms >= threshold:
            logger.warning(
                "slow request: %s (slowest statement: %s)",
                message,
                observation.slowest_sql or "none",
                extra={**fields, "event": "slow_request", "slowest_sql": observation.slowest_sql},
            )

    async def _metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        settings = self.telemetry.settings
        headers = Headers(scope=scope)
        response: Response
        if scope["method"] not in ("GET", "HEAD"):
            response = _error(405, "METHOD_NOT_ALLOWED", "Use GET")
        elif settings.metrics_token is not None and not _bearer_matches(
            headers.get("authorization", ""), settings.metrics_token
        ):
            response = _error(401, "UNAUTHENTICATED", "The metrics token is missing or wrong")
            response.headers["www-authenticate"] = 'Bearer realm="metrics"'
        elif settings.metrics_token is None and not settings.metrics_public:
            response = _error(404, "NOT_FOUND", "Not found")
        else:
            database = scope.get("state", {}).get("database")
            if database is not None:
                self.telemetry.metrics.pool(database.pool_usage())
            body, content_type = self.telemetry.metrics.render(headers.get("accept"))
            response = Response(body, headers={"content-type": content_type})
        await response(scope, receive, send)


def _bearer_matches(header: str, token: str) -> bool:
    scheme, _, given = header.partition(" ")
    # Constant time: the comparison must not tell how much of a guess was right.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


def _error(status: int, code: str, message: str) -> JSONBody:
    return JSONBody({"errors": [{"message": message, "extensions": {"code": code}}]}, status)


def _route(path: str) -> str:
    if path in _ROUTES:
        return path
    if path.startswith(STATIC_PREFIX + "/"):
        return STATIC_PREFIX
    return "other"


def _caller_trace_id(scope: Scope) -> str | None:
    """The trace id of a caller's W3C traceparent (for the logs of a server not tracing)."""
    found = _TRACEPARENT.match(Headers(scope=scope).get("traceparent", "").strip())
    if found is None or found.group(1) == "0" * 32:
        return None
    return found.group(1)


class OperationObserver(SchemaExtension):
    """Names the request's GraphQL operation, collects its error codes, times it, and wraps
    it in a span (`query Projects`) that the SQL statements' spans are children of."""

    def on_operation(self) -> Iterator[None]:
        observation = telemetry.current()
        if observation is None:
            yield
            return
        started = time.perf_counter()
        statements = observation.statements
        span: trace.Span | None = None
        token = None
        if observation.tracer_provider is not None:
            tracer = observation.tracer_provider.get_tracer("tenantry.graphql")
            span = tracer.start_span("GraphQL operation")
            token = otel_context.attach(trace.set_span_in_context(span))
        try:
            yield
        finally:
            self._finish(observation, time.perf_counter() - started, statements, span)
            if token is not None:
                otel_context.detach(token)

    def _finish(
        self,
        observation: Observation,
        seconds: float,
        statements_before: int,
        span: trace.Span | None,
    ) -> None:
        execution = self.execution_context
        document = execution.graphql_document
        operation = (
            None if document is None else get_operation_ast(document, execution.operation_name)
        )
        kind = None if operation is None else operation.operation.value
        name = None if operation is None or operation.name is None else operation.name.value
        result = execution.result
        codes = [
            str((error.extensions or {}).get("code", "INTERNAL_SERVER_ERROR"))
            for error in (getattr(result, "errors", None) or [])
        ]
        # Top-level errors first: they say why the operation as a whole failed.
        observation.codes[:0] = codes
        observation.operation_name = name
        observation.operation_type = kind
        metrics = observation.metrics
        type_label = kind or "invalid"
        metrics.operation_duration.labels(
            metrics.operation_label(name), type_label, observation.outcome
        ).observe(seconds)
        metrics.operation_statements.labels(type_label).observe(
            observation.statements - statements_before
        )
        if span is not None:
            span.update_name(f"{kind} {name}" if kind and name else kind or "GraphQL operation")
            attributes = {
                "graphql.operation.type": type_label,
                "tenantry.outcome": observation.outcome,
            }
            if name is not None:
                attributes["graphql.operation.name"] = name
            span.set_attributes(attributes)
            if codes:
                span.set_status(trace.Status(trace.StatusCode.ERROR, codes[0]))
            span.end()
