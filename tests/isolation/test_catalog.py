"""The catalog test: the database rules of SECURITY.md, checked on every table there is.

Tables are found in pg_catalog, never listed by hand, so a table added by a later migration
is held to the same rules the moment it exists. The connection (owner role) only reads the
catalog. Each check returns its violations, and `test_checks_detect_violations` proves on a
deliberately broken database that every check can fail.
"""

from __future__ import annotations

import asyncpg

from app.core.dbadmin import APP_ROLE, OWNER_ROLE
from tests.conftest import TestDatabase
from tests.factories import TENANT_TABLES_SQL

# Tables without a tenant_id column. Each entry is a conscious decision with its reason: a
# new global table fails `test_every_table_is_a_tenant_table_or_allowed` until it is added.
GLOBAL_TABLES = {
    # The registry itself. Its id *is* the tenant id, so it is held to every tenant-table
    # rule below with `id` in the place of tenant_id.
    "public.tenants": "the tenant registry, keyed by the tenant id",
    # yoyo's migration bookkeeping: owner only, the server's role has no privilege on it.
    "public._yoyo_log": "yoyo bookkeeping",
    "public._yoyo_migration": "yoyo bookkeeping",
    "public._yoyo_version": "yoyo bookkeeping",
    "public.yoyo_lock": "yoyo bookkeeping",
    # The platform's own tables (sql/migrations/0005): they belong to no tenant, and are held
    # to the platform-table rules below (RLS forced, visible only in the platform scope).
    "public.platform_admins": "platform administrators, a principal kind of no tenant",
    "public.platform_sessions": "platform administrators' sign-ins",
    "public.platform_audit_log": "what platform principals and operators did",
    "public.tenant_provisioning": "idempotency keys of platform administrators' createTenant",
    "public.platform_idempotency_keys": "platform administrators' Idempotency-Key results",
}
YOYO_TABLES = frozenset(name for name in GLOBAL_TABLES if "yoyo" in name)

# Unique indexes on tenant tables that do not lead with the tenant key, each deliberate.
GLOBAL_UNIQUE_INDEXES = {
    # A slug addresses one tenant platform-wide (sign-in by slug, app.tenant_by_slug); slugs
    # are public by design, so this uniqueness leaks nothing.
    "public.tenants_slug_key": "tenant slugs are unique platform-wide",
}

# Indexes of the tenant registry that do not lead with its key, each deliberate: they serve
# the platform's tenant directory (sql/migrations/0014), which reads across tenants in the
# platform scope; no tenant-bound transaction reads more than its own row of the registry.
REGISTRY_INDEXES = {
    "public.tenants_created_idx": "the directory's order, newest first, keyset pages",
    "public.tenants_status_created_idx": "the directory filtered by status",
    "public.tenants_plan_created_idx": "the directory filtered by plan",
    "public.tenants_name_trgm_idx": "the directory's search in names (pg_trgm)",
    "public.tenants_slug_trgm_idx": "the directory's search in slugs (pg_trgm)",
}

# Tenant tables platform administrators may read (never write) in the platform scope: a
# permissive SELECT policy that checks app.platform_scope() is allowed on these only.
PLATFORM_READABLE = {
    "public.tenants": "the registry: platform administrators list tenants (tenant:read)",
}

# Non-system schemas, in every query below:
#   n.nspname <> 'information_schema' AND left(n.nspname, 3) <> 'pg_'

# What a policy that applies to the server's role must carry, by command.
REQUIRED_CLAUSES = {
    "*": ("USING", "WITH CHECK"),  # FOR ALL
    "w": ("USING", "WITH CHECK"),  # FOR UPDATE
    "a": ("WITH CHECK",),  # FOR INSERT (USING is not allowed there)
    "r": ("USING",),  # FOR SELECT
    "d": ("USING",),  # FOR DELETE
}


