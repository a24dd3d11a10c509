-- Back to ON DELETE SET NULL of the one column (0001, 0003, 0004).

ALTER TABLE projects DROP CONSTRAINT projects_tenant_id_created_by_fkey,
    ADD CONSTRAINT projects_tenant_id_created_by_fkey FOREIGN KEY (tenant_id, created_by)
        REFERENCES users (tenant_id, id) ON DELETE SET NULL (created_by);

ALTER TABLE tasks DROP CONSTRAINT tasks_tenant_id_assignee_id_fkey,
    ADD CONSTRAINT tasks_tenant_id_assignee_id_fkey FOREIGN KEY (tenant_id, assignee_id)
        REFERENCES users (tenant_id, id) ON DELETE SET NULL (assignee_id);

ALTER TABLE tasks DROP CONSTRAINT tasks_tenant_id_created_by_fkey,
    ADD CONSTRAINT tasks_tenant_id_created_by_fkey FOREIGN KEY (tenant_id, created_by)
        REFERENCES users (tenant_id, id) ON DELETE SET NULL (created_by);

ALTER TABLE comments DROP CONSTRAINT comments_tenant_id_author_id_fkey,
    ADD CONSTRAINT comments_tenant_id_author_id_fkey FOREIGN KEY (tenant_id, author_id)
        REFERENCES users (tenant_id, id) ON DELETE SET NULL (author_id);

ALTER TABLE account_tokens DROP CONSTRAINT account_tokens_tenant_id_created_by_fkey,
    ADD CONSTRAINT account_tokens_tenant_id_created_by_fkey FOREIGN KEY (tenant_id, created_by)
        REFERENCES users (tenant_id, id) ON DELETE SET NULL (created_by);

ALTER TABLE user_roles DROP CONSTRAINT user_roles_tenant_id_granted_by_fkey,
    ADD CONSTRAINT user_roles_tenant_id_granted_by_fkey FOREIGN KEY (tenant_id, granted_by)
        REFERENCES users (tenant_id, id) ON DELETE SET NULL (granted_by);
