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

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON users;
CREATE POLICY tenant_isolation ON users
    USING (tenant_id = (SELECT app.current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT app.current_tenant_id()));

ALTER TABLE projects ENABLE ROW LEVEL SECURITY;
ALTER TABLE projects FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON projects;
CREATE POLICY tenant_isolation ON projects
    USING (tenant_id = (SELECT app.current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT app.current_tenant_id()));

ALTER TABLE tasks ENABLE ROW LEVEL SECURITY;
ALTER TABLE tasks FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON tasks;
CREATE POLICY tenant_isolation ON tasks
    USING (tenant_id = (SELECT app.current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT app.current_tenant_id()));

ALTER TABLE comments ENABLE ROW LEVEL SECURITY;
ALTER TABLE comments FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON comments;
CREATE POLICY tenant_isolation ON comments
    USING (tenant_id = (SELECT app.current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT app.current_tenant_id()));
