-- Authorization: per-tenant roles, their permissions and who holds them, replacing the
-- interim `users.role` column of 0003.
--
-- System roles (key owner/admin/member/viewer) exist in every tenant; their permission
-- sets are fixed in app/rbac/permissions.py, so a release can extend them without a data
-- migration, and role_permissions holds rows for custom roles only. Tenant tables under
-- the rules of docs/security-model.md; RLS comes from sql/policies/30-rls.sql.

CREATE TABLE roles (
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id           uuid NOT NULL DEFAULT gen_random_uuid(),
    -- Set for the four system roles, NULL for custom ones.
    key          text CHECK (key IN ('owner', 'admin', 'member', 'viewer')),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    description  text NOT NULL DEFAULT '' CHECK (length(description) <= 1000),
    created_at   timestamptz NOT NULL DEFAULT statement_timestamp(),
    updated_at   timestamptz NOT NULL DEFAULT statement_timestamp(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT roles_key_key UNIQUE (tenant_id, key)
);
-- Names are unique per tenant, case-insensitively ("Support" and "support" would confuse).
CREATE UNIQUE INDEX roles_tenant_name_key ON roles (tenant_id, lower(name));
ALTER TABLE roles ENABLE ROW LEVEL SECURITY;
ALTER TABLE roles FORCE ROW LEVEL SECURITY;

CREATE TABLE role_permissions (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          uuid NOT NULL DEFAULT gen_random_uuid(),
    role_id     uuid NOT NULL,
    permission  text NOT NULL CHECK (permission ~ '^[a-z]+:[a-z]+(:[a-z]+)?$'),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT role_permissions_role_permission_key UNIQUE (tenant_id, role_id, permission),
    FOREIGN KEY (tenant_id, role_id) REFERENCES roles (tenant_id, id) ON DELETE CASCADE
);
ALTER TABLE role_permissions ENABLE ROW LEVEL SECURITY;
ALTER TABLE role_permissions FORCE ROW LEVEL SECURITY;

CREATE TABLE user_roles (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          uuid NOT NULL DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL,
    role_id     uuid NOT NULL,
    granted_by  uuid,
    granted_at  timestamptz NOT NULL DEFAULT statement_timestamp(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT user_roles_user_role_key UNIQUE (tenant_id, user_id, role_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE,
    -- A role is deleted only when nobody holds it (the service says so first).
    FOREIGN KEY (tenant_id, role_id) REFERENCES roles (tenant_id, id) ON DELETE RESTRICT,
    FOREIGN KEY (tenant_id, granted_by) REFERENCES users (tenant_id, id)
        ON DELETE SET NULL (granted_by)
);
CREATE INDEX user_roles_tenant_role_idx ON user_roles (tenant_id, role_id, user_id);
CREATE INDEX user_roles_tenant_granted_by_idx ON user_roles (tenant_id, granted_by);
ALTER TABLE user_roles ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_roles FORCE ROW LEVEL SECURITY;

-- Existing data: every tenant gets the system roles, every user the role of users.role.
-- The owner role is subject to the forced RLS of the existing tables (with no tenant bound
-- it would see no rows, and the new tables have no policy until the policies step), so it is
-- lifted for this transaction only and forced again below.
ALTER TABLE tenants NO FORCE ROW LEVEL SECURITY;
ALTER TABLE users NO FORCE ROW LEVEL SECURITY;
ALTER TABLE roles NO FORCE ROW LEVEL SECURITY;
ALTER TABLE user_roles NO FORCE ROW LEVEL SECURITY;

INSERT INTO roles (tenant_id, key, name, description)
SELECT t.id, s.key, s.name, s.description
FROM tenants AS t
CROSS JOIN (VALUES
    ('owner', 'Owner', 'Everything, including assigning the owner role. Every tenant keeps one.'),
    ('admin', 'Admin', 'Everything except assigning or removing the owner role.'),
    ('member', 'Member', 'Works on projects: creates them, edits own tasks, comments.'),
    ('viewer', 'Viewer', 'Reads projects, tasks, comments and the user list.')
) AS s (key, name, description);

INSERT INTO user_roles (tenant_id, user_id, role_id)
SELECT u.tenant_id, u.id, r.id
FROM users AS u
JOIN roles AS r ON r.tenant_id = u.tenant_id AND r.key = u.role;

ALTER TABLE users DROP COLUMN role;

ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
ALTER TABLE roles FORCE ROW LEVEL SECURITY;
ALTER TABLE user_roles FORCE ROW LEVEL SECURITY;
