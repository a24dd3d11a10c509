ALTER TABLE tenants NO FORCE ROW LEVEL SECURITY;
ALTER TABLE users NO FORCE ROW LEVEL SECURITY;
ALTER TABLE users
    ADD COLUMN role text NOT NULL DEFAULT 'member'
        CHECK (role IN ('owner', 'admin', 'member', 'viewer'));
-- The strongest system role a user holds survives; custom roles do not.
UPDATE users AS u SET role = best.key
FROM (
    SELECT DISTINCT ON (ur.tenant_id, ur.user_id) ur.tenant_id, ur.user_id, r.key
    FROM user_roles AS ur
    JOIN roles AS r ON r.tenant_id = ur.tenant_id AND r.id = ur.role_id
    WHERE r.key IS NOT NULL
    ORDER BY ur.tenant_id, ur.user_id,
             array_position(ARRAY['owner', 'admin', 'member', 'viewer'], r.key)
) AS best
WHERE u.tenant_id = best.tenant_id AND u.id = best.user_id;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
DROP TABLE IF EXISTS user_roles;
DROP TABLE IF EXISTS role_permissions;
DROP TABLE IF EXISTS roles;
