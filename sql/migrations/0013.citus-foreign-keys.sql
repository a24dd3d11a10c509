-- Foreign keys Citus accepts (docs/scale-out.md, "Sharding by tenant"): it refuses
-- ON DELETE SET NULL on a key that includes the distribution column, tenant_id, even in
-- PostgreSQL 15's form that nulls only the column named. These six keys to users (who
-- created, assigned, wrote or granted) become NO ACTION. Nothing changes for the server:
-- users are disabled, never deleted one by one; a tenant's purge deletes the rows that
-- point at users before the users, and deleting a tenant removes them all in one statement,
-- at whose end NO ACTION is checked. A feature that deletes a single user must clear these
-- columns in the same transaction first.
--
-- Re-adding a key checks the existing rows (they satisfy it: the old key was the same but
-- for its ON DELETE action) while the table is locked: on a large database, run it when
-- writes are few.

ALTER TABLE projects DROP CONSTRAINT projects_tenant_id_created_by_fkey,
    ADD CONSTRAINT projects_tenant_id_created_by_fkey FOREIGN KEY (tenant_id, created_by)
        REFERENCES users (tenant_id, id);

ALTER TABLE tasks DROP CONSTRAINT tasks_tenant_id_assignee_id_fkey,
    ADD CONSTRAINT tasks_tenant_id_assignee_id_fkey FOREIGN KEY (tenant_id, assignee_id)
        REFERENCES users (tenant_id, id);

ALTER TABLE tasks DROP CONSTRAINT tasks_tenant_id_created_by_fkey,
    ADD CONSTRAINT tasks_tenant_id_created_by_fkey FOREIGN KEY (tenant_id, created_by)
        REFERENCES users (tenant_id, id);

ALTER TABLE comments DROP CONSTRAINT comments_tenant_id_author_id_fkey,
    ADD CONSTRAINT comments_tenant_id_author_id_fkey FOREIGN KEY (tenant_id, author_id)
        REFERENCES users (tenant_id, id);

ALTER TABLE account_tokens DROP CONSTRAINT account_tokens_tenant_id_created_by_fkey,
    ADD CONSTRAINT account_tokens_tenant_id_created_by_fkey FOREIGN KEY (tenant_id, created_by)
        REFERENCES users (tenant_id, id);

ALTER TABLE user_roles DROP CONSTRAINT user_roles_tenant_id_granted_by_fkey,
    ADD CONSTRAINT user_roles_tenant_id_granted_by_fkey FOREIGN KEY (tenant_id, granted_by)
        REFERENCES users (tenant_id, id);
