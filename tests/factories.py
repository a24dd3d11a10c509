"""Raw-SQL seed helpers: plain async functions, each in its own tenant-bound transaction.

Everything goes through the app's `Database` (the server's role), so seeding obeys the same
row-level security as the app: a tenant is created inside a transaction bound to its new id.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID, uuid4

from app.core.db import Database


def unique_slug(prefix: str = "t") -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


async def seed_tenant(database: Database, *, slug: str | None = None, name: str = "Tenant") -> UUID:
    tenant_id = uuid4()
    async with database.transaction(tenant_id) as session:
        await session.execute(
            "INSERT INTO tenants (id, slug, name) VALUES ($1, $2, $3)",
            tenant_id,
            slug or unique_slug(),
            name,
        )
    return tenant_id


async def seed_user(
    database: Database, tenant_id: UUID, *, email: str | None = None, display_name: str = "User"
) -> UUID:
    async with database.transaction(tenant_id) as session:
        user_id: UUID = await session.fetchval(
            "INSERT INTO users (tenant_id, email, display_name) VALUES ($1, $2, $3) RETURNING id",
            tenant_id,
            email or f"{secrets.token_hex(6)}@example.com",
            display_name,
        )
    return user_id


async def seed_project(
    database: Database, tenant_id: UUID, *, name: str = "Project", created_by: UUID | None = None
) -> UUID:
    async with database.transaction(tenant_id) as session:
        project_id: UUID = await session.fetchval(
            "INSERT INTO projects (tenant_id, name, created_by) VALUES ($1, $2, $3) RETURNING id",
            tenant_id,
            name,
            created_by,
        )
    return project_id


async def seed_task(
    database: Database,
    tenant_id: UUID,
    project_id: UUID,
    *,
    title: str = "Task",
    position: float = 1.0,
    assignee_id: UUID | None = None,
) -> UUID:
    async with database.transaction(tenant_id) as session:
        task_id: UUID = await session.fetchval(
            "INSERT INTO tasks (tenant_id, project_id, title, position, assignee_id)"
            " VALUES ($1, $2, $3, $4, $5) RETURNING id",
            tenant_id,
            project_id,
            title,
            position,
            assignee_id,
        )
    return task_id


async def seed_comment(
    database: Database,
    tenant_id: UUID,
    task_id: UUID,
    *,
    body: str = "Comment",
    author_id: UUID | None = None,
) -> UUID:
    async with database.transaction(tenant_id) as session:
        comment_id: UUID = await session.fetchval(
            "INSERT INTO comments (tenant_id, task_id, body, author_id)"
            " VALUES ($1, $2, $3, $4) RETURNING id",
            tenant_id,
            task_id,
            body,
            author_id,
        )
    return comment_id


@dataclass(frozen=True)
class SeededTenant:
    """A tenant with one row in every tenant table."""

    tenant: UUID
    slug: str
    user: UUID
    project: UUID
    task: UUID
    comment: UUID

    def id_in(self, table: str) -> UUID:
        """This tenant's row id in `table` (for `tenants`, the tenant id itself)."""
        return {
            "tenants": self.tenant,
            "users": self.user,
            "projects": self.project,
            "tasks": self.task,
            "comments": self.comment,
        }[table]


# Tables seed_graph fills. A new tenant table must be added here (and to seed_graph): the
# isolation tests require rows of two tenants in every tenant table found in the catalog.
SEEDED_TABLES = frozenset({"tenants", "users", "projects", "tasks", "comments"})


async def seed_graph(database: Database) -> SeededTenant:
    """A new tenant with a user, a project, a task and a comment, all linked."""
    slug = unique_slug()
    tenant = await seed_tenant(database, slug=slug)
    user = await seed_user(database, tenant)
    project = await seed_project(database, tenant, created_by=user)
    task = await seed_task(database, tenant, project, assignee_id=user)
    comment = await seed_comment(database, tenant, task, author_id=user)
    return SeededTenant(tenant, slug, user, project, task, comment)


# Every tenant table, found from the catalog (so tables added later are covered): tables in
# non-system schemas with a `tenant_id` column, plus the registry `public.tenants`, whose
# `id` is the tenant id. `key` names that column; readable by any role, the server's too.
TENANT_TABLES_SQL = """
SELECT c.oid AS oid,
       format('%I.%I', n.nspname, c.relname) AS name,
       a.attname AS key,
       a.attnum AS key_attnum
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
JOIN pg_attribute AS a
  ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 AND a.attname = CASE WHEN c.oid = to_regclass('public.tenants') THEN 'id' ELSE 'tenant_id' END
WHERE c.relkind IN ('r', 'p')
  AND n.nspname <> 'information_schema' AND left(n.nspname, 3) <> 'pg_'
ORDER BY name
"""


class _Fetcher(Protocol):
    async def fetch(self, sql: str, *args: Any) -> list[Any]: ...


async def tenant_tables(conn: _Fetcher) -> dict[str, str]:
    """Qualified name -> tenant key column of every tenant table, e.g. 'public.users'."""
    return {row["name"]: row["key"] for row in await conn.fetch(TENANT_TABLES_SQL)}
