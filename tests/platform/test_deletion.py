"""deleteTenant / restoreTenant / purgeTenant: a deleted tenant is blocked like a suspended
one and restorable during the retention period; a purge erases every row of it in every
tenant table (found in the catalog) and leaves the record in the platform audit log."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from app.api.relay import encode_global_id
from app.core.db import Database
from app.core.security import TokenService
from app.core.settings import Settings
from app.platform import lifecycle
from app.tenants import queries as tenant_queries
from tests.accounts.support import audit
from tests.app_fixtures import PASSWORD, GraphQL, Org, new_org
from tests.auth.helpers import sign_in
from tests.conftest import TestDatabase
from tests.factories import TENANT_TABLES_SQL, fingerprint
from tests.platform.support import AUDIT, Admin, codes, new_admin
from tests.platform.support import sign_in as platform_sign_in
from tests.rbac.test_matrix import (
    ADD_COMMENT,
    ADD_IDENTITY_PROVIDER,
    CREATE_PROJECT,
    CREATE_ROLE,
    CREATE_TASK,
    INVITE_USER,
)

DELETE = """
mutation ($input: DeleteTenantInput!) {
  deleteTenant(input: $input) { tenant { status } errors { code message field } }
}"""
RESTORE = """
mutation ($input: RestoreTenantInput!) {
  restoreTenant(input: $input) { tenant { status } errors { code message field } }
}"""
PURGE = """
mutation ($input: PurgeTenantInput!) {
  purgeTenant(input: $input) { purgedId rowsDeleted errors { code message field } }
}"""
VIEWER = "{ viewer { email } }"


def tid(tenant: UUID) -> str:
    return encode_global_id("Tenant", tenant)


@pytest.fixture
async def operator(gql: GraphQL, database: Database, app_settings: Settings) -> tuple[Admin, str]:
    admin = await new_admin(database, app_settings, permissions=["tenant:delete", "platform:audit"])
    return admin, await platform_sign_in(gql, admin)


@pytest.fixture
async def customer(database: Database, tokens: TokenService) -> Org:
    return await new_org(database, tokens, members=2, password=PASSWORD, role="owner")


async def call(gql: GraphQL, document: str, token: str, **values: Any) -> Any:
    body = await gql.data(document, {"input": values}, token=token)
    return next(iter(body.values()))


async def test_a_deleted_tenant_is_blocked_then_restored(
    gql: GraphQL, database: Database, operator: tuple[Admin, str], customer: Org
) -> None:
    member = customer.members[0]

    deleted = await call(gql, DELETE, operator[1], id=tid(customer.id), reason="churned")

    assert deleted == {"tenant": {"status": "DELETED"}, "errors": []}
    response = await gql.post(VIEWER, token=customer.token)
    assert response.status_code == 403
    assert response.json()["errors"][0]["extensions"]["code"] == "TENANT_SUSPENDED"
    # A deleted tenant signs in like one that does not exist.
    failed = await sign_in(gql, customer.slug, member.email, PASSWORD)
    assert [e["code"] for e in failed["errors"]] == ["INVALID_CREDENTIALS"]

    restored = await call(gql, RESTORE, operator[1], id=tid(customer.id), reason="came back")

    assert restored == {"tenant": {"status": "ACTIVE"}, "errors": []}
    assert (await sign_in(gql, customer.slug, member.email, PASSWORD))["errors"] == []
    actions = [e["action"] for e in await audit(database, customer.id, "tenant.")]
    assert actions == ["tenant.deleted", "tenant.restored"]


async def test_after_the_retention_period_a_tenant_can_only_be_purged(
    gql: GraphQL,
    database: Database,
    app_settings: Settings,
    operator: tuple[Admin, str],
    customer: Org,
) -> None:
    await call(gql, DELETE, operator[1], id=tid(customer.id), reason="churned")
    async with database.transaction(customer.id) as session:
        await session.execute(
            "UPDATE tenants SET deleted_at = now() - make_interval(days => $1 + 1)",
            app_settings.tenant_retention_days,
        )

    restored = await call(gql, RESTORE, operator[1], id=tid(customer.id))

    assert restored["tenant"] is None
    assert [(e["code"], e["field"]) for e in restored["errors"]] == [("CONFLICT", "id")]
    assert "retention period" in restored["errors"][0]["message"]


async def test_a_purge_that_stopped_half_way_cannot_be_restored(
    gql: GraphQL, database: Database, operator: tuple[Admin, str], customer: Org
) -> None:
    await call(gql, DELETE, operator[1], id=tid(customer.id), reason="churned")
    async with database.transaction(customer.id) as session:
        await tenant_queries.close_retention(session)  # the purge's first step, then a crash

    restored = await call(gql, RESTORE, operator[1], id=tid(customer.id))
    purged = await call(gql, PURGE, operator[1], id=tid(customer.id))

    assert [(e["code"], e["field"]) for e in restored["errors"]] == [("CONFLICT", "id")]
    assert purged["errors"] == []


async def test_only_a_deleted_tenant_is_purged(
    gql: GraphQL, database: Database, operator: tuple[Admin, str], customer: Org
) -> None:
    before = await fingerprint(database, customer.id)

    purged = await call(gql, PURGE, operator[1], id=tid(customer.id))

    assert purged["purgedId"] is None
    assert [(e["code"], e["field"]) for e in purged["errors"]] == [("CONFLICT", "id")]
    assert await fingerprint(database, customer.id) == before


async def rows_of(test_db: TestDatabase, tenant: UUID) -> dict[str, int]:
    """Rows of the tenant in every tenant table, counted past row-level security."""
    conn = await asyncpg.connect(test_db.admin_db_url)
    try:
        counts = {}
        for table in await conn.fetch(TENANT_TABLES_SQL):
            name, key = table["name"], table["key"]
            counts[name] = await conn.fetchval(
                f"SELECT count(*) FROM {name} WHERE {key} = $1",  # noqa: S608 (catalog names)
                tenant,
            )
        return counts
    finally:
        await conn.close()


async def fill(gql: GraphQL, org: Org) -> None:
    """Rows in as many tenant tables as the API reaches."""
    token = org.token
    await sign_in(gql, org.slug, org.members[1].email, PASSWORD)  # sessions, refresh tokens
    project = (await gql.data(CREATE_PROJECT, token=token))["createProject"]
    projects = await gql.data("{ projects { nodes { id } } }", token=token)
    project_id = projects["projects"]["nodes"][0]["id"]
    assert project["errors"] == []
    task = await gql.data(CREATE_TASK, {"project": project_id}, token=token)
    tasks = await gql.data("{ tasks { nodes { id } } }", token=token)
    assert task["createTask"]["errors"] == []
    await gql.data(ADD_COMMENT, {"task": tasks["tasks"]["nodes"][0]["id"]}, token=token)
    await gql.data(INVITE_USER, {"email": "new@purge.example"}, token=token)  # tokens, outbox
    await gql.data(CREATE_ROLE, token=token)  # a custom role and its permissions
    await gql.data(ADD_IDENTITY_PROVIDER, token=token)
    await gql.data("mutation { startTotpEnrollment { errors { code } } }", token=token)


@pytest.mark.parametrize("batch", [lifecycle.PURGE_BATCH_ROWS, 2])
async def test_purge_leaves_no_row_of_the_tenant_in_any_table(
    gql: GraphQL,
    database: Database,
    test_db: TestDatabase,
    operator: tuple[Admin, str],
    customer: Org,
    other_org: Org,
    monkeypatch: pytest.MonkeyPatch,
    batch: int,
) -> None:
    monkeypatch.setattr(lifecycle, "PURGE_BATCH_ROWS", batch)
    await fill(gql, customer)
    await call(gql, DELETE, operator[1], id=tid(customer.id), reason="contract ended")
    before = await rows_of(test_db, customer.id)
    filled = sorted(t for t, n in before.items() if n)
    assert len(filled) >= 15, filled
    neighbour = await fingerprint(database, other_org.id)

    purged = await call(gql, PURGE, operator[1], id=tid(customer.id), reason="GDPR request")

    assert purged == {
        "purgedId": tid(customer.id),
        "rowsDeleted": sum(before.values()),
        "errors": [],
    }
    assert await rows_of(test_db, customer.id) == dict.fromkeys(before, 0)
    assert await fingerprint(database, other_org.id) == neighbour
    # The record outside the tenant, with what was deleted.
    [entry] = [
        e
        for e in (await gql.data(AUDIT, {"action": "tenant.purged"}, token=operator[1]))[
            "platformAuditLog"
        ]["nodes"]
        if e["targetId"] == str(customer.id)
    ]
    assert entry["metadata"]["reason"] == "GDPR request"
    assert {t: n for t, n in entry["metadata"]["rows"].items() if n} == {
        t: n for t, n in before.items() if n
    }
    # Nothing left to restore.
    gone = await call(gql, RESTORE, operator[1], id=tid(customer.id))
    assert [e["code"] for e in gone["errors"]] == ["NOT_FOUND"]


@pytest.mark.parametrize(
    ("document", "values", "code", "field"),
    [
        (DELETE, {"reason": " "}, "INVALID", "reason"),
        (DELETE, {"id": "garbage"}, "INVALID", "id"),
        (DELETE, {"id": tid(uuid4())}, "NOT_FOUND", "id"),
        (RESTORE, {"reason": "r" * 501}, "INVALID", "reason"),
        (PURGE, {"id": tid(uuid4())}, "NOT_FOUND", "id"),
        (PURGE, {"reason": "r" * 501}, "INVALID", "reason"),
    ],
)
async def test_bad_input_is_a_clear_error_and_changes_nothing(
    gql: GraphQL,
    database: Database,
    operator: tuple[Admin, str],
    customer: Org,
    document: str,
    values: dict[str, str],
    code: str,
    field: str,
) -> None:
    before = await fingerprint(database, customer.id)
    given = {"id": tid(customer.id), **values}
    if document == DELETE:
        given.setdefault("reason", "why")

    payload = await call(gql, document, operator[1], **given)

    assert [(e["code"], e["field"]) for e in payload["errors"]] == [(code, field)]
    assert await fingerprint(database, customer.id) == before


async def test_only_holders_of_tenant_delete(
    gql: GraphQL, database: Database, app_settings: Settings, customer: Org
) -> None:
    suspender = await new_admin(database, app_settings, permissions=["tenant:suspend"])
    token = await platform_sign_in(gql, suspender)
    before = await fingerprint(database, customer.id)

    for document in (DELETE, RESTORE, PURGE):
        values: dict[str, Any] = {"id": tid(customer.id)}
        if document == DELETE:
            values["reason"] = "x"
        assert codes(await gql(document, {"input": values}, token=token)) == ["FORBIDDEN"]
        assert codes(await gql(document, {"input": values}, token=customer.token)) == ["FORBIDDEN"]

    assert await fingerprint(database, customer.id) == before
