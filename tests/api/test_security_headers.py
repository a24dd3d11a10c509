"""The security headers a JSON API sends, on every answer whoever gave it; HSTS only over https."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.api.headers import API_CSP, SecurityHeadersMiddleware
from app.core.settings import Settings
from tests.app_fixtures import Org

Call = Callable[[httpx.AsyncClient, Org, Settings], Awaitable[httpx.Response]]
VIEWER = {"query": "{ viewer { email } }"}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


# Every kind of answer: GraphQL over POST and GET, each middleware's refusal, the other routes,
# GraphiQL's static files and a path that does not exist.
ANSWERS: dict[str, Call] = {
    "graphql": lambda h, o, s: h.post("/graphql", json=VIEWER, headers=bearer(o.token)),
    "graphql-get": lambda h, o, s: h.get("/graphql", params=VIEWER, headers=bearer(o.token)),
    "graphql-error": lambda h, o, s: h.post("/graphql", json={"query": "{ nope }"}),
    "401": lambda h, o, s: h.post("/graphql", json=VIEWER, headers=bearer("forged")),
    "403-mismatch": lambda h, o, s: h.post(
        "/graphql", json=VIEWER, headers={**bearer(o.token), "x-tenant": "someone-else"}
    ),
    "403-cors": lambda h, o, s: h.options(
        "/graphql",
        headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
    ),
    "413": lambda h, o, s: h.post(
        "/graphql",
        content=b" " * (s.limits.max_body_bytes + 1),
        headers={"content-type": "application/json"},
    ),
    "404": lambda h, o, s: h.get("/nowhere"),
    "405": lambda h, o, s: h.put("/graphql"),
    "healthz": lambda h, o, s: h.get("/healthz"),
    "jwks": lambda h, o, s: h.get("/.well-known/jwks.json"),
    "static": lambda h, o, s: h.get("/static/graphiql/init.js"),
}


@pytest.mark.parametrize("answer", ANSWERS)
async def test_every_answer_carries_the_security_headers(
    http: httpx.AsyncClient, org: Org, app_settings: Settings, answer: str
) -> None:
    response = await ANSWERS[answer](http, org, app_settings)

    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    # Nothing but a page has a policy of its own: these allow nothing at all.
    assert response.headers["content-security-policy"] == API_CSP
    # Plain http: no HSTS (it would be ignored, and must never pin a development host).
    assert "strict-transport-security" not in response.headers


async def test_graphiql_keeps_its_own_strict_policy(http: httpx.AsyncClient) -> None:
    response = await http.get("/graphql", headers={"accept": "text/html"})

    assert response.headers["content-type"].startswith("text/html")
    directives = {
        d.strip().split()[0]: d.strip().split()[1:]
        for d in response.headers["content-security-policy"].split(";")
    }
    assert directives["script-src"] == ["'self'"]
    assert directives["connect-src"] == ["'self'"]
    for directive in ("object-src", "base-uri", "form-action", "frame-ancestors"):
        assert directives[directive] == ["'none'"], directive
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


async def test_hsts_is_sent_over_https_behind_a_trusted_proxy(
    http: httpx.AsyncClient, org: Org
) -> None:
    # The test server trusts X-Forwarded-* from 127.0.0.1 (uvicorn's default; `tenantry serve`
    # does so for TENANTRY_FORWARDED_ALLOW_IPS): the proxy says the client used https.
    response = await http.post(
        "/graphql", json=VIEWER, headers={**bearer(org.token), "x-forwarded-proto": "https"}
    )

    assert response.status_code == 200
    assert response.headers["strict-transport-security"] == "max-age=31536000"


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"scheme": request.url.scheme})


async def headers_of(url: str, *, max_age: int = 31_536_000, **headers: str) -> httpx.Headers:
    app = Starlette(routes=[Route("/", hello)])
    wrapped = SecurityHeadersMiddleware(app, hsts_max_age_seconds=max_age)
    transport = httpx.ASGITransport(app=wrapped)
    async with httpx.AsyncClient(transport=transport) as client:
        return (await client.get(url, headers=headers)).headers


async def test_hsts_follows_the_scheme_the_server_was_reached_by() -> None:
    direct_https = await headers_of("https://api.example/")
    plain = await headers_of("http://api.example/")
    # Without a trusted proxy nothing rewrites the scheme: a client's own header is ignored.
    claimed = await headers_of("http://api.example/", **{"x-forwarded-proto": "https"})
    disabled = await headers_of("https://api.example/", max_age=0)

    assert direct_https["strict-transport-security"] == "max-age=31536000"
    assert "strict-transport-security" not in plain
    assert "strict-transport-security" not in claimed
    assert "strict-transport-security" not in disabled
    assert disabled["x-content-type-options"] == "nosniff"
