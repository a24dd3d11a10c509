"""The schema follows Citus's distribution rules, so tenants can be spread over several
PostgreSQL nodes (docs/scale-out.md): the catalog tests of test_catalog.py, continued.

Every table with a `tenant_id` is distributed by it, all colocated; every other table is
classified here by hand, as a reference table (copied to every node) or a local one (the
coordinator's only): a new global table fails until it is. Checked on the real schema:

- keys: primary keys, unique constraints and indexes of distributed tables include
  tenant_id (test_catalog.py already requires them to lead with it);
- foreign keys: between distributed tables only on tenant_id at the same position (the rows
  of one tenant are on one node); from distributed to reference tables freely; never from a
  reference table to a distributed one, nor to or from local tables; never ON DELETE SET
  NULL / SET DEFAULT or ON UPDATE SET NULL / SET DEFAULT / CASCADE on a key that includes
  tenant_id (Citus refuses them, even PostgreSQL 15's `SET NULL (column)`);
- no triggers on distributed or reference tables;
- SECURITY DEFINER functions that read tenant tables (and so, as their owner, across
  tenants) are listed with the tables they read and why, after review;
- docs/scale-out.md's distribution script names every table, in an order Citus accepts.

Each check returns its violations; `test_checks_detect_violations` breaks every rule once.
"""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg

from tests.conftest import TestDatabase
from tests.isolation.test_catalog import GLOBAL_TABLES, YOYO_TABLES

ROOT = Path(__file__).resolve().parents[2]
SCALE_OUT = ROOT / "docs" / "scale-out.md"

# Copied to every node: small, global, joined by tenant tables or holding no tenant's rows.
REFERENCE_TABLES = {
    # Its unique slug spans tenants, which a table distributed by id could not enforce; every
    # tenant table references it; a row per tenant is small.
    "public.tenants": "the tenant registry",
    "public.platform_admins": "platform administrators",
    "public.platform_sessions": "platform administrators' sign-ins",
    "public.platform_audit_log": "the platform's security history",
    "public.tenant_provisioning": "createTenant's idempotency keys (references tenants)",
    "public.platform_idempotency_keys": "platform administrators' Idempotency-Key results",
}
# On the coordinator only: migrations run there.
LOCAL_TABLES = {name: "yoyo bookkeeping" for name in YOYO_TABLES}

# SECURITY DEFINER functions that read tenant tables, and so (as their owner, through the
# owner's policies) rows of any tenant: each reviewed, with the tables it reads. On Citus a
# read across tenants is a query on every node.
REVIEWED_DEFINERS = {
    "app.tenant_by_slug(p_slug text)": (
        {"public.tenants"},
        "the id and status of the one tenant a public slug names, before any is bound",
    ),
    "app.tenant_usage(p_ids uuid[])": (
        {
            "public.users",
            "public.projects",
            "public.tasks",
            "public.comments",
            "public.audit_log",
            "public.auth_sessions",
        },
        "counts, sizes and last activity per tenant, never a row; only in the platform scope",
    ),
    "app.tenant_feature_flags(p_ids uuid[])": (
        {"public.tenant_features"},
        "the flags platform administrators manage; only in the platform scope",
    ),
    "app.schema_version()": (set(), "the newest migration's id, for readiness"),
}

# Every foreign key, with where the tenant key sits in it on each side (None: not in it).
FOREIGN_KEYS_SQL = """
SELECT format('%I.%I', n.nspname, c.relname) AS referencing,
       format('%I.%I', rn.nspname, rc.relname) AS referenced,
       con.conname, con.confdeltype::text AS on_delete, con.confupdtype::text AS on_update,
       EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
               AND NOT a.attisdropped) AS referencing_distributed,
       EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = rc.oid AND a.attname = 'tenant_id'
               AND NOT a.attisdropped) AS referenced_distributed,
       array_position(con.conkey, (SELECT a.attnum FROM pg_attribute a WHERE a.attrelid = c.oid
                                   AND a.attname = 'tenant_id' AND NOT a.attisdropped)) AS pos,
       array_position(con.confkey, (SELECT a.attnum FROM pg_attribute a
                                    WHERE a.attrelid = rc.oid AND a.attname = 'tenant_id'
                                    AND NOT a.attisdropped)) AS referenced_pos
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class rc ON rc.oid = con.confrelid JOIN pg_namespace rn ON rn.oid = rc.relnamespace
WHERE con.contype = 'f' AND n.nspname <> 'information_schema' AND left(n.nspname, 3) <> 'pg_'
ORDER BY 1, 3
"""

TABLES_SQL = """
SELECT format('%I.%I', n.nspname, c.relname) AS name,
       EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
               AND NOT a.attisdropped) AS distributed
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema'
  AND left(n.nspname, 3) <> 'pg_'
ORDER BY 1
"""


