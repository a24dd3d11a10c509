"""The GraphiQL page's files, checked without a browser: all shipped, all local, all licensed."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from app.api.graphiql import DEFAULT_QUERY, STATIC_DIR, graphiql_html

PREFIX = "/static/graphiql"

# Hosts GraphiQL's own docs and other vendors' snippets load from; none may appear in a file
# the page loads, even as a string in a minified bundle.
CDN_HOSTS = (
    "unpkg.com",
    "cdn.jsdelivr.net",
    "cdnjs.cloudflare.com",
    "esm.sh",
    "fonts.googleapis.com",
    "fonts.gstatic.com",
    "cdn.skypack.dev",
)


class _Tags(HTMLParser):
    """Collects start tags with their attributes, and the text inside <script> elements."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text.append(data)


def _parse(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    parser.close()
    return parser


def _referenced(tags: _Tags) -> list[str]:
    return [
        url
        for tag, attrs in tags.tags
        for name in ("src", "href")
        if tag in {"script", "link"} and (url := attrs.get(name)) is not None
    ]


def test_every_file_the_page_references_is_shipped() -> None:
    # given the page
    tags = _parse(graphiql_html(endpoint="/graphql", static_prefix=PREFIX))

    # when we collect what it loads
    urls = _referenced(tags)

    # then it is our static files (and the empty data: favicon), and each exists
    local = [url for url in urls if url != "data:,"]
    assert {"data:,"} == set(urls) - set(local)
    assert all(url.startswith(f"{PREFIX}/") for url in local), local
    names = {url.removeprefix(f"{PREFIX}/") for url in local}
    assert names == {"graphiql.min.css", "page.css", "graphiql-bundle.min.js", "init.js"}
    assert all((STATIC_DIR / name).is_file() for name in names)


def test_the_page_has_no_inline_script_and_no_external_url() -> None:
    html = graphiql_html(endpoint="/graphql", static_prefix=PREFIX)
    tags = _parse(html)

    scripts = [attrs for tag, attrs in tags.tags if tag == "script"]
    assert len(scripts) == 2
    assert all(attrs.get("src") for attrs in scripts)
    assert "".join(tags.script_text).strip() == ""
    assert not any(name.startswith("on") for _, attrs in tags.tags for name in attrs)
    assert re.findall(r"(?:https?:)?//[\w.-]+", html) == []


def test_the_endpoint_and_default_query_are_escaped_attributes() -> None:
    # given an endpoint that tries to break out of its attribute
    hostile = '/graphql"><script>alert(1)</script>'

    # when the page is rendered for it
    html = graphiql_html(endpoint=hostile, static_prefix=PREFIX)
    tags = _parse(html)

    # then it round-trips as data, never as markup
    [root] = [attrs for tag, attrs in tags.tags if attrs.get("id") == "graphiql"]
    assert root["data-endpoint"] == hostile
    assert root["data-default-query"] == DEFAULT_QUERY
    assert "<script>alert" not in html
    assert len([tag for tag, _ in tags.tags if tag == "script"]) == 2


def test_our_own_code_names_no_external_url() -> None:
    for name in ("init.js", "page.css"):
        text = (STATIC_DIR / name).read_text(encoding="utf-8")
        assert re.findall(r"https?://", text) == [], name


def test_stylesheets_load_nothing_from_elsewhere() -> None:
    for name in ("graphiql.min.css", "page.css"):
        css = (STATIC_DIR / name).read_text(encoding="utf-8")
        urls = re.findall(r"url\(\s*['\"]?([^'\")]*)", css)
        # Fonts and icons are embedded; a scheme or // would be a request elsewhere.
        assert [u for u in urls if not u.startswith("data:") and re.match(r"\w+:|//", u)] == []
        assert "@import" not in css, name


def test_no_shipped_file_names_a_cdn() -> None:
    for path in STATIC_DIR.iterdir():
        if path.suffix in {".js", ".css", ".html"}:
            text = path.read_text(encoding="utf-8")
            assert [host for host in CDN_HOSTS if host in text] == [], path.name


def test_only_the_built_files_are_shipped_and_they_stay_small() -> None:
    files = {path.name: path.stat().st_size for path in STATIC_DIR.iterdir()}

    assert set(files) == {
        "graphiql-bundle.min.js",
        "graphiql.min.css",
        "init.js",
        "page.css",
        "LICENSES.txt",
        "README.md",
    }
    assert sum(files.values()) < 4_000_000


def test_the_licence_file_names_every_bundled_package_with_its_version() -> None:
    licences = (STATIC_DIR / "LICENSES.txt").read_text(encoding="utf-8")
    summary = licences.split("\n\n=")[0]

    for package in (
        "graphiql",
        "@graphiql/react",
        "@graphiql/toolkit",
        "codemirror",
        "codemirror-graphql",
        "graphql",
        "graphql-language-service",
        "react",
        "react-dom",
        "scheduler",
    ):
        assert re.search(rf"^  {re.escape(package)} \d+\.\d+\.\d+\S* MIT$", summary, re.M), package
    for font in ("Roboto", "Fira Code"):
        assert re.search(rf"^  {font} \(font.*\) [\d.]+ (Apache-2.0|OFL-1.1)$", summary, re.M), font
    # Every package listed in the summary carries its licence text below it.
    listed = re.findall(r"^  (\S+) (\S+) \S+$", summary, re.M)
    assert len(listed) > 50
    for name, version in listed:
        assert f"\n{name} {version} (" in licences, name
    assert "Permission is hereby granted, free of charge" in licences
