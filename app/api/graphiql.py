"""The GraphiQL page, served entirely by this app: no CDN, no inline script.

The page only loads files from `app/static/graphiql/` (how they were built: README.md there),
so GraphiQL works on air-gapped hosts and its Content-Security-Policy can be `script-src 'self'`.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

# Where the page's files live; the app mounts this directory at the page's static prefix.
STATIC_DIR = Path(__file__).resolve().parent.parent / "static" / "graphiql"

# Shown in a new tab until the user's own query (kept in the browser's localStorage) exists.
DEFAULT_QUERY = """\
# Tenantry GraphQL API.
# To authenticate, open "Headers" below and paste:
#   {"Authorization": "Bearer <access token>"}
# then run this query with the play button or Ctrl-Enter.

{
  viewer {
    email
  }
}
"""


def graphiql_html(*, endpoint: str, static_prefix: str) -> str:
    """Return the GraphiQL page that talks to `endpoint` (a same-origin path).

    The endpoint and the default query travel as data attributes that `init.js` reads, not as
    script text: they are HTML-escaped like any attribute, and the page needs no inline script.
    """
    prefix = escape(static_prefix.rstrip("/"), quote=True)
    # The empty data: icon stops browsers from requesting /favicon.ico (a 404) on every visit.
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Tenantry GraphiQL</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{prefix}/graphiql.min.css">
<link rel="stylesheet" href="{prefix}/page.css">
<script src="{prefix}/graphiql-bundle.min.js" defer></script>
<script src="{prefix}/init.js" defer></script>
</head>
<body>
<div id="graphiql" data-endpoint="{escape(endpoint, quote=True)}"
  data-default-query="{escape(DEFAULT_QUERY, quote=True)}">Loading GraphiQL…</div>
<noscript>GraphiQL needs JavaScript.</noscript>
</body>
</html>
"""
