-- Core tables: tenants and the tenant-owned users, projects, tasks and comments.
--
-- Tenant tables follow the database rules of docs/security-model.md: primary key
-- (tenant_id, id), unique constraints and indexes leading with tenant_id, foreign keys
-- that include tenant_id. Row-level security and its policies live in sql/policies/,
-- which `tenantry migrate` re-applies on every run.

CREATE SCHEMA IF NOT EXISTS app;

CREATE TABLE tenants (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug        text NOT NULL,
    name        text NOT NULL,
    status      text NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'suspended', 'deleted')),
    plan        text NOT NULL DEFAULT 'free',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tenants_slug_format CHECK (slug ~ '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$'),
    CONSTRAINT tenants_slug_key UNIQUE (slug)
);
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;

CREATE TABLE users (
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id            uuid NOT NULL DEFAULT gen_random_uuid(),
    email         text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
    display_name  text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    password_hash text,
    status        text NOT NULL DEFAULT 'active'
                  CHECK (status IN ('active', 'invited', 'disabled')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
-- Email is unique per tenant, case-insensitively; the same email may exist in other tenants.
CREATE UNIQUE INDEX users_tenant_email_key ON users (tenant_id, lower(email));
CREATE INDEX users_tenant_created_idx ON users (tenant_id, created_at, id);
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;

CREATE TABLE projects (
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id           uuid NOT NULL DEFAULT gen_random_uuid(),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description  text NOT NULL DEFAULT '' CHECK (length(description) <= 10000),
    status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
    created_by   uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    archived_at  timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, created_by) REFERENCES users (tenant_id, id)
        ON DELETE SET NULL (created_by)
);
CREATE INDEX projects_tenant_created_idx ON projects (tenant_id, created_at, id);
CREATE INDEX projects_tenant_name_idx ON projects (tenant_id, name, id);
CREATE INDEX projects_tenant_created_by_idx ON projects (tenant_id, created_by);
ALTER TABLE projects ENABLE ROW LEVEL SECURITY;
ALTER TABLE projects FORCE ROW LEVEL SECURITY;

CREATE TABLE tasks (
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id           uuid NOT NULL DEFAULT gen_random_uuid(),
    project_id   uuid NOT NULL,
    title        text NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
    description  text NOT NULL DEFAULT '' CHECK (length(description) <= 20000),
    status       text NOT NULL DEFAULT 'todo'
                 CHECK (status IN ('todo', 'in_progress', 'blocked', 'done', 'cancelled')),
    priority     text NOT NULL DEFAULT 'medium'
                 CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
    assignee_id  uuid,
    due_date     date,
    position     double precision NOT NULL,
    created_by   uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, project_id) REFERENCES projects (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, assignee_id) REFERENCES users (tenant_id, id)
        ON DELETE SET NULL (assignee_id),
    FOREIGN KEY (tenant_id, created_by) REFERENCES users (tenant_id, id)
        ON DELETE SET NULL (created_by)
);
CREATE INDEX tasks_tenant_project_position_idx ON tasks (tenant_id, project_id, position, id);
CREATE INDEX tasks_tenant_assignee_idx ON tasks (tenant_id, assignee_id, created_at, id);
CREATE INDEX tasks_tenant_created_idx ON tasks (tenant_id, created_at, id);
CREATE INDEX tasks_tenant_created_by_idx ON tasks (tenant_id, created_by);
ALTER TABLE tasks ENABLE ROW LEVEL SECURITY;
ALTER TABLE tasks FORCE ROW LEVEL SECURITY;

CREATE TABLE comments (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          uuid NOT NULL DEFAULT gen_random_uuid(),
    task_id     uuid NOT NULL,
    author_id   uuid,
    body        text NOT NULL CHECK (length(body) BETWEEN 1 AND 10000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    edited_at   timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, task_id) REFERENCES tasks (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, author_id) REFERENCES users (tenant_id, id)
        ON DELETE SET NULL (author_id)
);
CREATE INDEX comments_tenant_task_created_idx ON comments (tenant_id, task_id, created_at, id);
CREATE INDEX comments_tenant_author_idx ON comments (tenant_id, author_id);
ALTER TABLE comments ENABLE ROW LEVEL SECURITY;
ALTER TABLE comments FORCE ROW LEVEL SECURITY;
