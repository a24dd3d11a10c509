-- Row-level security: every tenant table is ENABLEd and FORCEd (so the owner is subject
-- to it too) and has one policy with USING and WITH CHECK on the tenant bound by
-- app/core/db.py. `(SELECT app.current_tenant_id())` is evaluated once per statement
-- (an InitPlan), so indexes leading with tenant_id are used.
-- Re-applied on every migrate: drop + create inside the migrate transaction.

-- tenants: a tenant sees only its own row; its id *is* the tenant id.
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON tenants;
CREATE POLICY tenant_isolation ON tenants
    USING (id = (SELECT app.current_tenant_id()))
    WITH CHECK (id = (SELECT app.current_tenant_id()));
-- Only for app.tenant_by_slug(), which runs as the owner.
DROP POLICY IF EXISTS owner_slug_lookup ON tenants;
CREATE POLICY owner_slug_lookup ON tenants FOR SELECT TO CURRENT_USER USING (true);
-- Platform administrators list and read tenants (`tenants`, `platformTenant`, needing
-- tenant:read): the registry, and only the registry, is readable in the platform scope
-- while no tenant is bound. A platform transaction that binds a tenant acts on that one
-- tenant (app/platform/lifecycle.py) and sees only its row, as any tenant-bound one does.
-- Nothing is writable this way. The catalog test allows exactly this policy
-- (PLATFORM_READABLE).
DROP POLICY IF EXISTS platform_read ON tenants;
CREATE POLICY platform_read ON tenants FOR SELECT
    USING ((SELECT app.platform_scope()) AND (SELECT app.current_tenant_id()) IS NULL);

-- Only for the owner's SECURITY DEFINER functions, which answer only in the platform scope:
-- app.tenant_usage() counts rows and never returns one; app.tenant_feature_flags() returns
-- the flags platform administrators manage.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['users', 'projects', 'tasks', 'comments', 'auth_sessions', 'audit_log',
                             'tenant_features']
    LOOP
        EXECUTE format('DROP POLICY IF EXISTS owner_usage ON public.%I', t);
        EXECUTE format(
            'CREATE POLICY owner_usage ON public.%I FOR SELECT TO CURRENT_USER USING (true)', t);
    END LOOP;
END
$$;

-- Every other table with a tenant_id column, present and future, gets the same policy; the
-- catalog test (tests/isolation/test_catalog.py) checks the result for every table.
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT c.relname FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
    LOOP
        EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', t.relname);
        EXECUTE format('ALTER TABLE public.%I FORCE ROW LEVEL SECURITY', t.relname);
        EXECUTE format('DROP POLICY IF EXISTS tenant_isolation ON public.%I', t.relname);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON public.%I'
            ' USING (tenant_id = (SELECT app.current_tenant_id()))'
            ' WITH CHECK (tenant_id = (SELECT app.current_tenant_id()))', t.relname);
    END LOOP;
END
$$;

-- Every table without a tenant_id (other than the tenant registry and yoyo's bookkeeping,
-- which the server's role cannot touch) belongs to the platform: visible only in the
-- platform scope. Present and future: a new global table is closed to tenant requests the
-- moment it exists; the catalog test checks the result.
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT c.relname FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
          AND c.relname <> 'tenants' AND c.relname NOT LIKE '%yoyo%'
          AND NOT EXISTS (
              SELECT 1 FROM pg_attribute a
              WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
    LOOP
        EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', t.relname);
        EXECUTE format('ALTER TABLE public.%I FORCE ROW LEVEL SECURITY', t.relname);
        EXECUTE format('DROP POLICY IF EXISTS platform_only ON public.%I', t.relname);
        EXECUTE format(
            'CREATE POLICY platform_only ON public.%I'
            ' USING ((SELECT app.platform_scope()))'
            ' WITH CHECK ((SELECT app.platform_scope()))', t.relname);
    END LOOP;
END
$$;
