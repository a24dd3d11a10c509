ALTER TABLE tenants DROP COLUMN IF EXISTS default_task_status;
ALTER TABLE tenants DROP COLUMN IF EXISTS session_lifetime_hours;
