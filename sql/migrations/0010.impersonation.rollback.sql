DROP INDEX IF EXISTS audit_log_tenant_impersonator_idx;
ALTER TABLE audit_log DROP COLUMN IF EXISTS impersonator_id;
ALTER TABLE auth_sessions DROP CONSTRAINT IF EXISTS auth_sessions_impersonation_check;
ALTER TABLE auth_sessions DROP COLUMN IF EXISTS platform_session_id;
ALTER TABLE auth_sessions DROP COLUMN IF EXISTS impersonator_id;
