-- Preconditions on the server's role, checked on every migrate so a misconfigured
-- deployment fails here instead of silently running with a role that bypasses RLS.
-- Roles are created by `tenantry db bootstrap` (or the operator, see docs/operations.md):
-- creating roles needs privileges the owner role must not have.
DO $$
DECLARE
    app_role pg_roles%ROWTYPE;
BEGIN
    SELECT * INTO app_role FROM pg_roles WHERE rolname = 'tenantry_app';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'role tenantry_app does not exist; run `tenantry db bootstrap` or create it (docs/operations.md)';
    END IF;
    IF app_role.rolsuper OR app_role.rolbypassrls OR app_role.rolcreaterole OR app_role.rolcreatedb THEN
        RAISE EXCEPTION 'role tenantry_app must be NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB';
    END IF;
    IF pg_has_role('tenantry_app', current_user, 'MEMBER') AND current_user <> 'tenantry_app' THEN
        RAISE EXCEPTION 'role tenantry_app must not be a member of the owner role %', current_user;
    END IF;
    IF current_user = 'tenantry_app' THEN
        RAISE EXCEPTION 'migrations must run as the owner role, not as tenantry_app';
    END IF;
END
$$;

-- Nobody but the owner creates objects in our schemas, nor temporary tables (which have no
-- row-level security and would be searched before `public`).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
END
$$;
REVOKE ALL ON SCHEMA app FROM PUBLIC;
