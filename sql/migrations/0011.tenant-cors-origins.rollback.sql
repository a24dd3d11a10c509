ALTER TABLE tenants DROP COLUMN IF EXISTS cors_origins;
