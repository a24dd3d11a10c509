"""app.core.migrate: yoyo migrations plus the policy SQL re-applied on every run.

Tests that rewind or break a schema use `scratch_db`, a database of their own on the same
server: the shared `test_db` serves the rest of the session.
"""

from __future__ import annotations

import psycopg
import pytest

from app.core import migrate
from tests.conftest import TestDatabase

MIGRATION_IDS = sorted(
    path.name.removesuffix(".sql")
    for path in migrate.MIGRATIONS_DIR.glob("*.sql")
    if not path.name.endswith(".rollback.sql")
)

# Everything a migration or the policy files define, as text, to compare before and after.
SCHEMA_FINGERPRINT = r"""
SELECT 'relation', format('%I.%I', n.nspname, c.relname),
       concat_ws(' ', c.relkind, c.relrowsecurity, c.relforcerowsecurity, c.relacl::text)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname IN ('public', 'app') AND c.relname NOT LIKE '%yoyo%'
UNION ALL
SELECT 'column', format('%s.%I', a.attrelid::regclass, a.attname),
       concat_ws(' ', format_type(a.atttypid, a.atttypmod), a.attnotnull,
                 pg_get_expr(d.adbin, d.adrelid))
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname IN ('public', 'app') AND c.relkind IN ('r', 'p') AND a.attnum > 0
  AND NOT a.attisdropped AND c.relname NOT LIKE '%yoyo%'
UNION ALL
SELECT 'constraint', format('%s %I', con.conrelid::regclass, con.conname),
       pg_get_constraintdef(con.oid)
FROM pg_constraint con JOIN pg_namespace n ON n.oid = con.connamespace
WHERE n.nspname IN ('public', 'app') AND con.conrelid::regclass::text NOT LIKE '%yoyo%'
UNION ALL
SELECT 'index', format('%I.%I', i.schemaname, i.indexname), i.indexdef
FROM pg_indexes i WHERE i.schemaname IN ('public', 'app') AND i.tablename NOT LIKE '%yoyo%'
UNION ALL
SELECT 'policy', format('%s %I', p.polrelid::regclass, p.polname),
       concat_ws(' ', p.polcmd, p.polpermissive, p.polroles::regrole[]::text,
                 pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))
FROM pg_policy p
UNION ALL
SELECT 'function', p.oid::regprocedure::text, concat_ws(' ', pg_get_functiondef(p.oid), p.proacl)
FROM pg_proc p WHERE p.pronamespace = 'app'::regnamespace
ORDER BY 1, 2
"""


def fingerprint(url: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(url) as conn:
        return conn.execute(SCHEMA_FINGERPRINT).fetchall()


def policies(url: str) -> set[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT polrelid::regclass::text, polname FROM pg_policy").fetchall()
    return set(rows)


def test_migrations_exist() -> None:
    assert MIGRATION_IDS, f"no migrations in {migrate.MIGRATIONS_DIR}"
    assert MIGRATION_IDS[0] == "0001.core-tables"


def test_status_after_migrate_shows_all_applied_none_pending(test_db: TestDatabase) -> None:
    status = migrate.status(test_db.urls.owner)
    assert (status.applied, status.pending) == (MIGRATION_IDS, [])


def test_migrate_is_idempotent(test_db: TestDatabase) -> None:
    before = fingerprint(test_db.urls.owner)
    assert migrate.migrate(test_db.urls.owner) == []
    assert migrate.status(test_db.urls.owner).pending == []
    assert fingerprint(test_db.urls.owner) == before


def test_migrate_reapplies_policies_and_grants(scratch_db: TestDatabase) -> None:
    owner = scratch_db.urls.owner
    expected = fingerprint(owner)
    assert ("projects", "tenant_isolation") in policies(owner)
    with psycopg.connect(owner) as conn:
        conn.execute("DROP POLICY tenant_isolation ON projects")
        conn.execute("REVOKE SELECT ON projects FROM tenantry_app")
        conn.execute("ALTER TABLE tasks NO FORCE ROW LEVEL SECURITY")
    assert ("projects", "tenant_isolation") not in policies(owner)

    assert migrate.migrate(owner) == []  # no migration pending, policies applied anyway

    assert fingerprint(owner) == expected


def test_rollback_last_then_migrate_round_trips(scratch_db: TestDatabase) -> None:
    owner = scratch_db.urls.owner
    expected = fingerprint(owner)

    assert migrate.rollback_last(owner) == MIGRATION_IDS[-1]
    status = migrate.status(owner)
    assert (status.applied, status.pending) == (MIGRATION_IDS[:-1], MIGRATION_IDS[-1:])
    if MIGRATION_IDS == ["0001.core-tables"]:
        with psycopg.connect(owner) as conn:
            assert conn.execute("SELECT to_regclass('public.tenants')").fetchone() == (None,)

    assert migrate.migrate(owner) == MIGRATION_IDS[-1:]
    assert migrate.status(owner).pending == []
    assert fingerprint(owner) == expected


def test_rollback_last_with_nothing_applied_returns_none(scratch_db: TestDatabase) -> None:
    owner = scratch_db.urls.owner
    rolled_back = [migrate.rollback_last(owner) for _ in MIGRATION_IDS]
    assert rolled_back == MIGRATION_IDS[::-1]
    assert migrate.rollback_last(owner) is None
    assert migrate.status(owner).applied == []


def test_migrations_refuse_to_run_as_the_server_role(scratch_db: TestDatabase) -> None:
    before = fingerprint(scratch_db.urls.owner)
    with pytest.raises(migrate.WrongRole, match="owner role"):
        migrate.migrate(scratch_db.urls.app)
    with pytest.raises(psycopg.errors.RaiseException, match="must run as the owner role"):
        migrate.apply_policies(scratch_db.urls.app)
    assert fingerprint(scratch_db.urls.owner) == before


def test_migrate_rejects_urls_that_are_not_postgresql() -> None:
    with pytest.raises(ValueError, match="postgresql://"):
        migrate.migrate("mysql://root@localhost/tenantry")
