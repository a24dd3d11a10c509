-- Typed tenant settings managed by the tenant's admins (updateTenantSettings, tenant:settings),
-- beside mfa_required (0003): how long a session lasts (NULL: the server's
-- TENANTRY_REFRESH_TOKEN_TTL), and the status a new task gets when none is given.
ALTER TABLE tenants
    ADD COLUMN session_lifetime_hours integer
        CHECK (session_lifetime_hours BETWEEN 1 AND 2160),
    ADD COLUMN default_task_status text NOT NULL DEFAULT 'todo'
        CHECK (default_task_status IN ('todo', 'in_progress', 'blocked', 'done', 'cancelled'));