async def over_tenant_tables(conn: asyncpg.Connection, sql: str, *args: object) -> list:
    """Run `sql` with the tenant tables, found in the catalog, as its parameters $1..$4.

    Such queries start with `WITH t AS (SELECT * FROM unnest($1::oid[], $2::text[],
    $3::text[], $4::int2[]) AS t(oid, name, key, key_attnum))`; `args` are $5 onwards.
    """
    tables = await conn.fetch(TENANT_TABLES_SQL)
    columns = [[row[c] for row in tables] for c in ("oid", "name", "key", "key_attnum")]
    return await conn.fetch(sql, *columns, *args)


# --- checks: each returns a list of violations ------------------------------------------


async def role_attribute_violations(conn: asyncpg.Connection) -> list[str]:
    row = await conn.fetchrow(
        "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolreplication, rolcanlogin"
        " FROM pg_roles WHERE rolname = $1",
        APP_ROLE,
    )
    assert row is not None, f"role {APP_ROLE} does not exist"
    violations = [
        f"{APP_ROLE} has {attr}" for attr, on in row.items() if on and attr != "rolcanlogin"
    ]
    if not row["rolcanlogin"]:
        violations.append(f"{APP_ROLE} cannot log in")
    return violations


async def membership_violations(conn: asyncpg.Connection) -> list[str]:
    granted = await conn.fetch(
        "SELECT m.roleid::regrole::text AS role FROM pg_auth_members AS m"
        " WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = $1)",
        APP_ROLE,
    )
    violations = [f"{APP_ROLE} is a member of {r['role']}" for r in granted]
    if await conn.fetchval("SELECT pg_has_role($1, $2, 'MEMBER')", APP_ROLE, OWNER_ROLE):
        violations.append(f"{APP_ROLE} can act as {OWNER_ROLE}")
    return violations


async def ownership_violations(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        """
        WITH r AS (SELECT oid FROM pg_roles WHERE rolname = $1)
        SELECT 'relation ' || c.oid::regclass::text AS object FROM pg_class c, r
         WHERE c.relowner = r.oid
        UNION ALL SELECT 'function ' || p.oid::regprocedure::text FROM pg_proc p, r
         WHERE p.proowner = r.oid
        UNION ALL SELECT 'schema ' || n.nspname FROM pg_namespace n, r WHERE n.nspowner = r.oid
        UNION ALL SELECT 'type ' || ty.oid::regtype::text FROM pg_type ty, r
         WHERE ty.typowner = r.oid
        UNION ALL SELECT 'database ' || d.datname FROM pg_database d, r WHERE d.datdba = r.oid
        UNION ALL SELECT pg_describe_object(s.classid, s.objid, s.objsubid) FROM pg_shdepend s, r
         WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid = r.oid AND s.deptype = 'o'
           AND s.dbid IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
        """,
        APP_ROLE,
    )
    return sorted({f"{APP_ROLE} owns {r['object']}" for r in rows})


async def table_privilege_violations(conn: asyncpg.Connection) -> list[str]:
    privileges = ["TRUNCATE", "REFERENCES", "TRIGGER"]
    if await conn.fetchval("SELECT current_setting('server_version_num')::int >= 170000"):
        privileges.append("MAINTAIN")  # VACUUM, REINDEX, LOCK TABLE ... (PostgreSQL 17+)
    rows = await conn.fetch(
        """
        SELECT format('%I.%I', n.nspname, c.relname) AS name, p.privilege
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
             unnest($2::text[]) AS p(privilege)
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
          AND n.nspname <> 'information_schema' AND left(n.nspname, 3) <> 'pg_'
          AND (has_table_privilege($1, c.oid, p.privilege)
               OR (p.privilege = 'REFERENCES' AND has_any_column_privilege($1, c.oid, p.privilege)))
        ORDER BY 1, 2
        """,
        APP_ROLE,
        privileges,
    )
    return [f"{APP_ROLE} has {r['privilege']} on {r['name']}" for r in rows]


