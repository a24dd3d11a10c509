DROP TABLE IF EXISTS audit_log;
DROP TABLE IF EXISTS user_identities;
DROP TABLE IF EXISTS identity_providers;
DROP TABLE IF EXISTS outbox;
DROP TABLE IF EXISTS account_tokens;
DROP TABLE IF EXISTS mfa_recovery_codes;
DROP TABLE IF EXISTS mfa_totp;
DROP TABLE IF EXISTS refresh_tokens;
DROP TABLE IF EXISTS auth_sessions;
ALTER TABLE tenants DROP COLUMN IF EXISTS mfa_required;
ALTER TABLE users
    DROP COLUMN IF EXISTS password_changed_at,
    DROP COLUMN IF EXISTS email_verified_at,
    DROP COLUMN IF EXISTS role;
