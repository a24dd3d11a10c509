-- Soft deletion of tenants: when a tenant was deleted, so restoreTenant can tell whether the
-- retention period (TENANTRY_TENANT_RETENTION_DAYS) is over. Set with status 'deleted'.
ALTER TABLE tenants ADD COLUMN deleted_at timestamptz;
-- Tenants already deleted count from their last change. FORCEd row-level security would
-- hide every row from the owner: lifted for this statement only, inside this transaction.
ALTER TABLE tenants NO FORCE ROW LEVEL SECURITY;
UPDATE tenants SET deleted_at = updated_at WHERE status = 'deleted';
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
ALTER TABLE tenants ADD CONSTRAINT tenants_deleted_at_check
    CHECK ((status = 'deleted') = (deleted_at IS NOT NULL));
