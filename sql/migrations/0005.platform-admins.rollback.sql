DROP TABLE IF EXISTS platform_audit_log;
DROP TABLE IF EXISTS platform_sessions;
DROP TABLE IF EXISTS platform_admins;
