"""The README's examples, run in order against the demo server as a reader pastes them.

A reader runs `tenantry serve --demo`, pastes each GraphQL example into GraphiQL (and the curl
command into a shell), replaces each `"<…>"` with the value it names from an earlier answer,
and keeps the latest `accessToken` in the Authorization header, as the README says. Every
example must then work: no error in any answer.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from app.core import dbadmin, migrate
from app.demo import DEMO_PASSWORD, DEMO_USERS
from tests.conftest import TestDatabase, create_throwaway_database
from tests.deploy.serving import Served, serving

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
PLACEHOLDER = re.compile(r'"<([^">]+)>"')
LOCAL = "http://127.0.0.1:8000"


def readme_examples() -> list[tuple[str, str]]:
    """(kind, text) of every GraphQL example and curl command, in the README's order."""
    found = []
    for language, body in BLOCK.findall(README):
        if language == "graphql":
            found.append(("graphql", body))
        elif language == "sh" and body.lstrip().startswith("curl"):
            found.append(("curl", body))
    return found


@dataclass
class Reader:
    """What a reader knows after each answer: its values, and the token in the header."""

    base: str
    token: str | None = None
    seen: dict[str, Any] = field(default_factory=dict)
    last_totp_step: int = 0

    def remember(self, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if value is not None:
                    self.seen[key] = value
                if key == "accessToken" and value:
                    self.token = value
                self.remember(value)
        elif isinstance(node, list):
            for item in node:
                self.remember(item)

    def totp(self) -> str:
        """The authenticator app's code; a later one than the last used (each works once)."""
        step = max(int(time.time()) // 30, self.last_totp_step + 1)
        self.last_totp_step = step
        return str(pyotp.TOTP(self.seen["secret"]).at(step * 30))

    def fill(self, text: str) -> str:
        resolve: dict[str, Callable[[], str]] = {
            "refreshToken": lambda: str(self.seen["refreshToken"]),
            "challenge": lambda: str(self.seen["challenge"]),
            "code from your authenticator app": self.totp,
            "a recovery code": lambda: str(self.seen["recoveryCodes"][0]),
            "a project's id": lambda: str(self.seen["projects"]["nodes"][0]["id"]),
        }

        def replace(match: re.Match[str]) -> str:
            name = match[1]
            assert name in resolve, f"the README asks for {name!r}, which no example gives"
            return json.dumps(resolve[name]())

        return PLACEHOLDER.sub(replace, text)


def errors_in(node: Any) -> Iterator[Served]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "errors" and value:
                yield value
            yield from errors_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from errors_in(item)


def graphql(reader: Reader, document: str) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {reader.token}"} if reader.token else {}
    response = httpx.post(f"{reader.base}/graphql", json={"query": document}, headers=headers)
    assert response.status_code == 200, (document, response.text)
    answer: dict[str, Any] = response.json()
    return answer


def curl(reader: Reader, command: str) -> dict[str, Any]:
    assert reader.token, "the README shows curl with $TOKEN before any sign-in"
    done = subprocess.run(  # noqa: S603 (the README's command, run as a reader would)
        ["/bin/sh", "-c", command.replace(LOCAL, reader.base)],
        env={**os.environ, "TOKEN": reader.token},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


@pytest.fixture(scope="module")
def demo(test_db: TestDatabase, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`tenantry serve --demo` on a database of its own (the examples enrol MFA for alice)."""
    name, urls = create_throwaway_database(test_db.admin_url)
    try:
        migrate.migrate(urls.owner)
        env = {"DATABASE_URL": urls.app, "MIGRATION_DATABASE_URL": urls.owner}
        with serving(tmp_path_factory.mktemp("demo"), env, "--demo") as served:
            yield served
    finally:
        dbadmin.drop_database(test_db.admin_url, name)


def test_the_examples_work_in_order(demo: Served) -> None:
    reader = Reader(demo.base)
    ran = []
    for kind, text in readme_examples():
        filled = reader.fill(text)
        answer = graphql(reader, filled) if kind == "graphql" else curl(reader, filled)

        assert "data" in answer, (text, answer)
        assert not list(errors_in(answer)), (text, answer)
        reader.remember(answer["data"])
        ran.append(next(iter(answer["data"])))

    # The flows the README walks through, each seen working.
    assert ran.count("signIn") == 3
    assert ran.count("verifyMfa") == 2
    assert {"viewer", "projects", "createTask", "refreshToken", "confirmTotpEnrollment"} <= set(ran)
    assert ran[-1] == "signOut"


def test_the_demo_prints_what_the_readme_says(demo: Served) -> None:
    # Printed before the server is ready, so complete by now.
    printed = demo.output
    sign_in = re.search(
        r'signIn\(input: \{tenant: "(\S+)", email: "(\S+)", password: "(\S+)"\}', README
    )
    assert sign_in
    assert f"Demo tenant {sign_in[1]!r} ready" in printed
    assert f"all with the password {sign_in[3]}" in printed
    for email, _name, role in DEMO_USERS:
        assert re.search(rf"^\s+{re.escape(email)}\s+{role}$", printed, re.MULTILINE), email
        assert f"`{email}`" in README
    assert sign_in[2] == DEMO_USERS[0][0]
    assert sign_in[3] == DEMO_PASSWORD


def test_a_members_permissions_are_as_the_readme_shows(demo: Served) -> None:
    shown = re.search(
        r'Signed in as `(\S+)`, a member, the answer holds\s+`"roles": (\[.*?\])`'
        r'\s+and\s+`"permissions": (\[.*?\])`',
        README,
        re.DOTALL,
    )
    assert shown
    reader = Reader(demo.base)
    reader.remember(graphql(reader, SIGN_IN % (shown[1], DEMO_PASSWORD))["data"])

    viewer = graphql(reader, "{ viewer { roles { key name } permissions } }")["data"]["viewer"]

    assert viewer["roles"] == json.loads(shown[2])
    assert viewer["permissions"] == json.loads(shown[3])


SIGN_IN = (
    'mutation { signIn(input: {tenant: "demo", email: "%s", password: "%s"})'
    " { accessToken errors { code } } }"
)
