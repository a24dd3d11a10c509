-- Authentication: sessions with rotating refresh tokens, MFA, account tokens
-- (invitations, password resets, email verification), the development outbox, trusted
-- external identity providers and the append-only audit log.
--
-- Every table is a tenant table under the rules of docs/security-model.md; RLS policies
-- are in sql/policies/30-rls.sql, grants (audit_log: INSERT and SELECT only) in 20-grants.sql.

-- Interim tenant roles until the authorization issue replaces this column with role
-- tables: who may invite, read the audit log and manage identity providers.
ALTER TABLE users
    ADD COLUMN role text NOT NULL DEFAULT 'member'
        CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    ADD COLUMN email_verified_at timestamptz,
    ADD COLUMN password_changed_at timestamptz;

-- "MFA required": members without a confirmed factor must enrol at their next sign-in.
ALTER TABLE tenants ADD COLUMN mfa_required boolean NOT NULL DEFAULT false;

-- One row per sign-in: the refresh-token family and what `viewer.sessions` lists.
CREATE TABLE auth_sessions (
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id              uuid NOT NULL DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL,
    aal             smallint NOT NULL CHECK (aal IN (1, 2)),
    amr             text[] NOT NULL,
    auth_time       timestamptz NOT NULL DEFAULT statement_timestamp(),
    user_agent      text NOT NULL DEFAULT '' CHECK (length(user_agent) <= 512),
    ip              inet,
    created_at      timestamptz NOT NULL DEFAULT statement_timestamp(),
    last_used_at    timestamptz NOT NULL DEFAULT statement_timestamp(),
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    revoked_reason  text CHECK (length(revoked_reason) <= 100),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX auth_sessions_tenant_user_idx ON auth_sessions (tenant_id, user_id, created_at, id);

-- Every refresh token ever issued in a family; only a SHA-256 digest is stored. A token
-- with rotated_at set was exchanged once: presenting it again after the grace window is
-- reuse, and revokes the family.
CREATE TABLE refresh_tokens (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          uuid NOT NULL DEFAULT gen_random_uuid(),
    session_id  uuid NOT NULL,
    token_hash  bytea NOT NULL CHECK (length(token_hash) = 32),
    created_at  timestamptz NOT NULL DEFAULT statement_timestamp(),
    rotated_at  timestamptz,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT refresh_tokens_hash_key UNIQUE (tenant_id, token_hash),
    FOREIGN KEY (tenant_id, session_id) REFERENCES auth_sessions (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX refresh_tokens_tenant_session_idx ON refresh_tokens (tenant_id, session_id, created_at);

-- TOTP: the secret is AES-GCM encrypted outside the database's reach (key file), with
-- the key version and associated data binding it to tenant and user.
CREATE TABLE mfa_totp (
    tenant_id          uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                 uuid NOT NULL DEFAULT gen_random_uuid(),
    user_id            uuid NOT NULL,
    secret_ciphertext  bytea NOT NULL,
    key_version        integer NOT NULL CHECK (key_version > 0),
    confirmed_at       timestamptz,
    -- The last accepted 30-second step: a code is accepted once.
    last_used_step     bigint,
    created_at         timestamptz NOT NULL DEFAULT statement_timestamp(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT mfa_totp_user_key UNIQUE (tenant_id, user_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE mfa_recovery_codes (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          uuid NOT NULL DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL,
    code_hash   bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT statement_timestamp(),
    used_at     timestamptz,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT mfa_recovery_codes_hash_key UNIQUE (tenant_id, user_id, code_hash),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);

-- Single-use, expiring secrets mailed to a user: invitation acceptance, password reset,
-- verification of a changed email. Digest only.
CREATE TABLE account_tokens (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          uuid NOT NULL DEFAULT gen_random_uuid(),
    purpose     text NOT NULL CHECK (purpose IN ('invitation', 'password_reset', 'email_verification')),
    user_id     uuid NOT NULL,
    token_hash  bytea NOT NULL CHECK (length(token_hash) = 32),
    -- email_verification: the address being verified (becomes users.email when used).
    email       text CHECK (length(email) BETWEEN 3 AND 320),
    created_by  uuid,
    created_at  timestamptz NOT NULL DEFAULT statement_timestamp(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT account_tokens_hash_key UNIQUE (tenant_id, token_hash),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, created_by) REFERENCES users (tenant_id, id)
        ON DELETE SET NULL (created_by)
);
CREATE INDEX account_tokens_tenant_user_idx ON account_tokens (tenant_id, user_id, purpose);
CREATE INDEX account_tokens_tenant_created_by_idx ON account_tokens (tenant_id, created_by);

-- Messages the development mailer "sends" (tests read them here). Production mails by SMTP.
CREATE TABLE outbox (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          uuid NOT NULL DEFAULT gen_random_uuid(),
    kind        text NOT NULL,
    recipient   text NOT NULL,
    subject     text NOT NULL,
    body        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT statement_timestamp(),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX outbox_tenant_created_idx ON outbox (tenant_id, created_at, id);

-- External OIDC issuers a tenant trusts for `exchangeToken`.
CREATE TABLE identity_providers (
    tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id             uuid NOT NULL DEFAULT gen_random_uuid(),
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    issuer         text NOT NULL CHECK (length(issuer) BETWEEN 1 AND 2000),
    audience       text NOT NULL CHECK (length(audience) BETWEEN 1 AND 2000),
    jwks_url       text NOT NULL CHECK (length(jwks_url) BETWEEN 1 AND 2000),
    subject_claim  text NOT NULL DEFAULT 'sub',
    email_claim    text NOT NULL DEFAULT 'email',
    name_claim     text NOT NULL DEFAULT 'name',
    create_users   boolean NOT NULL DEFAULT false,
    default_role   text NOT NULL DEFAULT 'member'
                   CHECK (default_role IN ('admin', 'member', 'viewer')),
    enabled        boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT statement_timestamp(),
    updated_at     timestamptz NOT NULL DEFAULT statement_timestamp(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT identity_providers_issuer_key UNIQUE (tenant_id, issuer)
);

-- A user's identity at an external provider (issuer + subject).
CREATE TABLE user_identities (
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id           uuid NOT NULL DEFAULT gen_random_uuid(),
    user_id      uuid NOT NULL,
    provider_id  uuid NOT NULL,
    subject      text NOT NULL CHECK (length(subject) BETWEEN 1 AND 500),
    created_at   timestamptz NOT NULL DEFAULT statement_timestamp(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT user_identities_subject_key UNIQUE (tenant_id, provider_id, subject),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, provider_id) REFERENCES identity_providers (tenant_id, id)
        ON DELETE CASCADE
);
CREATE INDEX user_identities_tenant_user_idx ON user_identities (tenant_id, user_id);

-- Append-only record of security events. The server's role may INSERT and SELECT only
-- (20-grants.sql); actor_id has no foreign key so history outlives deleted users.
CREATE TABLE audit_log (
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id           uuid NOT NULL DEFAULT gen_random_uuid(),
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
    metadata     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX audit_log_tenant_time_idx ON audit_log (tenant_id, occurred_at, id);
CREATE INDEX audit_log_tenant_action_idx ON audit_log (tenant_id, action, occurred_at);

ALTER TABLE auth_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE auth_sessions FORCE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens FORCE ROW LEVEL SECURITY;
ALTER TABLE mfa_totp ENABLE ROW LEVEL SECURITY;
ALTER TABLE mfa_totp FORCE ROW LEVEL SECURITY;
ALTER TABLE mfa_recovery_codes ENABLE ROW LEVEL SECURITY;
ALTER TABLE mfa_recovery_codes FORCE ROW LEVEL SECURITY;
ALTER TABLE account_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE account_tokens FORCE ROW LEVEL SECURITY;
ALTER TABLE outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox FORCE ROW LEVEL SECURITY;
ALTER TABLE identity_providers ENABLE ROW LEVEL SECURITY;
ALTER TABLE identity_providers FORCE ROW LEVEL SECURITY;
ALTER TABLE user_identities ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_identities FORCE ROW LEVEL SECURITY;
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