def placement(name: str, distributed: bool) -> str:
    if distributed:
        return "distributed"
    if name in REFERENCE_TABLES:
        return "reference"
    if name in LOCAL_TABLES:
        return "local"
    return "unclassified"


async def placement_violations(conn: asyncpg.Connection) -> list[str]:
    """Every table is distributed (it has tenant_id) or classified, once."""
    violations = []
    for row in await conn.fetch(TABLES_SQL):
        name, distributed = row["name"], row["distributed"]
        if distributed and name in {**REFERENCE_TABLES, **LOCAL_TABLES}:
            violations.append(f"{name} has tenant_id but is classified as a global table")
        if placement(name, distributed) == "unclassified":
            violations.append(f"{name}: neither distributed nor a reference or local table")
    return violations


async def foreign_key_violations(conn: asyncpg.Connection) -> list[str]:
    violations = []
    for fk in await conn.fetch(FOREIGN_KEYS_SQL):
        source = placement(fk["referencing"], fk["referencing_distributed"])
        target = placement(fk["referenced"], fk["referenced_distributed"])
        where = f"{fk['referencing']}: foreign key {fk['conname']} to {fk['referenced']}"
        if source == "distributed" and target == "distributed":
            if fk["pos"] is None or fk["pos"] != fk["referenced_pos"]:
                violations.append(f"{where} does not pair tenant_id (rows on other nodes)")
        elif "local" in (source, target) and (source, target) != ("local", "reference"):
            violations.append(f"{where}: {source} table to {target} table")
        elif source == "reference" and target == "distributed":
            violations.append(f"{where}: a reference table cannot reference a distributed one")
        if source == "distributed" and fk["pos"] is not None:
            if fk["on_delete"] in ("n", "d"):
                violations.append(f"{where}: ON DELETE SET NULL/DEFAULT on a key with tenant_id")
            if fk["on_update"] in ("n", "d", "c"):
                violations.append(f"{where}: ON UPDATE SET NULL/DEFAULT/CASCADE with tenant_id")
    return violations


async def trigger_violations(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        """
        SELECT format('%I.%I', n.nspname, c.relname) AS name, t.tgname
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE NOT t.tgisinternal AND n.nspname <> 'information_schema'
          AND left(n.nspname, 3) <> 'pg_'
        """
    )
    return [
        f"{r['name']}: trigger {r['tgname']} (Citus runs none on distributed or reference tables"
        " by default)"
        for r in rows
        if r["name"] not in LOCAL_TABLES
    ]


async def definer_violations(conn: asyncpg.Connection) -> list[str]:
    """SECURITY DEFINER functions reading tenant tables are the reviewed ones, reading only
    the tables their review names (found by name in their bodies)."""
    tables = {r["name"] for r in await conn.fetch(TABLES_SQL) if r["distributed"]}
    tables.add("public.tenants")
    short = {name.split(".", 1)[1]: name for name in tables}
    rows = await conn.fetch(
        """
        SELECT format('%I.%I(%s)', n.nspname, p.proname,
                      pg_get_function_identity_arguments(p.oid)) AS name, p.prosrc
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE p.prosecdef AND n.nspname <> 'information_schema' AND left(n.nspname, 3) <> 'pg_'
        """
    )
    violations = []
    for row in rows:
        words = set(re.findall(r"\b(?:public\.)?([a-z_][a-z0-9_]*)\b", row["prosrc"].lower()))
        reads = {short[w] for w in words if w in short}
        if row["name"] not in REVIEWED_DEFINERS:
            if reads:
                violations.append(f"{row['name']} reads {sorted(reads)} and is not reviewed")
            continue
        reviewed, _why = REVIEWED_DEFINERS[row["name"]]
        if reads - reviewed:
            violations.append(f"{row['name']} reads {sorted(reads - reviewed)}, not reviewed")
    found = {r["name"] for r in rows}
    violations += [
        f"{name} is reviewed but does not exist" for name in REVIEWED_DEFINERS.keys() - found
    ]
    return violations


# create_reference_table('public.x') / create_distributed_table('public.x', 'tenant_id', …)
_REFERENCE = re.compile(r"create_reference_table\('([\w.]+)'\)")
_DISTRIBUTED = re.compile(r"create_distributed_table\('([\w.]+)', 'tenant_id'")


async def distribution_script_violations(conn: asyncpg.Connection, script: str) -> list[str]:
    """The documented script distributes every table with tenant_id and copies every
    reference table, each after the tables its foreign keys reference."""
    calls = [
        (m.group(1), "reference" if m.re is _REFERENCE else "distributed")
        for m in sorted(
            [*_REFERENCE.finditer(script), *_DISTRIBUTED.finditer(script)], key=lambda m: m.start()
        )
    ]
    order = {name: i for i, (name, _) in enumerate(calls)}
    tables = {r["name"]: r["distributed"] for r in await conn.fetch(TABLES_SQL)}
    expected = {
        name: placement(name, distributed)
        for name, distributed in tables.items()
        if placement(name, distributed) in ("reference", "distributed")
    }
    violations = [
        f"the script makes {name} a {kind} table; it is {expected.get(name, 'not such a table')}"
        for name, kind in calls
        if expected.get(name) != kind
    ]
    violations += [f"the script leaves out {name}" for name in expected.keys() - order.keys()]
    for fk in await conn.fetch(FOREIGN_KEYS_SQL):
        child, parent = fk["referencing"], fk["referenced"]
        if child in order and parent in order and child != parent and order[parent] > order[child]:
            violations.append(f"the script places {child} before {parent}, which it references")
    return violations


