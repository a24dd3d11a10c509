"""`tenantry tenant purge-expired`: the scheduled retention job purges every deleted tenant
whose retention period is over (and finishes interrupted purges) with the purgeTenant
purge, recorded as the system; it leaves every other tenant alone and is safe to re-run."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from app.cli import main
from app.core.db import Database
from app.core.security import TokenService
from app.platform import retention
from app.platform.models import ExpiredTenant
from app.tenants import queries as tenant_queries
from app.tenants.models import TenantStatus
from tests.app_fixtures import PASSWORD, GraphQL, Org, new_org
from tests.conftest import TestDatabase
from tests.factories import fingerprint, seed_project
from tests.platform.test_cli import operator_env, tenantry  # noqa: F401 (a fixture)
from tests.platform.test_deletion import fill, rows_of

pytestmark = pytest.mark.usefixtures("operator_env")

RETENTION_DAYS = 7
# Any line of the job's output about one tenant: its slug and id.
LINE = re.compile(r"^(?:would purge|purged) (\S+) \(([0-9a-f-]{36})\)", re.MULTILINE)


@pytest.fixture(autouse=True)
def retention_days(monkeypatch: pytest.MonkeyPatch) -> None:
    # Short enough to set up either side of it; long enough that tenants other tests deleted
    # during this run are still within it.
    monkeypatch.setenv("TENANTRY_TENANT_RETENTION_DAYS", str(RETENTION_DAYS))


async def delete(database: Database, tenant: UUID, *, days_ago: int | None) -> None:
    """Delete the tenant as deleteTenant does, `days_ago`; None: a purge of it began and
    stopped (its first step, then a crash)."""
    async with database.transaction(tenant) as session:
        await tenant_queries.set_status(session, TenantStatus.DELETED)
        if days_ago is None:
            await tenant_queries.close_retention(session)
        else:
            await session.execute(
                "UPDATE tenants SET deleted_at = now() - make_interval(days => $1)", days_ago
            )


async def suspend(database: Database, tenant: UUID) -> None:
    async with database.transaction(tenant) as session:
        await tenant_queries.set_status(session, TenantStatus.SUSPENDED)


def listed(out: str) -> dict[UUID, str]:
    """Each tenant the output names, by id: the line naming it."""
    lines = {UUID(m.group(2)): m.group(0) for m in LINE.finditer(out)}
    assert len(lines) == len(out.splitlines()), out
    return lines


async def expired_elsewhere(test_db: TestDatabase, tenants: set[UUID]) -> bool:
    """Whether every one of `tenants` is deleted and past the retention period, checked
    past row-level security (for tenants other tests of this run left behind)."""
    conn = await asyncpg.connect(test_db.admin_db_url)
    try:
        return bool(
            await conn.fetchval(
                "SELECT count(*) = cardinality($1::uuid[]) FROM tenants WHERE id = ANY($1)"
                " AND status = 'deleted' AND (deleted_at = '-infinity'"
                " OR deleted_at < now() - make_interval(days => $2))",
                list(tenants),
                RETENTION_DAYS,
            )
        )
    finally:
        await conn.close()


async def purge_entries(database: Database, tenant: UUID) -> list[dict[str, Any]]:
    async with database.transaction(None, readonly=True, platform=True) as session:
        rows = await session.fetch(
            "SELECT outcome, actor_kind, actor_id, user_agent, metadata FROM platform_audit_log"
            " WHERE action = 'tenant.purged' AND target_id = $1",
            str(tenant),
        )
    return [dict(r) for r in rows]


async def org(database: Database, tokens: TokenService) -> Org:
    return await new_org(database, tokens, members=2, password=PASSWORD, role="owner")


async def test_expired_and_half_purged_tenants_are_purged_and_no_other(
    gql: GraphQL,
    database: Database,
    test_db: TestDatabase,
    tokens: TokenService,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a deleted tenant past its retention period, one whose purge stopped half-way,
    # one deleted within the period, a suspended one and an active one, each with rows.
    expired, half, recent, suspended, active = [await org(database, tokens) for _ in range(5)]
    await fill(gql, expired)
    for other in (half, recent, suspended, active):
        await seed_project(database, other.id)
    await delete(database, expired.id, days_ago=RETENTION_DAYS + 1)
    await delete(database, half.id, days_ago=None)
    await delete(database, recent.id, days_ago=RETENTION_DAYS - 1)
    await suspend(database, suspended.id)
    before = {t.id: await rows_of(test_db, t.id) for t in (expired, half)}
    assert len([n for n in before[expired.id].values() if n]) >= 15
    kept = {t.id: await fingerprint(database, t.id) for t in (recent, suspended, active)}
    mine = {t.id for t in (expired, half, recent, suspended, active)}

    # When the job runs with --dry-run, it lists exactly the expired ones and changes nothing.
    code, out, err = await tenantry(capsys, "tenant", "purge-expired", "--dry-run")

    assert (code, err) == (0, "")
    lines = listed(out)
    assert {t: line for t, line in lines.items() if t in mine} == {
        expired.id: f"would purge {expired.slug} ({expired.id})",
        half.id: f"would purge {half.slug} ({half.id})",
    }
    assert re.search(rf"^would purge {half.slug} \(\S+\), purge begun, not finished$", out, re.M)
    assert re.search(rf"^would purge {expired.slug} \(\S+\), deleted 20\d\d-\S+$", out, re.M)
    assert await expired_elsewhere(test_db, set(lines) - mine)
    for tenant in (expired, half):
        assert await rows_of(test_db, tenant.id) == before[tenant.id]
        assert await purge_entries(database, tenant.id) == []

    # When it runs for real.
    code, out, err = await tenantry(capsys, "tenant", "purge-expired")

    # Then both are gone from every tenant table, one line each with the rows deleted...
    assert (code, err) == (0, "")
    assert {t for t in listed(out) if t in mine} == {expired.id, half.id}
    for tenant in (expired, half):
        total = sum(before[tenant.id].values())
        assert f"purged {tenant.slug} ({tenant.id}): {total} rows deleted\n" in out
        assert await rows_of(test_db, tenant.id) == dict.fromkeys(before[tenant.id], 0)
    # ... the others are untouched ...
    for tenant, rows in kept.items():
        assert await fingerprint(database, tenant) == rows
    async with database.transaction(recent.id, readonly=True) as session:
        assert await tenant_queries.status(session) is TenantStatus.DELETED
    # ... and the platform audit log has the purge, by the system, naming the job's reason.
    [entry] = await purge_entries(database, expired.id)
    assert (entry["outcome"], entry["actor_kind"], entry["actor_id"]) == (
        "success",
        "system",
        None,
    )
    assert entry["user_agent"].startswith("tenantry-cli (")
    assert entry["metadata"]["reason"] == retention.RETENTION_REASON == "retention period over"
    assert entry["metadata"]["slug"] == expired.slug
    assert {t: n for t, n in entry["metadata"]["rows"].items() if n} == {
        t: n for t, n in before[expired.id].items() if n
    }
    assert len(await purge_entries(database, half.id)) == 1

    # A second run (and a dry run) has nothing to do.
    assert await tenantry(capsys, "tenant", "purge-expired") == (0, "", "")
    assert await tenantry(capsys, "tenant", "purge-expired", "--dry-run") == (0, "", "")


async def test_one_failure_does_not_stop_the_others(
    database: Database,
    test_db: TestDatabase,
    tokens: TokenService,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expired = await org(database, tokens)
    await seed_project(database, expired.id)
    await delete(database, expired.id, days_ago=RETENTION_DAYS + 1)
    # A tenant that is listed but gone when its turn comes (purged meanwhile by hand), first.
    ghost = ExpiredTenant(uuid4(), "ghost", None)
    found = retention.expired_tenants

    async def with_ghost(*args: Any, **kwargs: Any) -> list[ExpiredTenant]:
        return [ghost, *await found(*args, **kwargs)]

    monkeypatch.setattr(retention, "expired_tenants", with_ghost)

    code, out, err = await tenantry(capsys, "tenant", "purge-expired")

    assert code == 1
    assert err.splitlines()[0] == f"error: purging ghost ({ghost.id}) failed: Tenant not found"
    assert err.splitlines()[-1].startswith("error: 1 of ")
    assert f"purged {expired.slug} ({expired.id}): " in out
    assert set((await rows_of(test_db, expired.id)).values()) == {0}


async def test_limit_takes_interrupted_purges_then_the_longest_deleted_first(
    database: Database,
    test_db: TestDatabase,
    tokens: TokenService,
    capsys: pytest.CaptureFixture[str],
) -> None:
    newer, older, half = [await org(database, tokens) for _ in range(3)]
    # Far older than anything another test of this run leaves behind.
    await delete(database, newer.id, days_ago=10_000)
    await delete(database, older.id, days_ago=10_001)
    await delete(database, half.id, days_ago=None)

    code, out, _ = await tenantry(capsys, "tenant", "purge-expired", "--limit", "2")

    assert code == 0
    assert list(listed(out)) == [half.id, older.id]
    async with database.transaction(newer.id, readonly=True) as session:
        assert await tenant_queries.status(session) is TenantStatus.DELETED
    code, out, _ = await tenantry(capsys, "tenant", "purge-expired", "--limit", "1")
    assert (code, list(listed(out))) == (0, [newer.id])
    assert set((await rows_of(test_db, newer.id)).values()) == {0}


def test_a_limit_below_one_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["tenant", "purge-expired", "--limit", "0"])

    assert stopped.value.code == 2
    assert "argument --limit: must be at least 1, got 0" in capsys.readouterr().err
