"""GraphiQL as a person uses it: served by the app, offline, in a real headless Chromium."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import pytest

from .chromium import chromium, require_chromium

pytestmark = pytest.mark.browser

VIEWER_QUERY = "{ viewer { email } }"

# CodeMirror 5 (GraphiQL 3's editor) keeps its instance on the wrapper element.
RESULT_JSON = """() => {
  const text = document.querySelector('.graphiql-response .CodeMirror').CodeMirror.getValue();
  try { const r = JSON.parse(text); return 'data' in r || 'errors' in r ? r : null; }
  catch { return null; }
}"""


class Login(Protocol):
    """What the `demo_login` fixture gives: a user and a valid access token for them."""

    @property
    def email(self) -> str: ...

    @property
    def token(self) -> str: ...


@dataclass(frozen=True)
class Visit:
    """What the browser saw while running one query in GraphiQL."""

    result: dict[str, Any]  # the result pane's JSON
    result_text: str  # the result pane as rendered
    sent_headers: dict[str, str]  # of the POST that ran the query
    request_urls: list[str]  # every request the page made
    console_errors: list[str]  # console errors and uncaught exceptions (CSP violations land here)
    local_storage: str


def run_query_in_graphiql(base_url: str, *, headers: str, query: str) -> Visit:
    """Open GraphiQL, type `headers` into its Headers editor and `query` into the query editor,
    press the run button and read the result pane, as a person would."""
    with chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(30_000)
        urls: list[str] = []
        errors: list[str] = []
        page.on("request", lambda request: urls.append(request.url))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        page.goto(f"{base_url.rstrip('/')}/graphql")
        page.get_by_role("button", name="Headers", exact=True).click()
        page.locator(".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror").click()
        page.keyboard.press("Control+A")
        page.keyboard.insert_text(headers)
        page.locator(".graphiql-query-editor .CodeMirror").click()
        page.keyboard.press("Control+A")
        page.keyboard.insert_text(query)
        with page.expect_response(
            lambda r: r.request.method == "POST" and query in (r.request.post_data or "")
        ) as response:
            page.get_by_role("button", name="Execute query (Ctrl-Enter)").click()
        result = page.wait_for_function(RESULT_JSON).json_value()

        return Visit(
            result=result,
            result_text=page.locator(".graphiql-response").inner_text(),
            sent_headers=response.value.request.headers,
            request_urls=urls,
            console_errors=errors,
            local_storage=page.evaluate("JSON.stringify(localStorage)"),
        )


async def test_graphiql_runs_an_authenticated_query_offline(
    live_server_url: str, demo_login: Login
) -> None:
    # given Chromium and a signed-in user's access token
    require_chromium()
    headers = json.dumps({"Authorization": f"Bearer {demo_login.token}"})

    # when they run the viewer query in GraphiQL with the token in its Headers editor
    # (in a worker thread: the live server is served by this test's event loop, which must keep
    # running meanwhile, and sync Playwright refuses to run inside a running loop anyway)
    visit = await asyncio.to_thread(
        run_query_in_graphiql, live_server_url, headers=headers, query=VIEWER_QUERY
    )

    # then the result pane shows their email, fetched with the typed headers as JSON
    assert "errors" not in visit.result
    assert visit.result["data"] == {"viewer": {"email": demo_login.email}}
    assert demo_login.email in visit.result_text
    assert visit.sent_headers["authorization"] == f"Bearer {demo_login.token}"
    assert visit.sent_headers["content-type"] == "application/json"
    # and every request stayed on the app's origin: the page and its static files, no CDN
    # (data: URIs, used for fonts and icons, are not requests to anywhere)
    base_url = live_server_url.rstrip("/")
    origin = urlsplit(base_url)
    foreign = [
        url
        for url in visit.request_urls
        if urlsplit(url).scheme not in {"data", "blob"}
        and (urlsplit(url).scheme, urlsplit(url).netloc) != (origin.scheme, origin.netloc)
    ]
    assert foreign == []
    assert f"{base_url}/static/graphiql/graphiql-bundle.min.js" in visit.request_urls
    # and nothing failed or was blocked by the page's Content-Security-Policy
    assert visit.console_errors == []
    # and the token was not written to localStorage (GraphiQL's history would, unfiltered)
    assert "graphiql:queries" in visit.local_storage
    assert demo_login.token not in visit.local_storage