async def test_every_table_is_distributed_or_classified(catalog: asyncpg.Connection) -> None:
    assert await placement_violations(catalog) == []
    # The hand-made lists are exactly the catalog test's global tables, split in two.
    assert REFERENCE_TABLES.keys() | LOCAL_TABLES.keys() == GLOBAL_TABLES.keys()


async def test_foreign_keys_follow_citus_rules(catalog: asyncpg.Connection) -> None:
    assert await foreign_key_violations(catalog) == []


async def test_no_triggers_on_distributed_or_reference_tables(
    catalog: asyncpg.Connection,
) -> None:
    assert await trigger_violations(catalog) == []


async def test_security_definer_functions_reading_tenant_tables_are_reviewed(
    catalog: asyncpg.Connection,
) -> None:
    assert await definer_violations(catalog) == []


async def test_the_documented_distribution_script_covers_every_table(
    catalog: asyncpg.Connection,
) -> None:
    script = SCALE_OUT.read_text(encoding="utf-8")
    assert "create_distributed_table('public.users', 'tenant_id')" in script
    assert await distribution_script_violations(catalog, script) == []


BROKEN_SCHEMA = """
CREATE UNIQUE INDEX projects_id_key ON public.projects (id);
CREATE TABLE public.settings_local (key text PRIMARY KEY);
CREATE TABLE public.notes (
    tenant_id uuid NOT NULL, id uuid NOT NULL, author_id uuid, parent_id uuid,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, author_id) REFERENCES public.users (tenant_id, id)
        ON DELETE SET NULL (author_id),
    FOREIGN KEY (tenant_id, id) REFERENCES public.projects (tenant_id, id) ON UPDATE CASCADE
);
CREATE TABLE public.unpaired (
    tenant_id uuid NOT NULL, id uuid NOT NULL, project_id uuid,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (project_id) REFERENCES public.projects (id)
);
ALTER TABLE public.platform_admins ADD COLUMN favourite_user uuid, ADD COLUMN home uuid,
    ADD FOREIGN KEY (home, favourite_user) REFERENCES public.users (tenant_id, id);
CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
CREATE TRIGGER touch BEFORE UPDATE ON public.projects FOR EACH ROW EXECUTE FUNCTION public.touch();
CREATE FUNCTION public.peek() RETURNS bigint LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS 'SELECT count(*) FROM public.tasks';
"""
# A script that misses tables, classifies one wrongly and orders two the wrong way round.
BROKEN_SCRIPT = """
SELECT create_distributed_table('public.users', 'tenant_id');
SELECT create_reference_table('public.tenants');
SELECT create_reference_table('public.projects');
"""


async def test_checks_detect_violations(scratch_db: TestDatabase) -> None:
    admin = await asyncpg.connect(scratch_db.admin_db_url)
    try:
        await admin.execute(BROKEN_SCHEMA)
    finally:
        await admin.close()
    conn = await asyncpg.connect(scratch_db.urls.owner)
    try:
        found = {
            "placement": await placement_violations(conn),
            "foreign keys": await foreign_key_violations(conn),
            "triggers": await trigger_violations(conn),
            "definers": await definer_violations(conn),
            "script": await distribution_script_violations(conn, BROKEN_SCRIPT),
        }
    finally:
        await conn.close()
    expected = {
        "placement": ["public.settings_local: neither distributed"],
        "foreign keys": [
            "public.notes: foreign key notes_tenant_id_author_id_fkey to public.users: ON DELETE",
            "public.notes: foreign key notes_tenant_id_id_fkey to public.projects: ON UPDATE",
            "public.unpaired: foreign key unpaired_project_id_fkey to public.projects does not",
            "public.platform_admins: foreign key platform_admins_home_favourite_user_fkey to"
            " public.users: a reference table cannot reference a distributed one",
        ],
        "triggers": ["public.projects: trigger touch"],
        "definers": ["public.peek() reads ['public.tasks'] and is not reviewed"],
        "script": [
            "the script makes public.projects a reference table; it is distributed",
            "the script leaves out public.tasks",
            "the script places public.users before public.tenants",
        ],
    }
    missing = {
        check: [f for f in fragments if not any(f in v for v in found[check])]
        for check, fragments in expected.items()
    }
    assert {check: m for check, m in missing.items() if m} == {}, found
