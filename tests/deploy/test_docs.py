"""The documentation a new operator or client developer reads: runnable as written.

Every GraphQL example validates against schema.graphql, every `tenantry` command line is one
the command accepts, the runbooks cover what an operator meets, and the reader-facing pages
point at no source or test file and carry no planning vocabulary.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from graphql import build_schema, parse, validate

from app.cli import parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# The pages for operators and client developers. architecture.md, security-model.md and
# benchmarks.md are for the project's developers (they name modules and tests on purpose);
# permissions.md is generated from the permission catalog.
READER_FACING = [
    "README.md",
    *(
        f"docs/{n}.md"
        for n in (
            "operations",
            "runbooks",
            "authentication",
            "authorization",
            "platform",
            "scale-out",
            "clients",
        )
    ),
]
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
# Module paths name one of app's own packages (`app.core.db`), so a host such as
# `app.example.com` in an example is not taken for one.
_PACKAGES = "|".join(
    sorted(p.name for p in (ROOT / "app").iterdir() if (p / "__init__.py").exists())
)
INTERNAL_FILE = re.compile(
    rf"\b(?:app|tests|bench)/[\w./-]*|\bapp\.(?:{_PACKAGES})\.[a-z_]+\b|\bshared/[A-Z]+\.md|\.ci/"
)
PLANNING = re.compile(
    r"\bissues? #?\d+|\b\w+ issue\)|\b(?:TODO|FIXME|TBD)\b:|\blater features\b"
    r"|\bfirst part of\b|\broad to\b|\bnot (?:yet )?implemented\b|\bcoming soon\b",
    re.IGNORECASE,
)


def reader_text(name: str) -> str:
    text = (ROOT / name).read_text(encoding="utf-8")
    # The README's last section is for contributors: it maps the source tree on purpose.
    return text.split("\n## Development\n")[0] if name == "README.md" else text


def blocks(language: str) -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        for lang, body in BLOCK.findall(path.read_text(encoding="utf-8")):
            if lang == language:
                found.append((path.name, body))
    return found


@pytest.mark.parametrize("name", READER_FACING)
def test_reader_facing_pages_name_no_internal_file(name: str) -> None:
    assert INTERNAL_FILE.findall(reader_text(name)) == []


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_no_page_carries_planning_words(path: Path) -> None:
    assert PLANNING.findall(path.read_text(encoding="utf-8")) == []


def test_every_graphql_example_is_valid_against_the_schema() -> None:
    schema = build_schema((ROOT / "schema.graphql").read_text(encoding="utf-8"))
    examples = blocks("graphql")
    assert len(examples) > 20
    for page, body in examples:
        assert validate(schema, parse(body)) == [], (page, body)


def test_every_tenantry_command_line_is_accepted() -> None:
    commands = []
    for page, body in blocks("sh"):
        logical = body.replace("\\\n", " ")
        for line in logical.splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["tenantry"]:
                commands.append((page, words[1:]))
    assert len(commands) > 15
    for page, argv in commands:
        # Optional parts shown in brackets are the reader's choice: check without them.
        argv = [a for a in argv if not (a.startswith("[") or a.endswith("]"))]
        try:
            parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"{page}: `tenantry {shlex.join(argv)}` is refused by the command")


def test_the_runbooks_cover_an_operators_first_incidents() -> None:
    text = (ROOT / "docs/runbooks.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", text, re.MULTILINE)
    assert headings == [
        "Zero-downtime migrations (expand, then contract)",
        "Rotating the signing keys",
        "Rotating the MFA encryption keys",
        "Suspending a tenant",
        "Recovering a tenant from an export",
        "Responding to a suspected cross-tenant leak",
        "Redis outage",
        "PostgreSQL outage",
    ]
    assert "docs/runbooks.md" in (ROOT / "README.md").read_text(encoding="utf-8")
