-- The single helper every policy reads the tenant through.
-- current_setting(..., true) is NULL when never set and '' after a transaction-local
-- set_config has ended on a pooled connection: NULLIF maps both to NULL, and
-- `tenant_id = NULL` matches no row, so no tenant means zero rows (fail closed).
CREATE OR REPLACE FUNCTION app.current_tenant_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid $$;

-- Sign-in names a tenant by slug before any tenant is bound. This is the only way to see
-- a tenants row without being bound to it: it returns the id and status of one slug,
-- never a listing. SECURITY DEFINER with a fixed search_path; EXECUTE granted explicitly.
CREATE OR REPLACE FUNCTION app.tenant_by_slug(p_slug text)
    RETURNS TABLE (id uuid, status text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT t.id, t.status FROM public.tenants AS t WHERE t.slug = lower(p_slug) $$;

-- The platform scope: platform tables (sql/migrations/0005) are visible only to a transaction
-- that app/core/db.py opened for platform work, with the transaction-local setting
-- `app.platform` = 'on'. Unset, '' (after a transaction on a pooled connection) or any other
-- value is false: no scope means zero platform rows (fail closed, like the tenant).
CREATE OR REPLACE FUNCTION app.platform_scope() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(current_setting('app.platform', true), '') = 'on' $$;

-- Platform administrators' view of tenants' usage (`tenants`, `platformTenant`): counts,
-- sizes and the latest activity, never a row. SECURITY DEFINER: it runs as the owner, whose
-- SELECT-only policies in 30-rls.sql let it count across tenants. It answers only inside the
-- platform scope, so called from a tenant's request it returns nothing.
-- storage_bytes estimates the tenant's data: the size of its rows in the content tables and
-- the audit log (indexes and free space not included).
CREATE OR REPLACE FUNCTION app.tenant_usage(p_ids uuid[])
    RETURNS TABLE (tenant_id uuid, users bigint, projects bigint, tasks bigint,
                   storage_bytes bigint, last_activity_at timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT t.id,
           (SELECT count(*) FROM public.users x WHERE x.tenant_id = t.id),
           (SELECT count(*) FROM public.projects x WHERE x.tenant_id = t.id),
           (SELECT count(*) FROM public.tasks x WHERE x.tenant_id = t.id),
           (SELECT coalesce(sum(pg_column_size(x.*)), 0) FROM public.users x
             WHERE x.tenant_id = t.id)::bigint
           + (SELECT coalesce(sum(pg_column_size(x.*)), 0) FROM public.projects x
               WHERE x.tenant_id = t.id)::bigint
           + (SELECT coalesce(sum(pg_column_size(x.*)), 0) FROM public.tasks x
               WHERE x.tenant_id = t.id)::bigint
           + (SELECT coalesce(sum(pg_column_size(x.*)), 0) FROM public.comments x
               WHERE x.tenant_id = t.id)::bigint
           + (SELECT coalesce(sum(pg_column_size(x.*)), 0) FROM public.audit_log x
               WHERE x.tenant_id = t.id)::bigint,
           greatest((SELECT max(x.last_used_at) FROM public.auth_sessions x
                      WHERE x.tenant_id = t.id),
                    (SELECT max(x.occurred_at) FROM public.audit_log x
                      WHERE x.tenant_id = t.id))
    FROM unnest(p_ids) AS t(id)
    WHERE app.platform_scope()
    $$;

-- The feature flags of the given tenants, for platform administrators (they manage them),
-- and only in the platform scope: elsewhere it returns nothing.
CREATE OR REPLACE FUNCTION app.tenant_feature_flags(p_ids uuid[])
    RETURNS TABLE (tenant_id uuid, key text, enabled boolean)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT f.tenant_id, f.key, f.enabled
    FROM public.tenant_features f
    WHERE f.tenant_id = ANY (p_ids) AND app.platform_scope()
    ORDER BY f.tenant_id, f.key
    $$;

-- The newest migration applied, for readiness (GET /readyz): yoyo's bookkeeping is the
-- owner's alone, and this reads one value of it, nothing else. SECURITY DEFINER with a fixed
-- search_path; EXECUTE granted explicitly.
CREATE OR REPLACE FUNCTION app.schema_version() RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT max(m.migration_id) FROM public._yoyo_migration AS m $$;

REVOKE ALL ON FUNCTION app.schema_version() FROM PUBLIC;
REVOKE ALL ON FUNCTION app.current_tenant_id() FROM PUBLIC;
REVOKE ALL ON FUNCTION app.tenant_feature_flags(uuid[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION app.tenant_usage(uuid[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION app.platform_scope() FROM PUBLIC;
REVOKE ALL ON FUNCTION app.tenant_by_slug(text) FROM PUBLIC;
