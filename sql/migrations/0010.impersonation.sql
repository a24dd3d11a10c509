-- Break-glass impersonation (docs/platform.md): a platform administrator acts as a tenant
-- user through a short-lived session of that user.
--
-- An impersonation session is an ordinary auth_sessions row (so every existing way of ending
-- a user's sessions ends it too) that names the administrator and their platform session.
-- Neither column is a foreign key: administrators are global, and a key of a tenant table
-- must lead with tenant_id. The request path checks both ids against the platform tables on
-- every request.
ALTER TABLE auth_sessions
    ADD COLUMN impersonator_id uuid,
    ADD COLUMN platform_session_id uuid,
    ADD CONSTRAINT auth_sessions_impersonation_check
        CHECK ((impersonator_id IS NULL) = (platform_session_id IS NULL));

-- Every entry written while an administrator acts as a user names the administrator beside
-- the user (actor_id), so the tenant's log shows both identities.
ALTER TABLE audit_log ADD COLUMN impersonator_id uuid;
CREATE INDEX audit_log_tenant_impersonator_idx ON audit_log (tenant_id, impersonator_id, occurred_at)
    WHERE impersonator_id IS NOT NULL;