async def yoyo_violations(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        """
        SELECT format('%I.%I', n.nspname, c.relname) AS name,
               ARRAY(SELECT p FROM unnest($2::text[]) AS p
                     WHERE has_table_privilege($1, c.oid, p)
                        OR (p IN ('SELECT', 'INSERT', 'UPDATE', 'REFERENCES')
                            AND has_any_column_privilege($1, c.oid, p))) AS privileges
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND c.relname LIKE '%yoyo%'
          AND n.nspname <> 'information_schema' AND left(n.nspname, 3) <> 'pg_'
        """,
        APP_ROLE,
        ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"],
    )
    violations = [
        f"{APP_ROLE} has {r['privileges']} on {r['name']}" for r in rows if r["privileges"]
    ]
    found = {r["name"] for r in rows}
    if found != YOYO_TABLES:
        violations.append(f"yoyo tables are {sorted(found)}, expected {sorted(YOYO_TABLES)}")
    return violations


async def global_table_violations(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        """
        SELECT format('%I.%I', n.nspname, c.relname) AS name
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'f')
          AND n.nspname <> 'information_schema' AND left(n.nspname, 3) <> 'pg_'
          AND NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid
                          AND a.attname = 'tenant_id' AND NOT a.attisdropped)
        """
    )
    found = {r["name"] for r in rows}
    return [
        f"{name} has no tenant_id and is not in GLOBAL_TABLES"
        for name in sorted(found - set(GLOBAL_TABLES))
    ] + [
        f"GLOBAL_TABLES lists {name}, which does not exist"
        for name in sorted(set(GLOBAL_TABLES) - found)
    ]


async def platform_table_violations(conn: asyncpg.Connection) -> list[str]:
    """Global tables (no tenant_id; not the registry, not yoyo's) are platform tables: RLS
    enabled and forced, and every permissive policy for the server's role admits rows only
    in the platform scope, so a tenant request reads none of them."""
    rows = await conn.fetch(
        """
        SELECT format('%I.%I', n.nspname, c.relname) AS name, c.relrowsecurity,
               c.relforcerowsecurity, p.polname, p.polcmd::text AS cmd, p.polpermissive,
               p.polqual IS NOT NULL AS has_using, p.polwithcheck IS NOT NULL AS has_check,
               EXISTS (SELECT FROM pg_depend d
                       WHERE d.classid = 'pg_policy'::regclass AND d.objid = p.oid
                         AND d.refclassid = 'pg_proc'::regclass
                         AND d.refobjid = 'app.platform_scope()'::regprocedure) AS uses_scope
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_policy p
          ON p.polrelid = c.oid
         AND (0 = ANY (p.polroles)
              OR EXISTS (SELECT FROM unnest(p.polroles) AS r(oid)
                         WHERE r.oid <> 0 AND pg_has_role($1, r.oid, 'MEMBER')))
        WHERE c.relkind IN ('r', 'p') AND c.relname <> 'tenants' AND c.relname NOT LIKE '%yoyo%'
          AND n.nspname <> 'information_schema' AND left(n.nspname, 3) <> 'pg_'
          AND NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid
                          AND a.attname = 'tenant_id' AND NOT a.attisdropped)
        ORDER BY 1, p.polname
        """,
        APP_ROLE,
    )
    violations: set[str] = set()
    for r in rows:
        if not r["relrowsecurity"]:
            violations.add(f"{r['name']}: row level security not enabled")
        if not r["relforcerowsecurity"]:
            violations.add(f"{r['name']}: row level security not forced")
        if r["polname"] is None:
            violations.add(f"{r['name']}: no policy applies to {APP_ROLE}")
            continue
        where = f"{r['name']} policy {r['polname']}"
        present = {"USING": r["has_using"], "WITH CHECK": r["has_check"]}
        violations |= {
            f"{where}: no {clause}" for clause in REQUIRED_CLAUSES[r["cmd"]] if not present[clause]
        }
        if r["polpermissive"] and not r["uses_scope"]:
            violations.add(f"{where}: does not check app.platform_scope()")
    return sorted(violations)


