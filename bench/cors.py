"""What the browser-facing middleware adds to a request: the security headers and CORS.

The real middleware (app/api/headers.py, app/api/cors.py, with the real tenant lookup and
store) around a trivial endpoint, called in-process through ASGI, so nothing but their own
work is measured. Side by side in one run, interleaved round by round:

- `bare`: the endpoint alone (the baseline);
- `headers`: the security headers only;
- `no origin`: headers + CORS, a request without `Origin` (same-origin, server to server);
- `same origin`: a page on the tenant's host calling it (browsers send Origin on POST);
- `listed origin`: an origin in TENANTRY_CORS_ORIGINS;
- `tenant origin`: an origin only in the tenant's corsOrigins, on its host (two cached
  reads: the slug's id, the id's origins);
- `refused preflight`: an origin nobody lists, on the tenant's host;
- `(one store read)`: for scale, the store's own round trip.

The tenant's entries are in the store before the run, as after any first request; the
database handed to the middleware raises if touched, so the numbers are of cached lookups
only. With `--redis-url` (or env REDIS_URL) the store is Redis, else process memory.
Run: `python -m bench.cors [--iterations 3000]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.cors import CorsMiddleware
from app.api.headers import SecurityHeadersMiddleware
from app.core.settings import BrowserSettings
from app.core.store import Store, platform_key, tenant_key
from app.tenants.resolution import cors_origins_of

from ._report import Summary, ms, table

ITERATIONS = 3000
BASE = "tenantry.example"
LISTED = "https://app.example.com"
TENANT_ORIGIN = "https://portal.customer.example"
SLUG = "bench-cors"
TENANT_ID = uuid.UUID(int=0xC0125)  # fixed: every run reads the same keys


class Untouchable:
    """The database, were a cached lookup to miss: the run stops instead of timing SQL."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the database was used ({name}): a cached lookup missed")


async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    body = b'{"data":{"viewer":null}}'
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def request(method: str, host: str, headers: dict[str, str]) -> Scope:
    raw = [(b"host", host.encode())] + [(k.encode(), v.encode()) for k, v in headers.items()]
    return {
        "type": "http",
        "method": method,
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "scheme": "http",
        "headers": raw,
        "state": {"database": Untouchable()},
    }


async def call(app: ASGIApp, scope: Scope) -> int:
    status = 0

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    # A fresh state per call, as uvicorn copies it per request.
    await app({**scope, "state": dict(scope["state"])}, receive, send)
    return status


async def measure(iterations: int, redis_url: str | None) -> str:
    store = Store.from_url(redis_url)
    # The entries app/tenants/resolution.py and app/tenants/service.py read and write.
    await store.put(platform_key("tenant-slug", SLUG), str(TENANT_ID), ttl_seconds=3600)
    await store.put(tenant_key(TENANT_ID, "cors-origins"), [TENANT_ORIGIN], ttl_seconds=3600)
    headers = SecurityHeadersMiddleware(endpoint, hsts_max_age_seconds=31_536_000)
    stack = SecurityHeadersMiddleware(
        CorsMiddleware(
            endpoint,
            settings=BrowserSettings(cors_origins=(LISTED,)),
            store=store,
            base_domain=BASE,
            tenant_origins=cors_origins_of,
        ),
        hsts_max_age_seconds=31_536_000,
    )
    tenant_host = f"{SLUG}.{BASE}"
    post = {"content-type": "application/json"}
    preflight = {"access-control-request-method": "POST"}

    async def one_store_read() -> int:
        await store.get(tenant_key(TENANT_ID, "cors-origins"))
        return 200

    cases: dict[str, tuple[ASGIApp, Scope, int]] = {
        "bare": (endpoint, request("POST", BASE, post), 200),
        "headers": (headers, request("POST", BASE, post), 200),
        "no origin": (stack, request("POST", BASE, post), 200),
        "same origin": (
            stack,
            request("POST", tenant_host, {**post, "origin": f"http://{tenant_host}"}),
            200,
        ),
        "listed origin": (stack, request("POST", BASE, {**post, "origin": LISTED}), 200),
        "tenant origin": (
            stack,
            request("POST", tenant_host, {**post, "origin": TENANT_ORIGIN}),
            200,
        ),
        "refused preflight": (
            stack,
            request("OPTIONS", tenant_host, {**preflight, "origin": "https://evil.example"}),
            403,
        ),
    }
    runs: dict[str, tuple[Callable[[], Awaitable[int]], int]] = {
        name: (partial(call, app, scope), expected)
        for name, (app, scope, expected) in cases.items()
    }
    # For scale: the store's own round trip, which the tenant's lookup pays twice.
    runs["(one store read)"] = (one_store_read, 200)
    timings: dict[str, list[float]] = {name: [] for name in runs}
    try:
        for round_number in range(iterations + 100):
            for name, (run, expected) in runs.items():
                started = time.perf_counter()
                status = await run()
                elapsed = time.perf_counter() - started
                assert status == expected, (name, status)
                if round_number >= 100:  # the first rounds warm up
                    timings[name].append(elapsed)
    finally:
        await store.close()
    summaries = {name: Summary.of(values) for name, values in timings.items()}
    base = summaries["bare"].p50
    rows = [
        [f"`{name}`", _us(s.p50), _us(s.p95), _us(s.p99), _us(s.p50 - base)]
        for name, s in summaries.items()
    ]
    kind = "Redis" if store.shared else "process memory"
    return "\n".join(
        [
            f"### Browser middleware: added time per request ({iterations} rounds, store: {kind})",
            "",
            table(["request", "p50 µs", "p95 µs", "p99 µs", "p50 added µs"], rows),
        ]
    )


def _us(milliseconds: float) -> str:
    return ms(milliseconds * 1000).removesuffix(".0")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cors", description=__doc__)
    parser.add_argument("--iterations", type=int, default=ITERATIONS)
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or None)
    args = parser.parse_args()
    print(asyncio.run(measure(args.iterations, args.redis_url or None)))


if __name__ == "__main__":
    main()
