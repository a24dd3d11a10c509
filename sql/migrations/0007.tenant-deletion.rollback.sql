ALTER TABLE tenants DROP CONSTRAINT IF EXISTS tenants_deleted_at_check;
ALTER TABLE tenants DROP COLUMN IF EXISTS deleted_at;
