-- Platform administrators: a principal kind of its own, not a user of any tenant.
--
-- These tables belong to no tenant, so they have no tenant_id. They are still under
-- row-level security (ENABLE + FORCE, policies in sql/policies/30-rls.sql): only a
-- transaction that app/core/db.py opened in the platform scope (`app.platform` = 'on',
-- transaction-local, bound where the tenant is) sees or writes a row. Every request of a
-- tenant user runs without that scope and reads zero rows here, whatever its SQL says.

-- global table: platform_admins (platform principals, signed in to their own audience)
CREATE TABLE platform_admins (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email                text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
    name                 text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    password_hash        text NOT NULL,
    -- MFA is not optional for platform administrators: every row has a TOTP secret,
    -- AES-GCM sealed (app/mfa/crypto.py) with associated data naming this admin.
    totp_secret          bytea NOT NULL,
    totp_key_version     integer NOT NULL CHECK (totp_key_version > 0),
    -- The last TOTP step accepted: a code is never accepted twice.
    totp_last_used_step  bigint,
    -- Platform permissions (app/platform/permissions.py); names a release dropped grant nothing.
    permissions          text[] NOT NULL DEFAULT '{}',
    status               text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at           timestamptz NOT NULL DEFAULT statement_timestamp(),
    updated_at           timestamptz NOT NULL DEFAULT statement_timestamp(),
    last_sign_in_at      timestamptz
);
CREATE UNIQUE INDEX platform_admins_email_key ON platform_admins (lower(email));
ALTER TABLE platform_admins ENABLE ROW LEVEL SECURITY;
ALTER TABLE platform_admins FORCE ROW LEVEL SECURITY;

-- global table: platform_sessions (a platform sign-in; its access tokens name it in `sid`)
-- Checked on every platform operation, so ending one takes effect at once, in every process.
CREATE TABLE platform_sessions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    admin_id        uuid NOT NULL REFERENCES platform_admins (id) ON DELETE CASCADE,
    amr             text[] NOT NULL,
    user_agent      text NOT NULL DEFAULT '' CHECK (length(user_agent) <= 512),
    ip              inet,
    created_at      timestamptz NOT NULL DEFAULT statement_timestamp(),
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    revoked_reason  text CHECK (length(revoked_reason) <= 100)
);
CREATE INDEX platform_sessions_admin_idx ON platform_sessions (admin_id, created_at);
ALTER TABLE platform_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE platform_sessions FORCE ROW LEVEL SECURITY;

-- global table: platform_audit_log (what platform principals and operators did; no tenant's)
-- Append-only for the server's role like audit_log (sql/policies/20-grants.sql).
CREATE TABLE platform_audit_log (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    occurred_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor_kind   text NOT NULL CHECK (actor_kind IN ('user', 'anonymous', 'system', 'platform')),
    actor_id     uuid,
    action       text NOT NULL CHECK (action ~ '^[a-z_]+(\.[a-z_]+)*$'),
    target_type  text,
    target_id    text CHECK (length(target_id) <= 200),
    outcome      text NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    ip           inet,
    user_agent   text CHECK (length(user_agent) <= 512),
    request_id   text CHECK (length(request_id) <= 64),
    metadata     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object')
);
CREATE INDEX platform_audit_log_time_idx ON platform_audit_log (occurred_at, id);
CREATE INDEX platform_audit_log_action_idx ON platform_audit_log (action, occurred_at);
ALTER TABLE platform_audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE platform_audit_log FORCE ROW LEVEL SECURITY;
