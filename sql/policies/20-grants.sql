-- The server's role gets DML on application tables and nothing else: no TRUNCATE,
-- REFERENCES or TRIGGER, no DDL, no access to the migration bookkeeping tables.
GRANT USAGE ON SCHEMA public, app TO tenantry_app;
GRANT EXECUTE ON FUNCTION app.current_tenant_id() TO tenantry_app;
GRANT EXECUTE ON FUNCTION app.platform_scope() TO tenantry_app;
GRANT EXECUTE ON FUNCTION app.tenant_by_slug(text) TO tenantry_app;
GRANT EXECUTE ON FUNCTION app.tenant_usage(uuid[]) TO tenantry_app;
GRANT EXECUTE ON FUNCTION app.tenant_feature_flags(uuid[]) TO tenantry_app;
GRANT EXECUTE ON FUNCTION app.schema_version() TO tenantry_app;

DO $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
    LOOP
        EXECUTE format('REVOKE ALL ON public.%I FROM PUBLIC, tenantry_app', t.relname);
        IF t.relname NOT LIKE '%yoyo%' THEN
            EXECUTE format(
                'GRANT SELECT, INSERT, UPDATE, DELETE ON public.%I TO tenantry_app', t.relname);
        END IF;
    END LOOP;
END
$$;

-- The audit logs are append-only for the server: it may record and read, never rewrite.
REVOKE UPDATE, DELETE ON public.audit_log FROM tenantry_app;
REVOKE UPDATE, DELETE ON public.platform_audit_log FROM tenantry_app;