async def rls_violations(conn: asyncpg.Connection) -> list[str]:
    rows = await over_tenant_tables(
        conn,
        """
        WITH t AS (SELECT * FROM unnest($1::oid[], $2::text[], $3::text[], $4::int2[])
                   AS t(oid, name, key, key_attnum))
        SELECT t.name, c.relrowsecurity, c.relforcerowsecurity
        FROM t JOIN pg_class c ON c.oid = t.oid
        """,
    )
    violations = [
        f"{r['name']}: row level security not enabled" for r in rows if not r["relrowsecurity"]
    ]
    violations += [
        f"{r['name']}: row level security not forced" for r in rows if not r["relforcerowsecurity"]
    ]
    return violations


async def policy_violations(conn: asyncpg.Connection) -> list[str]:
    rows = await over_tenant_tables(
        conn,
        """
        WITH t AS (SELECT * FROM unnest($1::oid[], $2::text[], $3::text[], $4::int2[])
                   AS t(oid, name, key, key_attnum))
        SELECT t.name, p.polname, p.polcmd::text AS cmd, p.polpermissive,
               p.polqual IS NOT NULL AS has_using, p.polwithcheck IS NOT NULL AS has_check,
               EXISTS (SELECT FROM pg_depend d
                       WHERE d.classid = 'pg_policy'::regclass AND d.objid = p.oid
                         AND d.refclassid = 'pg_proc'::regclass
                         AND d.refobjid = 'app.current_tenant_id()'::regprocedure) AS uses_helper,
               EXISTS (SELECT FROM pg_depend d
                       WHERE d.classid = 'pg_policy'::regclass AND d.objid = p.oid
                         AND d.refclassid = 'pg_class'::regclass AND d.refobjid = t.oid
                         AND d.refobjsubid = t.key_attnum) AS uses_key,
               EXISTS (SELECT FROM pg_depend d
                       WHERE d.classid = 'pg_policy'::regclass AND d.objid = p.oid
                         AND d.refclassid = 'pg_proc'::regclass
                         AND d.refobjid = 'app.platform_scope()'::regprocedure) AS uses_scope
        FROM t
        LEFT JOIN pg_policy p
          ON p.polrelid = t.oid
         AND (0 = ANY (p.polroles)
              OR EXISTS (SELECT FROM unnest(p.polroles) AS r(oid)
                         WHERE r.oid <> 0 AND pg_has_role($5, r.oid, 'MEMBER')))
        ORDER BY t.name, p.polname
        """,
        APP_ROLE,
    )
    violations = []
    for r in rows:
        where = f"{r['name']} policy {r['polname']}"
        if r["polname"] is None:
            violations.append(f"{r['name']}: no policy applies to {APP_ROLE}")
            continue
        present = {"USING": r["has_using"], "WITH CHECK": r["has_check"]}
        violations += [
            f"{where}: no {clause}" for clause in REQUIRED_CLAUSES[r["cmd"]] if not present[clause]
        ]
        # A permissive policy opens rows, so it must compare the tenant key with the helper;
        # restrictive policies only narrow what permissive ones allow.
        platform_read = r["name"] in PLATFORM_READABLE and r["cmd"] == "r" and r["uses_scope"]
        if r["polpermissive"] and not (r["uses_helper"] and r["uses_key"]) and not platform_read:
            violations.append(
                f"{where}: does not compare the tenant key with app.current_tenant_id()"
            )
    return violations


async def primary_key_violations(conn: asyncpg.Connection) -> list[str]:
    rows = await over_tenant_tables(
        conn,
        """
        WITH t AS (SELECT * FROM unnest($1::oid[], $2::text[], $3::text[], $4::int2[])
                   AS t(oid, name, key, key_attnum))
        SELECT t.name, t.key, con.conname, con.conkey[1] = t.key_attnum AS leads
        FROM t LEFT JOIN pg_constraint con ON con.conrelid = t.oid AND con.contype = 'p'
        """,
    )
    return [
        f"{r['name']}: no primary key"
        if r["conname"] is None
        else f"{r['name']}: primary key {r['conname']} does not lead with {r['key']}"
        for r in rows
        if not r["leads"]
    ]


