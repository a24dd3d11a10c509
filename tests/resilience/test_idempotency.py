"""Idempotency keys on mutations: a retry with the same key returns the first result and
changes nothing; the same key with other input is a CONFLICT; concurrent duplicates never
both run; the key and the result are stored in the mutation's own transaction.

Runs against the suite's live server (real PostgreSQL and Redis, the server's role).
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import psycopg
import pytest

from app.api.relay import encode_global_id
from app.cli import main
from app.core.db import Database
from app.core.security import TokenService
from app.core.settings import Settings
from app.idempotency.service import purge_expired
from tests.app_fixtures import GraphQL, Org, new_org, without_cost
from tests.conftest import TestDatabase
from tests.platform.support import new_admin, sign_in

CREATE_PROJECT = """
mutation ($name: String!) { createProject(input: {name: $name}) { project { id } errors { code } } }
"""
CREATE_TASK = """
mutation ($input: CreateTaskInput!) {
  createTask(input: $input) { task { id title } errors { code message field } }
}"""
TWO_TASKS = """
mutation ($project: ID!, $a: String!, $b: String!) {
  first: createTask(input: {projectId: $project, title: $a}) { task { id } errors { code } }
  second: createTask(input: {projectId: $project, title: $b}) { task { id } errors { code } }
}"""
WITH_DIRECTIVE = """
mutation ($input: CreateTaskInput!, $key: String!) @idempotent(key: $key) {
  createTask(input: $input) { task { id title } errors { code message field } }
}"""
SIGN_IN = """
mutation ($input: SignInInput!) { signIn(input: $input) { accessToken errors { code } } }
"""
SET_FEATURE = """
mutation ($id: ID!, $key: String!) {
  setTenantFeature(input: {id: $id, key: $key, enabled: true}) { features { key } errors { code } }
}"""


async def post(
    http: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any],
    *,
    token: str | None = None,
    key: str | None = None,
) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    if key is not None:
        headers["idempotency-key"] = key
    return await http.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )


async def new_project(gql: GraphQL, org: Org) -> str:
    data = await gql.data(CREATE_PROJECT, {"name": f"P {secrets.token_hex(3)}"}, token=org.token)
    project_id: str = data["createProject"]["project"]["id"]
    return project_id


async def tasks_titled(database: Database, org: Org, title: str) -> int:
    async with database.transaction(org.id, readonly=True) as session:
        count: int = await session.fetchval("SELECT count(*) FROM tasks WHERE title = $1", title)
    return count


async def stored_keys(database: Database, org: Org, key: str) -> int:
    async with database.transaction(org.id, readonly=True) as session:
        count: int = await session.fetchval(
            "SELECT count(*) FROM idempotency_keys WHERE key = $1", key
        )
    return count


def new_key() -> str:
    return secrets.token_hex(16)


def the_error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert body.get("data") is None, body
    [error] = body["errors"]
    return dict(error)


async def test_a_retry_with_the_same_key_returns_the_first_result_and_creates_nothing(
    http: httpx.AsyncClient, gql: GraphQL, org: Org, database: Database
) -> None:
    # given a task created with an idempotency key
    project = await new_project(gql, org)
    variables = {"input": {"projectId": project, "title": "Once"}}
    key = new_key()
    first = await post(http, CREATE_TASK, variables, token=org.token, key=key)
    assert first.status_code == 200
    assert first.json()["data"]["createTask"]["errors"] == []
    assert "idempotent-replayed" not in first.headers

    # when the client retries it, twice
    retries = [await post(http, CREATE_TASK, variables, token=org.token, key=key) for _ in "ab"]

    # then both answer exactly the first result, marked as a replay, and one task exists
    for retry in retries:
        assert retry.status_code == 200
        assert retry.json() == first.json()
        assert retry.headers["idempotent-replayed"] == "true"
    assert await tasks_titled(database, org, "Once") == 1
    assert await stored_keys(database, org, key) == 1


async def test_without_a_key_a_retry_runs_again(
    http: httpx.AsyncClient, gql: GraphQL, org: Org, database: Database
) -> None:
    project = await new_project(gql, org)
    variables = {"input": {"projectId": project, "title": "Twice"}}
    for _ in "ab":
        assert (await post(http, CREATE_TASK, variables, token=org.token)).status_code == 200
    assert await tasks_titled(database, org, "Twice") == 2


async def test_the_same_key_with_other_input_is_a_conflict_and_changes_nothing(
    http: httpx.AsyncClient, gql: GraphQL, org: Org, database: Database
) -> None:
    # given
    project = await new_project(gql, org)
    key = new_key()
    first = {"input": {"projectId": project, "title": "Original"}}
    assert (await post(http, CREATE_TASK, first, token=org.token, key=key)).status_code == 200

    # when the key comes back with other variables, and with another document
    other_input = {"input": {"projectId": project, "title": "Other"}}
    answers = [
        await post(http, CREATE_TASK, other_input, token=org.token, key=key),
        await post(http, CREATE_TASK + " ", first, token=org.token, key=key),
    ]

    # then
    for answer in answers:
        error = the_error(answer)
        assert error["extensions"] == {"code": "CONFLICT", "field": "Idempotency-Key"}
        assert error["message"] == "This idempotency key was used for a different request"
    assert await tasks_titled(database, org, "Other") == 0
    assert await tasks_titled(database, org, "Original") == 1


async def test_the_directive_is_the_header_for_clients_that_cannot_set_one(
    http: httpx.AsyncClient, gql: GraphQL, org: Org, database: Database
) -> None:
    # given
    project = await new_project(gql, org)
    key = new_key()
    variables = {"input": {"projectId": project, "title": "Directive"}, "key": key}

    # when sent twice with @idempotent(key:), then once with the same key in the header too
    first = await post(http, WITH_DIRECTIVE, variables, token=org.token)
    again = await post(http, WITH_DIRECTIVE, variables, token=org.token)
    both = await post(http, WITH_DIRECTIVE, variables, token=org.token, key=key)
    differing = await post(http, WITH_DIRECTIVE, variables, token=org.token, key=new_key())

    # then one task; the header agreeing with the directive is the same key
    assert first.json()["data"]["createTask"]["errors"] == []
    assert again.json() == first.json() == both.json()
    assert again.headers["idempotent-replayed"] == both.headers["idempotent-replayed"] == "true"
    assert await tasks_titled(database, org, "Directive") == 1
    # and a header naming another key is refused before anything runs
    assert the_error(differing)["extensions"] == {"code": "INVALID", "field": "Idempotency-Key"}


async def test_a_multi_field_operation_is_replayed_whole(
    http: httpx.AsyncClient, gql: GraphQL, org: Org, database: Database
) -> None:
    project = await new_project(gql, org)
    variables = {"project": project, "a": "Multi A", "b": "Multi B"}
    key = new_key()
    first = await post(http, TWO_TASKS, variables, token=org.token, key=key)
    retry = await post(http, TWO_TASKS, variables, token=org.token, key=key)
    assert retry.json() == first.json()
    assert list(retry.json()["data"]) == ["first", "second"]  # the fields in the order asked
    assert await tasks_titled(database, org, "Multi A") == 1
    assert await tasks_titled(database, org, "Multi B") == 1


async def test_an_expected_failure_is_the_stored_result_too(
    http: httpx.AsyncClient, gql: GraphQL, org: Org, database: Database
) -> None:
    # given a request whose answer is a typed failure (nothing was created)
    project = await new_project(gql, org)
    variables = {"input": {"projectId": project, "title": ""}}
    key = new_key()
    first = await post(http, CREATE_TASK, variables, token=org.token, key=key)
    [error] = first.json()["data"]["createTask"]["errors"]
    assert error["code"] == "INVALID"

    # when retried, the same answer, replayed
    retry = await post(http, CREATE_TASK, variables, token=org.token, key=key)
    assert retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"


async def test_an_operation_that_fails_as_a_whole_keeps_no_key(
    http: httpx.AsyncClient, gql: GraphQL, org: Org, database: Database, tokens: TokenService
) -> None:
    # given a reader (no task:write:own): createTask is refused as the operation's error
    reader = await new_org(database, tokens, role="viewer")
    key = new_key()
    variables = {"input": {"projectId": await new_project(gql, org), "title": "Refused"}}

    # when
    first = await post(http, CREATE_TASK, variables, token=reader.token, key=key)
    again = await post(http, CREATE_TASK, variables, token=reader.token, key=key)

    # then nothing was stored with the rolled-back operation: the retry ran (and failed) again
    assert the_error(first)["extensions"]["code"] == "FORBIDDEN"
    assert "idempotent-replayed" not in again.headers
    assert await stored_keys(database, reader, key) == 0


async def test_keys_belong_to_one_user_of_one_tenant(
    http: httpx.AsyncClient, gql: GraphQL, org: Org, other_org: Org, database: Database
) -> None:
    # given a key used by the first member
    key = new_key()
    project = await new_project(gql, org)
    variables = {"input": {"projectId": project, "title": "Per user"}}
    await post(http, CREATE_TASK, variables, token=org.token, key=key)

    # when another member of the tenant, and a user of another tenant, use the same key
    colleague = await post(http, CREATE_TASK, variables, token=org.members[1].token, key=key)
    theirs_project = await new_project(gql, other_org)
    theirs = await post(
        http,
        CREATE_TASK,
        {"input": {"projectId": theirs_project, "title": "Per user"}},
        token=other_org.token,
        key=key,
    )

    # then each ran as a new request of its own
    assert "idempotent-replayed" not in colleague.headers
    assert "idempotent-replayed" not in theirs.headers
    assert await tasks_titled(database, org, "Per user") == 2
    assert await tasks_titled(database, other_org, "Per user") == 1


async def test_concurrent_duplicates_never_both_run(
    http: httpx.AsyncClient, gql: GraphQL, org: Org, database: Database
) -> None:
    # given
    project = await new_project(gql, org)
    variables = {"input": {"projectId": project, "title": "Racing"}}
    key = new_key()

    # when five identical requests arrive at once
    answers = await asyncio.gather(
        *(post(http, CREATE_TASK, variables, token=org.token, key=key) for _ in range(5))
    )

    # then one ran; the others waited for it and got its result (or, past the lock timeout,
    # were refused to retry later)
    assert await tasks_titled(database, org, "Racing") == 1
    created = [a for a in answers if "data" in a.json() and a.json()["data"] is not None]
    assert created
    assert all(a.json() == created[0].json() for a in created)
    refused = [a for a in answers if a not in created]
    assert all(the_error(a)["extensions"]["code"] == "CONFLICT" for a in refused)
    assert sum("idempotent-replayed" not in a.headers for a in created) == 1


@pytest.mark.parametrize(
    "key", ["", "x" * 256, "naïve", "with space"], ids=["empty", "long", "unicode", "space"]
)
async def test_a_malformed_key_is_refused_before_anything_runs(
    http: httpx.AsyncClient, gql: GraphQL, org: Org, database: Database, key: str
) -> None:
    project = await new_project(gql, org)
    title = f"Malformed {secrets.token_hex(3)}"
    variables = {"input": {"projectId": project, "title": title}}
    response = await http.post(
        "/graphql",
        json={"query": CREATE_TASK, "variables": variables},
        headers={
            "authorization": f"Bearer {org.token}",
            "idempotency-key": key.encode(),
        },
    )
    assert the_error(response)["extensions"] == {"code": "INVALID", "field": "Idempotency-Key"}
    assert await tasks_titled(database, org, title) == 0


async def test_a_quoted_key_is_the_key_inside_the_quotes(
    http: httpx.AsyncClient, gql: GraphQL, org: Org, database: Database
) -> None:
    project = await new_project(gql, org)
    variables = {"input": {"projectId": project, "title": "Quoted"}}
    key = new_key()
    await post(http, CREATE_TASK, variables, token=org.token, key=f'"{key}"')
    retry = await post(http, CREATE_TASK, variables, token=org.token, key=key)
    assert retry.headers["idempotent-replayed"] == "true"
    assert await tasks_titled(database, org, "Quoted") == 1


async def test_an_anonymous_mutation_with_a_key_is_refused(
    http: httpx.AsyncClient, org: Org
) -> None:
    variables = {"input": {"tenant": org.slug, "email": org.members[0].email, "password": "x"}}
    response = await post(http, SIGN_IN, variables, key=new_key())
    error = the_error(response)
    assert error["extensions"] == {"code": "INVALID", "field": "Idempotency-Key"}
    assert error["message"] == "Idempotency keys need a signed-in caller"


async def test_a_query_ignores_the_key(http: httpx.AsyncClient, org: Org) -> None:
    response = await post(http, "{ tenant { slug } }", {}, token=org.token, key=new_key())
    assert without_cost(response.json()) == {"data": {"tenant": {"slug": org.slug}}}


async def test_an_expired_key_runs_as_a_new_request_and_is_purged(
    http: httpx.AsyncClient,
    gql: GraphQL,
    org: Org,
    database: Database,
    test_db: TestDatabase,
) -> None:
    # given two keys, one of them older than a day
    project = await new_project(gql, org)
    old, fresh = new_key(), new_key()
    for key, title in ((old, "Old key"), (fresh, "Fresh key")):
        variables = {"input": {"projectId": project, "title": title}}
        await post(http, CREATE_TASK, variables, token=org.token, key=key)
    admin = await asyncpg.connect(test_db.admin_db_url)
    try:
        await admin.execute(
            "UPDATE idempotency_keys SET created_at = created_at - $2::interval"
            " WHERE tenant_id = $1 AND key = $3",
            org.id,
            timedelta(hours=24, seconds=1),
            old,
        )
        # when the old key is used again, it is a new request
        variables = {"input": {"projectId": project, "title": "Old key"}}
        again = await post(http, CREATE_TASK, variables, token=org.token, key=old)
        assert "idempotent-replayed" not in again.headers
        assert await tasks_titled(database, org, "Old key") == 2
        # and after it expires once more, the purge removes it and keeps the fresh one
        await admin.execute(
            "UPDATE idempotency_keys SET created_at = created_at - $2::interval"
            " WHERE tenant_id = $1 AND key = $3",
            org.id,
            timedelta(hours=24, seconds=1),
            old,
        )
        purged = await purge_expired(database)
    finally:
        await admin.close()

    assert purged >= 1
    assert await stored_keys(database, org, old) == 0
    assert await stored_keys(database, org, fresh) == 1


async def test_a_platform_administrators_keys_are_kept_in_the_platform_scope(
    http: httpx.AsyncClient,
    gql: GraphQL,
    org: Org,
    database: Database,
    app_settings: Settings,
) -> None:
    # given a platform administrator
    admin = await new_admin(database, app_settings)
    token = await sign_in(gql, admin)
    variables = {"id": encode_global_id("Tenant", org.id), "key": f"flag{secrets.token_hex(3)}"}
    key = new_key()

    # when a platform mutation is retried with its key
    first = await post(http, SET_FEATURE, variables, token=token, key=key)
    retry = await post(http, SET_FEATURE, variables, token=token, key=key)

    # then the retry is the replay, and the key lives in the platform's table only
    assert first.json()["data"]["setTenantFeature"]["errors"] == []
    assert retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"
    async with database.transaction(None, readonly=True, platform=True) as session:
        stored = await session.fetchval(
            "SELECT count(*) FROM platform_idempotency_keys WHERE admin_id = $1 AND key = $2",
            admin.id,
            key,
        )
    assert stored == 1
    assert await stored_keys(database, org, key) == 0


def test_the_purge_command_deletes_expired_keys_and_says_how_many(
    test_db: TestDatabase, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # given an expired key of a tenant (written as the administrator: setup only)
    key = new_key()
    with psycopg.connect(test_db.admin_db_url, autocommit=True) as conn:
        tenant = conn.execute(
            "INSERT INTO tenants (slug, name) VALUES (%s, 'Purge') RETURNING id",
            (f"org-{secrets.token_hex(5)}",),
        ).fetchone()
        assert tenant is not None
        user = conn.execute(
            "INSERT INTO users (tenant_id, email, display_name) VALUES (%s, %s, 'U') RETURNING id",
            (tenant[0], f"{key}@example.com"),
        ).fetchone()
        assert user is not None
        conn.execute(
            "INSERT INTO idempotency_keys (tenant_id, user_id, key, request_digest, response,"
            " created_at) VALUES (%s, %s, %s, %s, '{}', now() - interval '25 hours')",
            (tenant[0], user[0], key, secrets.token_bytes(32)),
        )

        # when the retention job runs as the server's role
        monkeypatch.setenv("DATABASE_URL", test_db.urls.app)
        assert main(["idempotency", "purge-expired"]) == 0

        # then
        left = conn.execute("SELECT count(*) FROM idempotency_keys WHERE key = %s", (key,))
        assert left.fetchone() == (0,)
    out = capsys.readouterr().out.strip()
    assert out.startswith("deleted ")
    assert out.endswith(" expired idempotency key(s)")
    assert int(out.split()[1]) >= 1


async def test_a_key_costs_two_statements_and_a_replay_runs_no_mutation(
    http: httpx.AsyncClient, gql: GraphQL, org: Org, statements: list[str]
) -> None:
    # given
    project = await new_project(gql, org)
    key = new_key()

    def keys(seen: list[str]) -> list[str]:
        return [s for s in seen if "idempotency_keys" in s]

    # when a task is created without a key, with one, and then retried
    statements.clear()
    variables = {"input": {"projectId": project, "title": "Counted without"}}
    await post(http, CREATE_TASK, variables, token=org.token)
    unkeyed = list(statements)
    statements.clear()
    variables = {"input": {"projectId": project, "title": "Counted with"}}
    await post(http, CREATE_TASK, variables, token=org.token, key=key)
    keyed = list(statements)
    statements.clear()
    replay = await post(http, CREATE_TASK, variables, token=org.token, key=key)
    replayed = list(statements)

    # then the key is one INSERT (the claim) and one UPDATE (the result) more
    assert keys(unkeyed) == []
    assert [s.split()[0] for s in keys(keyed)] == ["INSERT", "UPDATE"]
    # and the replay only claims and reads the key: no statement of the mutation runs
    assert replay.headers["idempotent-replayed"] == "true"
    assert [s.split()[0] for s in keys(replayed)] == ["INSERT", "SELECT"]
    assert not any("tasks" in s for s in replayed)
