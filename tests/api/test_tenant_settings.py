"""Typed tenant settings (updateTenantSettings, tenant:settings): each validated, each applied
where it matters (new sessions, new tasks), every change in the audit log."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import asyncpg
import pytest

from app.core.db import Database
from app.core.security import TokenService
from tests.accounts.support import audit
from tests.app_fixtures import PASSWORD, GraphQL, Org, new_org
from tests.auth.helpers import sign_in
from tests.factories import fingerprint

UPDATE = """
mutation ($input: TenantSettingsInput!) {
  updateTenantSettings(input: $input) {
    tenant { mfaRequired sessionLifetimeHours defaultTaskStatus }
    errors { code message field }
  }
}"""
PROJECT = 'mutation { createProject(input: {name: "P"}) { project { id } errors { code } } }'
TASK = """
mutation ($project: ID!, $status: TaskStatus) {
  createTask(input: {projectId: $project, title: "T", status: $status}) {
    task { status } errors { code }
  }
}"""


async def update(gql: GraphQL, org: Org, **values: Any) -> Any:
    return (await gql.data(UPDATE, {"input": values}, token=org.token))["updateTenantSettings"]


@pytest.fixture
async def team(database: Database, tokens: TokenService) -> Org:
    return await new_org(database, tokens, members=1, password=PASSWORD)


async def test_settings_are_changed_and_audited_once(
    gql: GraphQL, database: Database, team: Org
) -> None:
    payload = await update(gql, team, sessionLifetimeHours=8, defaultTaskStatus="IN_PROGRESS")
    again = await update(gql, team, sessionLifetimeHours=8)

    expected = {"mfaRequired": False, "sessionLifetimeHours": 8, "defaultTaskStatus": "IN_PROGRESS"}
    assert payload == {"tenant": expected, "errors": []}
    assert again == payload
    [entry] = await audit(database, team.id, "tenant.settings_changed")
    assert entry["metadata"] == {
        "changes": {
            "session_lifetime_hours": [None, 8],
            "default_task_status": ["todo", "in_progress"],
        }
    }
    reset = await update(gql, team, sessionLifetimeHours=None)
    assert reset["tenant"]["sessionLifetimeHours"] is None


async def test_new_tasks_get_the_default_status(gql: GraphQL, team: Org) -> None:
    await update(gql, team, defaultTaskStatus="BLOCKED")
    project = (await gql.data(PROJECT, token=team.token))["createProject"]["project"]["id"]

    implicit = await gql.data(TASK, {"project": project}, token=team.token)
    explicit = await gql.data(TASK, {"project": project, "status": "DONE"}, token=team.token)

    assert implicit["createTask"]["task"]["status"] == "BLOCKED"
    assert explicit["createTask"]["task"]["status"] == "DONE"


async def test_new_sessions_last_the_tenants_lifetime(gql: GraphQL, team: Org) -> None:
    await update(gql, team, sessionLifetimeHours=2)

    signed_in = await sign_in(gql, team.slug, team.members[0].email, PASSWORD)

    ends = datetime.fromisoformat(signed_in["refreshExpiresAt"]).timestamp()
    assert abs(ends - (time.time() + 2 * 3600)) < 60


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"sessionLifetimeHours": 0}, "sessionLifetimeHours"),
        ({"sessionLifetimeHours": 2161}, "sessionLifetimeHours"),
        ({"mfaRequired": None}, "mfaRequired"),
        ({"defaultTaskStatus": None}, "defaultTaskStatus"),
    ],
)
async def test_bad_values_are_invalid_and_change_nothing(
    gql: GraphQL, database: Database, team: Org, values: dict[str, Any], field: str
) -> None:
    before = await fingerprint(database, team.id)

    payload = await update(gql, team, **values)

    assert payload["tenant"] is None
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [("INVALID", field)]
    assert await fingerprint(database, team.id) == before


ORIGINS = """
mutation ($origins: [String!]) {
  updateTenantSettings(input: {corsOrigins: $origins}) {
    tenant { corsOrigins } errors { code message field }
  }
}"""


async def set_origins(gql: GraphQL, org: Org, origins: list[str] | None) -> Any:
    data = await gql.data(ORIGINS, {"origins": origins}, token=org.token)
    return data["updateTenantSettings"]


async def test_cors_origins_are_stored_normalised_shown_and_audited(
    gql: GraphQL, database: Database, team: Org
) -> None:
    payload = await set_origins(
        gql,
        team,
        ["HTTPS://Portal.Example.com:443", "http://localhost:5173", "https://portal.example.com"],
    )
    shown = await gql.data("{ tenant { corsOrigins } }", token=team.token)
    cleared = await set_origins(gql, team, [])

    expected = ["https://portal.example.com", "http://localhost:5173"]
    assert payload == {"tenant": {"corsOrigins": expected}, "errors": []}
    assert shown == {"tenant": {"corsOrigins": expected}}
    assert cleared == {"tenant": {"corsOrigins": []}, "errors": []}
    entries = await audit(database, team.id, "tenant.settings_changed")
    assert [e["metadata"] for e in entries] == [
        {"changes": {"cors_origins": [[], expected]}},
        {"changes": {"cors_origins": [expected, []]}},
    ]


@pytest.mark.parametrize(
    ("origins", "message"),
    [
        (["https://*.example.com"], "wildcards"),
        (["https://portal.example.com/app"], "without a path"),
        (["null"], "https://"),
        (["portal.example.com"], "https://"),
        (["https://user@portal.example.com"], "one host"),
        ([f"https://p{i}.example.com" for i in range(21)], "at most 20"),
        (None, "cannot be null"),
    ],
)
async def test_bad_cors_origins_are_invalid_and_change_nothing(
    gql: GraphQL, database: Database, team: Org, origins: list[str] | None, message: str
) -> None:
    await set_origins(gql, team, ["https://portal.example.com"])
    before = await fingerprint(database, team.id)

    payload = await set_origins(gql, team, origins)

    assert payload["tenant"] is None
    [error] = payload["errors"]
    assert (error["code"], error["field"]) == ("INVALID", "corsOrigins")
    assert message in error["message"]
    assert await fingerprint(database, team.id) == before


@pytest.mark.parametrize(
    "origins",
    [
        ["https://portal.example.com/app"],
        ["https://*.example.com"],
        ["javascript:alert(1)"],
        ["https://portal.example.com", None],
        [f"https://p{i}.example.com" for i in range(21)],
    ],
)
async def test_the_database_refuses_what_the_service_would(
    database: Database, team: Org, origins: list[str | None]
) -> None:
    # The last line of defence, for a write that bypasses the service (e.g. a bug, an import).
    with pytest.raises(asyncpg.CheckViolationError):
        async with database.transaction(team.id) as session:
            await session.execute("UPDATE tenants SET cors_origins = $1", origins)