async def unique_constraint_violations(conn: asyncpg.Connection) -> list[str]:
    rows = await over_tenant_tables(
        conn,
        """
        WITH t AS (SELECT * FROM unnest($1::oid[], $2::text[], $3::text[], $4::int2[])
                   AS t(oid, name, key, key_attnum))
        SELECT t.name, t.key, format('%I.%I', n.nspname, con.conname) AS constraint_name
        FROM t JOIN pg_constraint con ON con.conrelid = t.oid AND con.contype IN ('u', 'x')
        JOIN pg_namespace n ON n.oid = con.connamespace
        WHERE con.conkey[1] <> t.key_attnum
        """,
    )
    return [
        f"{r['name']}: unique constraint {r['constraint_name']} does not lead with {r['key']}"
        for r in rows
        if r["constraint_name"] not in GLOBAL_UNIQUE_INDEXES
    ]


async def index_violations(conn: asyncpg.Connection) -> list[str]:
    # Covers unique indexes (also those made for constraints) and expression indexes,
    # whose indkey entry is 0.
    rows = await over_tenant_tables(
        conn,
        """
        WITH t AS (SELECT * FROM unnest($1::oid[], $2::text[], $3::text[], $4::int2[])
                   AS t(oid, name, key, key_attnum))
        SELECT t.name, t.key, format('%I.%I', n.nspname, ic.relname) AS index_name, i.indisunique
        FROM t JOIN pg_index i ON i.indrelid = t.oid
        JOIN pg_class ic ON ic.oid = i.indexrelid
        JOIN pg_namespace n ON n.oid = ic.relnamespace
        WHERE i.indkey[0] <> t.key_attnum
        """,
    )
    return [
        f"{r['name']}: {'unique ' if r['indisunique'] else ''}index {r['index_name']}"
        f" does not lead with {r['key']}"
        for r in rows
        if not (r["indisunique"] and r["index_name"] in GLOBAL_UNIQUE_INDEXES)
        and not (
            r["name"] == "public.tenants"
            and not r["indisunique"]
            and r["index_name"] in REGISTRY_INDEXES
        )
    ]


async def foreign_key_violations(conn: asyncpg.Connection) -> list[str]:
    rows = await over_tenant_tables(
        conn,
        """
        WITH t AS (SELECT * FROM unnest($1::oid[], $2::text[], $3::text[], $4::int2[])
                   AS t(oid, name, key, key_attnum))
        SELECT t.name, con.conname, rt.name AS referenced,
               array_position(con.conkey, t.key_attnum) AS pos,
               array_position(con.confkey, rt.key_attnum) AS referenced_pos
        FROM t JOIN pg_constraint con ON con.conrelid = t.oid AND con.contype = 'f'
        JOIN t AS rt ON rt.oid = con.confrelid
        """,
    )
    return [
        f"{r['name']}: foreign key {r['conname']} to {r['referenced']} does not pair tenant keys"
        for r in rows
        if r["pos"] is None or r["pos"] != r["referenced_pos"]
    ]


async def tenant_key_type_violations(conn: asyncpg.Connection) -> list[str]:
    rows = await over_tenant_tables(
        conn,
        """
        WITH t AS (SELECT * FROM unnest($1::oid[], $2::text[], $3::text[], $4::int2[])
                   AS t(oid, name, key, key_attnum))
        SELECT t.name, t.key, a.attnotnull, a.atttypid = 'uuid'::regtype AS is_uuid
        FROM t JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = t.key_attnum
        """,
    )
    return [f"{r['name']}.{r['key']} is nullable" for r in rows if not r["attnotnull"]] + [
        f"{r['name']}.{r['key']} is not uuid" for r in rows if not r["is_uuid"]
    ]


