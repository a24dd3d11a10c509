-- Feature flags per tenant, managed by platform administrators (setTenantFeature,
-- unsetTenantFeature); a tenant reads its own as `tenant.features`. A tenant table under the
-- rules of docs/security-model.md; RLS from sql/policies/30-rls.sql.
CREATE TABLE tenant_features (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          uuid NOT NULL DEFAULT gen_random_uuid(),
    key         text NOT NULL CHECK (key ~ '^[a-z][a-z0-9_.-]{0,63}$'),
    enabled     boolean NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT statement_timestamp(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT tenant_features_key_key UNIQUE (tenant_id, key)
);
ALTER TABLE tenant_features ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_features FORCE ROW LEVEL SECURITY;
