"""Security headers on every response, whoever answered it (a route, a middleware's refusal,
a static file): pure ASGI, outermost in app/main.py.

- `X-Content-Type-Options: nosniff`: a JSON answer is never read as HTML or script.
- `Referrer-Policy: no-referrer`: nothing the API or GraphiQL serves links anywhere that
  needs to know where the user came from, and a GET query's URL (its text and variables)
  must not travel to another site. `strict-origin-when-cross-origin` would still send the
  origin, for no use here.
- `Content-Security-Policy`: a page's own (GraphiQL's, app/api/view.py) is kept; any other
  answer gets one that allows nothing, so a JSON body opened as a document cannot run or
  load anything, nor be framed.
- `X-Frame-Options: DENY`: `frame-ancestors 'none'` for browsers that predate it.
- `Strict-Transport-Security` only on answers served over https: directly, or through a
  proxy trusted with TENANTRY_FORWARDED_ALLOW_IPS, whose X-Forwarded-Proto uvicorn turns
  into the request's scheme. Over plain http it would be ignored, and it must never pin
  https on a development host.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# For answers that are no page: nothing may be loaded, run, submitted or framed.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


class SecurityHeadersMiddleware:
    """Adds the headers above to every HTTP response."""

    def __init__(self, app: ASGIApp, *, hsts_max_age_seconds: int) -> None:
        self.app = app
        self.always = {
            "x-content-type-options": "nosniff",
            "referrer-policy": "no-referrer",
            "x-frame-options": "DENY",
        }
        self.hsts = f"max-age={hsts_max_age_seconds}" if hsts_max_age_seconds > 0 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        hsts = self.hsts if scope.get("scheme") == "https" else None

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.update(self.always)
                headers.setdefault("content-security-policy", API_CSP)
                if hsts is not None:
                    headers["strict-transport-security"] = hsts
            await send(message)

        await self.app(scope, receive, send_with_headers)