async def view_violations(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        """
        SELECT format('%I.%I', n.nspname, c.relname) AS name, c.relkind::text AS kind,
               coalesce(c.reloptions, '{}') AS options
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('v', 'm')
          AND n.nspname <> 'information_schema' AND left(n.nspname, 3) <> 'pg_'
        """
    )
    invoker = {f"security_invoker={v}" for v in ("true", "on", "1", "yes")}
    return [f"{r['name']} is a materialized view" for r in rows if r["kind"] == "m"] + [
        f"{r['name']} is a view without security_invoker"
        for r in rows
        if r["kind"] == "v" and not invoker & {o.lower() for o in r["options"]}
    ]


def _search_path(proconfig: list[str] | None) -> list[str]:
    for setting in proconfig or []:
        name, _, value = setting.partition("=")
        if name == "search_path":
            return [part.strip().strip('"') for part in value.split(",")]
    return []


async def security_definer_violations(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        """
        SELECT format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid))
                 AS name,
               p.proconfig,
               EXISTS (SELECT FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                       WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE') AS public_execute
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE p.prosecdef AND n.nspname <> 'information_schema' AND left(n.nspname, 3) <> 'pg_'
        """
    )
    violations = [f"{r['name']}: EXECUTE granted to PUBLIC" for r in rows if r["public_execute"]]
    for r in rows:
        path = _search_path(r["proconfig"])
        # pg_temp last: otherwise it is searched first for relations, and anyone may create
        # temporary tables.
        if not path or path[-1] != "pg_temp" or "$user" in path:
            violations.append(f"{r['name']}: search_path not fixed (ending in pg_temp): {path}")
    return violations


# --- the server's role ------------------------------------------------------------------


async def test_server_role_has_no_superpowers(catalog: asyncpg.Connection) -> None:
    assert await role_attribute_violations(catalog) == []


async def test_server_role_is_not_a_member_of_any_role(catalog: asyncpg.Connection) -> None:
    assert await membership_violations(catalog) == []


async def test_server_role_owns_nothing(catalog: asyncpg.Connection) -> None:
    assert await ownership_violations(catalog) == []


async def test_server_role_has_no_truncate_references_or_trigger(
    catalog: asyncpg.Connection,
) -> None:
    assert await table_privilege_violations(catalog) == []


# Tables the server may only append to and read: each a conscious decision with its reason.
APPEND_ONLY_TABLES = {
    "public.audit_log": "security history: the server records and reads, never rewrites",
    "public.platform_audit_log": "the platform's security history, likewise",
}


async def test_server_role_has_dml_on_tenant_tables(catalog: asyncpg.Connection) -> None:
    # The positive side of the grants: without it the app could not work, and the negative
    # checks above would pass for a role that has no privileges at all.
    tables = [r["name"] for r in await catalog.fetch(TENANT_TABLES_SQL)]
    assert "public.users" in tables
    for table in tables:
        for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE"):
            expected = table not in APPEND_ONLY_TABLES or privilege in ("SELECT", "INSERT")
            granted = await catalog.fetchval(
                "SELECT has_table_privilege($1, $2::regclass, $3)", APP_ROLE, table, privilege
            )
            assert granted is expected, f"{APP_ROLE}: {privilege} on {table} should be {expected}"


async def test_server_role_cannot_access_migration_bookkeeping(
    catalog: asyncpg.Connection,
) -> None:
    assert await yoyo_violations(catalog) == []


async def test_server_role_cannot_create_in_the_database(catalog: asyncpg.Connection) -> None:
    assert not await catalog.fetchval(
        "SELECT has_database_privilege($1, current_database(), 'CREATE')", APP_ROLE
    )
    schemas = await catalog.fetch(
        "SELECT n.nspname FROM pg_namespace n"
        " WHERE n.nspname <> 'information_schema' AND left(n.nspname, 3) <> 'pg_'"
        " AND has_schema_privilege($1, n.oid, 'CREATE')",
        APP_ROLE,
    )
    assert schemas == []


