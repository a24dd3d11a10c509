"""What observing a request costs: the access line, the metrics, and the spans.

The real middleware (app/api/observability.py, and opentelemetry-instrumentation-asgi when
tracing) around a trivial endpoint that reports three SQL statements and a permission-cache
read as a real request would, called in-process through ASGI so nothing but their own work
is measured. Side by side in one run, interleaved round by round:

- `bare`: the endpoint alone (the baseline: no Observation, its reports do nothing);
- `logs + metrics`: the default, tracing off; the JSON access line formatted and dropped;
- `+ text line`: the same with the development text format;
- `+ tracing`: the HTTP span too, sampled and handed to a processor that drops it (the
  exporter's own cost, a batch thread, is left out);
- `+ unsampled trace`: tracing on, the caller's traceparent saying "not sampled".

Run: `python -m bench.observability [--iterations 3000]`.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.observability import ObservabilityMiddleware, Telemetry
from app.core import logs, telemetry, tracing
from app.core.settings import ObservabilitySettings

from ._report import Summary, ms, table

ITERATIONS = 3000
SAMPLED = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
UNSAMPLED = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"


async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    for sql in ("SELECT 1", "SELECT id FROM projects", "SELECT id FROM tasks"):
        telemetry.statement(sql, 0.0002)
    telemetry.cache("permissions", hit=True)
    body = b'{"data":{"viewer":null}}'
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Dropping(SpanProcessor):
    """Receives every ended span and keeps none."""

    def on_end(self, span: ReadableSpan) -> None:
        pass


def request(traceparent: str | None = None) -> Scope:
    headers = [(b"host", b"api.example"), (b"content-type", b"application/json")]
    if traceparent is not None:
        headers.append((b"traceparent", traceparent.encode()))
    return {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "headers": headers,
        "state": {"request_id": "bench"},
    }


async def call(app: ASGIApp, scope: Scope) -> int:
    status = 0

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app({**scope, "state": dict(scope["state"])}, receive, send)
    return status


def observed(settings: ObservabilitySettings, *, traced: bool = False) -> ASGIApp:
    provider = tracing.provider(Dropping()) if traced else None
    observing = Telemetry(settings, provider=provider)
    app: ASGIApp = ObservabilityMiddleware(endpoint, telemetry=observing)
    for middleware in reversed(observing.outer_middleware()):
        app = middleware.cls(app, *middleware.args, **middleware.kwargs)
    return app


async def measure(iterations: int) -> str:
    settings = ObservabilitySettings()
    cases: dict[str, tuple[ASGIApp, Scope]] = {
        "bare": (endpoint, request()),
        "logs + metrics": (observed(settings), request()),
        "+ text line": (observed(settings), request()),
        "+ tracing": (observed(settings, traced=True), request(SAMPLED)),
        "+ unsampled trace": (observed(settings, traced=True), request(UNSAMPLED)),
    }
    access = logging.getLogger("tenantry.access")
    access.setLevel(logging.INFO)
    access.propagate = False
    sinks = {
        "json": logs.handler("json", io.StringIO()),
        "text": logs.handler("text", io.StringIO()),
    }
    runs: dict[str, tuple[Callable[[], Awaitable[int]], str]] = {
        name: (partial(call, app, scope), "text" if name == "+ text line" else "json")
        for name, (app, scope) in cases.items()
    }
    timings: dict[str, list[float]] = {name: [] for name in runs}
    for round_number in range(iterations + 100):
        for name, (run, log_format) in runs.items():
            handler = sinks[log_format]
            access.addHandler(handler)
            started = time.perf_counter()
            status = await run()
            elapsed = time.perf_counter() - started
            access.removeHandler(handler)
            assert status == 200, (name, status)
            stream = handler.stream  # type: ignore[attr-defined]
            stream.seek(0)
            stream.truncate()
            if round_number >= 100:  # the first rounds warm up
                timings[name].append(elapsed)
    summaries = {name: Summary.of(values) for name, values in timings.items()}
    base = summaries["bare"].p50
    rows = [
        [f"`{name}`", _us(s.p50), _us(s.p95), _us(s.p99), _us(s.p50 - base)]
        for name, s in summaries.items()
    ]
    return "\n".join(
        [
            f"### Observability: added time per request ({iterations} rounds)",
            "",
            table(["request", "p50 µs", "p95 µs", "p99 µs", "p50 added µs"], rows),
        ]
    )


def _us(milliseconds: float) -> str:
    return ms(milliseconds * 1000).removesuffix(".0")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.observability", description=__doc__)
    parser.add_argument("--iterations", type=int, default=ITERATIONS)
    args = parser.parse_args()
    print(asyncio.run(measure(args.iterations)))


if __name__ == "__main__":
    main()
