"""OpenTelemetry tracing: a tracer provider per app, and the asyncpg and Redis spans.

Tracing is on only when the standard OTEL_* variables name an exporter
(`ObservabilitySettings.traces_exporter`); otherwise nothing here is even instrumented. The
HTTP span comes from opentelemetry-instrumentation-asgi and the operation span from
app/api/observability.py, both given the app's provider. The asyncpg and Redis
instrumentations patch their libraries once per process, so they get `REQUEST_TRACERS`: a
provider that hands each span to the provider of the request being served, and starts no
span at all outside a request (the pool's housekeeping, commands) or for an app that does
not trace.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.util.types import Attributes

from app.core import telemetry
from app.core.settings import ObservabilitySettings

TENANT_ATTRIBUTE = "tenant.id"
USER_ATTRIBUTE = "user.id"
ADMIN_ATTRIBUTE = "tenantry.admin.id"
REQUEST_ATTRIBUTE = "tenantry.request.id"


def tracer_provider(settings: ObservabilitySettings) -> TracerProvider | None:
    """The provider exporting where the OTEL_* variables say, or None when they say nothing."""
    if settings.traces_exporter is None:
        return None
    exporter: SpanExporter
    if settings.traces_exporter == "console":
        exporter = ConsoleSpanExporter()
    else:
        # Imported here: the exporter pulls in protobuf, needless when not exporting.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # Endpoint, headers, timeout and compression from the OTEL_EXPORTER_OTLP_* variables.
        exporter = OTLPSpanExporter()
    return provider(BatchSpanProcessor(exporter))


def provider(*processors: SpanProcessor) -> TracerProvider:
    """A provider sending spans to `processors`, each stamped with the request's tenant and
    user; service name and resource from OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES,
    sampling from OTEL_TRACES_SAMPLER (default: follow the caller's decision, else sample)."""
    traced = TracerProvider(resource=Resource.create({SERVICE_NAME: "tenantry"}))
    traced.add_span_processor(RequestAttributes())
    for processor in processors:
        traced.add_span_processor(processor)
    instrument_libraries()
    return traced


class RequestAttributes(SpanProcessor):
    """Puts the request's tenant, user and request id on every span started while the
    request is known to be theirs (the HTTP span, started earlier, gets them at its end)."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        observation = telemetry.current()
        if observation is not None:
            span.set_attributes(request_attributes(observation))

    def on_end(self, span: ReadableSpan) -> None:
        pass


def request_attributes(observation: telemetry.Observation) -> dict[str, str]:
    identity = observation.identity()
    attributes: dict[str, str] = {}
    if observation.request_id is not None:
        attributes[REQUEST_ATTRIBUTE] = observation.request_id
    for name, value in (
        (TENANT_ATTRIBUTE, identity.tenant_id),
        (USER_ATTRIBUTE, identity.user_id),
        (ADMIN_ATTRIBUTE, identity.admin_id),
    ):
        if value is not None:
            attributes[name] = str(value)
    return attributes


class _RequestTracer(trace.Tracer):
    """A tracer of the provider of the request being served; no span outside one."""

    def __init__(self, name: str, version: str | None, schema_url: str | None) -> None:
        self._args = (name, version, schema_url)
        self._tracers: dict[int, trace.Tracer] = {}

    def _tracer(self) -> trace.Tracer:
        observation = telemetry.current()
        traced = None if observation is None else observation.tracer_provider
        if traced is None:
            return _NO_TRACER
        found = self._tracers.get(id(traced))
        if found is None:
            name, version, schema_url = self._args
            found = self._tracers[id(traced)] = traced.get_tracer(
                name, version, schema_url=schema_url
            )
        return found

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> trace.Span:
        return self._tracer().start_span(name, *args, **kwargs)

    def start_as_current_span(  # type: ignore[override]
        self, name: str, *args: Any, **kwargs: Any
    ) -> AbstractContextManager[trace.Span]:
        return self._tracer().start_as_current_span(name, *args, **kwargs)


class _RequestTracerProvider(trace.TracerProvider):
    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes | None = None,
    ) -> trace.Tracer:
        return _RequestTracer(instrumenting_module_name, instrumenting_library_version, schema_url)


_NO_TRACER = trace.NoOpTracer()
REQUEST_TRACERS = _RequestTracerProvider()


def instrument_libraries() -> None:
    """Patch asyncpg and redis once per process (idempotent); the statements' SQL goes on
    the spans, never their parameters."""
    asyncpg = AsyncPGInstrumentor(capture_parameters=False)  # type: ignore[no-untyped-call]
    for instrumentor in (asyncpg, RedisInstrumentor()):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=REQUEST_TRACERS)