async def test_server_role_cannot_create_temporary_tables(catalog: asyncpg.Connection) -> None:
    assert not await catalog.fetchval(
        "SELECT has_database_privilege($1, current_database(), 'TEMPORARY')", APP_ROLE
    )


# --- tables -----------------------------------------------------------------------------


async def test_every_table_is_a_tenant_table_or_allowed(catalog: asyncpg.Connection) -> None:
    assert await global_table_violations(catalog) == []


async def test_tenant_tables_found(catalog: asyncpg.Connection) -> None:
    tables = {r["name"]: r["key"] for r in await catalog.fetch(TENANT_TABLES_SQL)}
    assert tables.items() >= {
        ("public.tenants", "id"),
        ("public.users", "tenant_id"),
        ("public.projects", "tenant_id"),
        ("public.tasks", "tenant_id"),
        ("public.comments", "tenant_id"),
    }


async def test_platform_tables_are_closed_outside_the_platform_scope(
    catalog: asyncpg.Connection,
) -> None:
    assert await platform_table_violations(catalog) == []


async def test_server_role_only_appends_to_the_platform_audit_log(
    catalog: asyncpg.Connection,
) -> None:
    for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE"):
        granted = await catalog.fetchval(
            "SELECT has_table_privilege($1, 'public.platform_audit_log', $2)", APP_ROLE, privilege
        )
        assert granted is (privilege in ("SELECT", "INSERT")), privilege


async def test_tenant_tables_enable_and_force_row_level_security(
    catalog: asyncpg.Connection,
) -> None:
    assert await rls_violations(catalog) == []


async def test_tenant_table_policies_have_using_and_with_check(
    catalog: asyncpg.Connection,
) -> None:
    assert await policy_violations(catalog) == []


async def test_tenant_table_primary_keys_lead_with_tenant_key(catalog: asyncpg.Connection) -> None:
    assert await primary_key_violations(catalog) == []


async def test_tenant_table_unique_constraints_lead_with_tenant_key(
    catalog: asyncpg.Connection,
) -> None:
    assert await unique_constraint_violations(catalog) == []


async def test_tenant_table_indexes_lead_with_tenant_key(catalog: asyncpg.Connection) -> None:
    assert await index_violations(catalog) == []


async def test_foreign_keys_between_tenant_tables_pair_tenant_keys(
    catalog: asyncpg.Connection,
) -> None:
    assert await foreign_key_violations(catalog) == []


async def test_tenant_key_is_not_null_uuid(catalog: asyncpg.Connection) -> None:
    assert await tenant_key_type_violations(catalog) == []


async def test_no_definer_views_and_no_materialized_views(catalog: asyncpg.Connection) -> None:
    assert await view_violations(catalog) == []


async def test_security_definer_functions_fix_search_path_and_revoke_public(
    catalog: asyncpg.Connection,
) -> None:
    definers = await catalog.fetch(
        "SELECT 1 FROM pg_proc WHERE prosecdef AND proname = 'tenant_by_slug'"
    )
    assert len(definers) == 1  # the check below has something to look at
    assert await security_definer_violations(catalog) == []


# --- the checks themselves can fail -----------------------------------------------------

