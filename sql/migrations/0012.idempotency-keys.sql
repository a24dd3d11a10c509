-- Idempotency keys of mutations (docs/operations.md#retrying-mutations): a mutation
-- operation sent with an `Idempotency-Key` header (or `@idempotent(key:)`) records the key,
-- a digest of its request and, once it has run, its result, in the same transaction as its
-- writes. A retry after a lost answer finds either the result (the first one committed) or
-- nothing (it did not, and runs now); a concurrent duplicate waits on the row's unique key.
-- Rows older than 24 hours no longer count and are purged by `tenantry idempotency purge-expired`.

-- A tenant user's keys: a tenant table like any other (RLS in sql/policies/30-rls.sql).
CREATE TABLE idempotency_keys (
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id              uuid NOT NULL DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL,
    key             text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_digest  bytea NOT NULL CHECK (length(request_digest) = 32),
    -- The operation's `data` as the client received it; NULL only inside the transaction
    -- that runs it. `json`, not `jsonb`: a replay keeps the fields in the order asked.
    response        json,
    created_at      timestamptz NOT NULL DEFAULT statement_timestamp(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT idempotency_keys_user_key UNIQUE (tenant_id, user_id, key),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX idempotency_keys_tenant_created_idx ON idempotency_keys (tenant_id, created_at);
ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;

-- global table: platform_idempotency_keys (a platform administrator's keys)
-- Platform-only by the catalog loop of sql/policies/30-rls.sql (ENABLE + FORCE below).
CREATE TABLE platform_idempotency_keys (
    admin_id        uuid NOT NULL REFERENCES platform_admins (id) ON DELETE CASCADE,
    key             text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_digest  bytea NOT NULL CHECK (length(request_digest) = 32),
    response        json,
    created_at      timestamptz NOT NULL DEFAULT statement_timestamp(),
    PRIMARY KEY (admin_id, key)
);
CREATE INDEX platform_idempotency_keys_created_idx ON platform_idempotency_keys (created_at);
ALTER TABLE platform_idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE platform_idempotency_keys FORCE ROW LEVEL SECURITY;
