-- Tenant provisioning by platform administrators: the idempotency keys of createTenant.
--
-- global table: tenant_provisioning (a platform administrator's createTenant requests)
-- A retried request with the same key returns the tenant the first one created; the
-- digest of the request's input tells a retry from a different request reusing the key.
-- Platform-only by the catalog loop of sql/policies/30-rls.sql (ENABLE + FORCE below).
CREATE TABLE tenant_provisioning (
    admin_id           uuid NOT NULL REFERENCES platform_admins (id) ON DELETE CASCADE,
    idempotency_key    text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    request_digest     bytea NOT NULL,
    -- Not named tenant_id: this is a platform row about a tenant, not a row of the tenant.
    created_tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    created_at         timestamptz NOT NULL DEFAULT statement_timestamp(),
    PRIMARY KEY (admin_id, idempotency_key)
);
CREATE INDEX tenant_provisioning_tenant_idx ON tenant_provisioning (created_tenant_id);
ALTER TABLE tenant_provisioning ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_provisioning FORCE ROW LEVEL SECURITY;