# Every rule broken once, on a scratch database, by the administrator.
BROKEN_SCHEMA = """
CREATE TABLE public.leaky (
    id uuid PRIMARY KEY,
    tenant_id uuid,
    code text,
    user_id uuid,
    CONSTRAINT leaky_code_key UNIQUE (code),
    -- pairs leaky.tenant_id with users.id: "composite", yet not tenant-scoped
    FOREIGN KEY (user_id, tenant_id) REFERENCES public.users (tenant_id, id)
);
CREATE INDEX leaky_code_idx ON public.leaky (code);
-- the registry's exceptions are by name: another index of it is held to the rule
CREATE INDEX tenants_name_idx ON public.tenants (name);
CREATE TABLE public.wrong_type (tenant_id text NOT NULL, PRIMARY KEY (tenant_id));
ALTER TABLE public.wrong_type ENABLE ROW LEVEL SECURITY;
CREATE TABLE public.half_open (tenant_id uuid NOT NULL, id uuid, PRIMARY KEY (tenant_id, id));
ALTER TABLE public.half_open ENABLE ROW LEVEL SECURITY;
CREATE POLICY wide_open ON public.half_open USING (true);
CREATE TABLE public.global_settings (key text PRIMARY KEY, value text);
CREATE TABLE public.open_platform (id uuid PRIMARY KEY);
ALTER TABLE public.open_platform ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.open_platform FORCE ROW LEVEL SECURITY;
CREATE POLICY everyone ON public.open_platform USING (true);
CREATE VIEW public.all_users AS SELECT * FROM public.users;
CREATE MATERIALIZED VIEW public.user_count AS SELECT count(*) FROM public.users;
CREATE FUNCTION public.definer() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1';
GRANT TRUNCATE, TRIGGER ON public.users TO tenantry_app;
GRANT REFERENCES (id) ON public.projects TO tenantry_app;
GRANT SELECT ON public._yoyo_migration TO tenantry_app;
CREATE TABLE public.app_owned (tenant_id uuid NOT NULL, PRIMARY KEY (tenant_id));
ALTER TABLE public.app_owned OWNER TO tenantry_app;
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
            check.__name__: "\n".join(await check(conn))
            for check in (
                ownership_violations,
                table_privilege_violations,
                yoyo_violations,
                global_table_violations,
                platform_table_violations,
                rls_violations,
                policy_violations,
                primary_key_violations,
                unique_constraint_violations,
                index_violations,
                foreign_key_violations,
                tenant_key_type_violations,
                view_violations,
                security_definer_violations,
            )
        }
    finally:
        await conn.close()
    expected = {
        "ownership_violations": ["relation app_owned", "type app_owned"],
        "table_privilege_violations": [
            "TRUNCATE on public.users",
            "TRIGGER on public.users",
            "REFERENCES on public.projects",
        ],
        "yoyo_violations": ["['SELECT'] on public._yoyo_migration"],
        "global_table_violations": ["public.global_settings has no tenant_id"],
        "platform_table_violations": [
            "public.global_settings: row level security not enabled",
            "public.global_settings: row level security not forced",
            "public.global_settings: no policy applies",
            "public.open_platform policy everyone: does not check app.platform_scope()",
            "public.open_platform policy everyone: no WITH CHECK",
        ],
        "rls_violations": [
            "public.leaky: row level security not enabled",
            "public.leaky: row level security not forced",
            "public.half_open: row level security not forced",
        ],
        "policy_violations": [
            "public.leaky: no policy applies",
            "public.half_open policy wide_open: no WITH CHECK",
            "public.half_open policy wide_open: does not compare",
        ],
        "primary_key_violations": ["public.leaky: primary key leaky_pkey does not lead"],
        "unique_constraint_violations": ["public.leaky_code_key does not lead"],
        "index_violations": [
            "public.leaky_pkey",
            "public.leaky_code_key",
            "public.leaky_code_idx",
            "public.tenants_name_idx",
        ],
        "foreign_key_violations": ["public.leaky: foreign key leaky_user_id_tenant_id_fkey"],
        "tenant_key_type_violations": [
            "public.leaky.tenant_id is nullable",
            "public.wrong_type.tenant_id is not uuid",
        ],
        "view_violations": [
            "public.user_count is a materialized view",
            "public.all_users is a view without security_invoker",
        ],
        "security_definer_violations": [
            "public.definer(): EXECUTE granted to PUBLIC",
            "public.definer(): search_path not fixed",
        ],
    }
    missing = {
        check: [fragment for fragment in fragments if fragment not in found[check]]
        for check, fragments in expected.items()
    }
    assert {check: m for check, m in missing.items() if m} == {}, found
