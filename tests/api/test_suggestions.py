"""No "Did you mean …?" of any kind where introspection is off (production): a suggestion maps
a hidden schema as well as introspection would. Each kind of suggestion graphql-core makes is
tried in a document (validation) and, where it can be, in the variables (coercion)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from app.core.db import Database
from app.core.settings import Settings
from tests.app_fixtures import GraphQL, Org, start_server, stop_server

TASKS_BY_STATUS = "query ($s: [TaskStatus!]) { tasks(filter: {status: $s}) { totalCount } }"
TASKS_BY_FILTER = "query ($f: TaskFilter) { tasks(filter: $f) { totalCount } }"

# kind: (document, variables, the misspelling the message names, what it would suggest)
MISTAKES: dict[str, tuple[str, dict[str, Any] | None, str, str]] = {
    "field": ("{ viewr { email } }", None, "viewr", "'viewer'"),
    "argument": ("{ projects(frist: 1) { totalCount } }", None, "frist", "'first'"),
    "type": (
        "query ($n: Intt) { projects(first: $n) { totalCount } }",
        None,
        "Intt",
        "'Int'",
    ),
    "enum-value": ("{ tasks(filter: {status: [TODOO]}) { totalCount } }", None, "TODOO", "'TODO'"),
    "input-field": ("{ tasks(filter: {statu: [TODO]}) { totalCount } }", None, "statu", "'status'"),
    "enum-value-variable": (TASKS_BY_STATUS, {"s": ["TODOO"]}, "TODOO", "'TODO'"),
    "input-field-variable": (TASKS_BY_FILTER, {"f": {"statu": ["TODO"]}}, "statu", "'status'"),
}


@pytest.fixture(scope="module")
async def production(
    app_settings: Settings, database: Database, gql: GraphQL
) -> AsyncIterator[GraphQL]:
    # After the development server (`gql`), which creates the MFA key file production reads.
    settings = replace(app_settings, environment="production", graphiql=False, introspection=False)
    server, url = await start_server(settings, database)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield GraphQL(client)
    finally:
        await stop_server(server)


def _message(body: dict[str, Any]) -> str:
    # A request error: the document (validation) or its variables (coercion) refused.
    assert "data" not in body
    [error] = body["errors"]
    assert error["extensions"]["code"] in ("GRAPHQL_VALIDATION_FAILED", "BAD_USER_INPUT")
    message: str = error["message"]
    return message


@pytest.mark.parametrize("kind", list(MISTAKES))
async def test_production_suggests_nothing(production: GraphQL, org: Org, kind: str) -> None:
    # given
    document, variables, mistake, suggestion = MISTAKES[kind]

    # when
    body = await production(document, variables, token=org.token)
    message = _message(body)

    # then: the mistake is named, nothing of the schema is suggested
    code = "BAD_USER_INPUT" if variables else "GRAPHQL_VALIDATION_FAILED"
    assert body["errors"][0]["extensions"]["code"] == code
    assert mistake in message
    assert "Did you mean" not in message
    assert suggestion not in message


@pytest.mark.parametrize("kind", list(MISTAKES))
async def test_development_suggests(gql: GraphQL, org: Org, kind: str) -> None:
    # given
    document, variables, mistake, suggestion = MISTAKES[kind]

    # when
    message = _message(await gql(document, variables, token=org.token))

    # then: the same mistakes do get suggestions where introspection is on
    assert mistake in message
    assert "Did you mean" in message
    assert suggestion in message
