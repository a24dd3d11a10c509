"""Raw-SQL seed helpers: plain async functions, each in its own tenant-bound transaction.

Everything goes through the app's `Database` (the server's role), so seeding obeys the same
row-level security as the app: a tenant is created inside a transaction bound to its new id.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID, uuid4

from joserfc import jws

from app.auth import queries as auth_queries
from app.core.db import Database, Session
from app.core.security import TokenService
from app.rbac import service as rbac


def unique_slug(prefix: str = "t") -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


async def seed_tenant(database: Database, *, slug: str | None = None, name: str = "Tenant") -> UUID:
    """A tenant with its system roles (as provisioning creates them)."""
    tenant_id = uuid4()
    async with database.transaction(tenant_id) as session:
        await session.execute(
            "INSERT INTO tenants (id, slug, name) VALUES ($1, $2, $3)",
            tenant_id,
            slug or unique_slug(),
            name,
        )
        await rbac.provision(session)
    return tenant_id


async def seed_user(
    database: Database,
    tenant_id: UUID,
    *,
    email: str | None = None,
    display_name: str = "User",
    role: str | None = "member",
) -> UUID:
    """A user holding the system role `role` (None: no role at all)."""
    async with database.transaction(tenant_id) as session:
        user_id: UUID = await session.fetchval(
            "INSERT INTO users (tenant_id, email, display_name) VALUES ($1, $2, $3) RETURNING id",
            tenant_id,
            email or f"{secrets.token_hex(6)}@example.com",
            display_name,
        )
        if role is not None:
            await rbac.grant_system_role(session, user_id=user_id, key=role, granted_by=None)
    return user_id


# A `role` column for SELECTs on users: the user's system role key (tests hold one at most).
SYSTEM_ROLE_COLUMN = (
    "(SELECT r.key FROM user_roles ur JOIN roles r ON r.id = ur.role_id"
    " WHERE ur.user_id = users.id AND r.key IS NOT NULL LIMIT 1) AS role"
)


async def set_role(database: Database, tenant_id: UUID, user_id: UUID, role: str | None) -> None:
    """Make the system role `role` the user's only role (None: no role), straight in the
    database. For setting up a user before their first request: a permission set the server
    already cached stays until a role change through the API bumps the tenant's generation."""
    async with database.transaction(tenant_id) as session:
        await session.execute("DELETE FROM user_roles WHERE user_id = $1", user_id)
        if role is not None:
            await rbac.grant_system_role(session, user_id=user_id, key=role, granted_by=None)


async def grant_custom_role(
    database: Database, tenant_id: UUID, user_id: UUID, permissions: list[str]
) -> UUID:
    """Give the user a new custom role holding exactly `permissions`, straight in the
    database (before their first request, as `set_role`)."""
    async with database.transaction(tenant_id) as session:
        role_id: UUID = await session.fetchval(
            "INSERT INTO roles (tenant_id, name) VALUES ($1, $2) RETURNING id",
            tenant_id,
            f"Custom {secrets.token_hex(4)}",
        )
        for permission in permissions:
            await session.execute(
                "INSERT INTO role_permissions (tenant_id, role_id, permission) VALUES ($1, $2, $3)",
                tenant_id,
                role_id,
                permission,
            )
        await session.execute(
            "INSERT INTO user_roles (tenant_id, user_id, role_id) VALUES ($1, $2, $3)",
            tenant_id,
            user_id,
            role_id,
        )
    return role_id


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
    # The authentication tables' rows, by table name.
    auth: dict[str, UUID]

    def id_in(self, table: str) -> UUID:
        """This tenant's row id in `table` (for `tenants`, the tenant id itself)."""
        core = {
            "tenants": self.tenant,
            "users": self.user,
            "projects": self.project,
            "tasks": self.task,
            "comments": self.comment,
        }
        return core[table] if table in core else self.auth[table]


# One row per authentication table, linked to the user; each statement's $1 is the tenant,
# $2 the user, $3 a fresh 32-byte digest, and earlier rows are reachable by table name.
_AUTH_ROWS = {
    "auth_sessions": "INSERT INTO auth_sessions (tenant_id, user_id, aal, amr, expires_at,"
    " user_agent) VALUES ($1, $2, 1, '{pwd}', now() + interval '1 day', encode($3, 'hex'))"
    " RETURNING id",
    "refresh_tokens": "INSERT INTO refresh_tokens (tenant_id, session_id, token_hash)"
    " SELECT $1, id, $3 FROM auth_sessions WHERE user_id = $2 LIMIT 1 RETURNING id",
    "mfa_totp": "INSERT INTO mfa_totp (tenant_id, user_id, secret_ciphertext, key_version)"
    " VALUES ($1, $2, $3, 1) RETURNING id",
    "mfa_recovery_codes": "INSERT INTO mfa_recovery_codes (tenant_id, user_id, code_hash)"
    " VALUES ($1, $2, $3) RETURNING id",
    "account_tokens": "INSERT INTO account_tokens (tenant_id, purpose, user_id, token_hash,"
    " expires_at) VALUES ($1, 'password_reset', $2, $3, now() + interval '1 hour') RETURNING id",
    "outbox": "INSERT INTO outbox (tenant_id, kind, recipient, subject, body)"
    " SELECT $1, 'test', email, 'Subject', encode($3, 'hex') FROM users WHERE id = $2"
    " RETURNING id",
    "identity_providers": "INSERT INTO identity_providers (tenant_id, name, issuer, audience,"
    " jwks_url) SELECT $1, 'IdP', 'https://idp.example/' || encode($3, 'hex'), 'tenantry',"
    " 'https://idp.example/jwks' WHERE $2::uuid IS NOT NULL RETURNING id",
    "user_identities": "INSERT INTO user_identities (tenant_id, user_id, provider_id, subject)"
    " SELECT $1, $2, id, encode($3, 'hex') FROM identity_providers LIMIT 1 RETURNING id",
    # A custom role with one permission, held by the user (besides their system role).
    "roles": "INSERT INTO roles (tenant_id, name) SELECT $1, 'Custom ' || encode($3, 'hex')"
    " WHERE $2::uuid IS NOT NULL RETURNING id",
    "role_permissions": "INSERT INTO role_permissions (tenant_id, role_id, permission)"
    " SELECT $1, id, 'project:read' FROM roles WHERE key IS NULL AND $2::uuid IS NOT NULL"
    " AND $3::bytea IS NOT NULL RETURNING id",
    "user_roles": "INSERT INTO user_roles (tenant_id, user_id, role_id)"
    " SELECT $1, $2, id FROM roles WHERE key IS NULL AND $3::bytea IS NOT NULL RETURNING id",
    "audit_log": "INSERT INTO audit_log (tenant_id, actor_kind, actor_id, action, outcome,"
    " request_id) VALUES ($1, 'user', $2, 'test.seeded', 'success', left(encode($3, 'hex'), 64))"
    " RETURNING id",
    "tenant_features": "INSERT INTO tenant_features (tenant_id, key, enabled)"
    " SELECT $1, 'f' || left(encode($3, 'hex'), 12), true WHERE $2::uuid IS NOT NULL"
    " RETURNING id",
    "idempotency_keys": "INSERT INTO idempotency_keys (tenant_id, user_id, key, request_digest,"
    " response) VALUES ($1, $2, encode($3, 'hex'), $3, '{}') RETURNING id",
}


async def seed_auth_rows(database: Database, tenant_id: UUID, user_id: UUID) -> dict[str, UUID]:
    rows: dict[str, UUID] = {}
    async with database.transaction(tenant_id) as session:
        for table, sql in _AUTH_ROWS.items():
            rows[table] = await session.fetchval(sql, tenant_id, user_id, secrets.token_bytes(32))
    return rows


# Tables seed_graph fills. A new tenant table must be added here (and to seed_graph): the
# isolation tests require rows of two tenants in every tenant table found in the catalog.
SEEDED_TABLES = frozenset({"tenants", "users", "projects", "tasks", "comments", *_AUTH_ROWS})


async def seed_graph(database: Database) -> SeededTenant:
    """A new tenant with a user, a project, a task and a comment, all linked."""
    slug = unique_slug()
    tenant = await seed_tenant(database, slug=slug)
    user = await seed_user(database, tenant)
    project = await seed_project(database, tenant, created_by=user)
    task = await seed_task(database, tenant, project, assignee_id=user)
    comment = await seed_comment(database, tenant, task, author_id=user)
    auth = await seed_auth_rows(database, tenant, user)
    return SeededTenant(tenant, slug, user, project, task, comment, auth)


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


def mint_access_token(tokens: TokenService, *, user_id: UUID, tenant_id: UUID, aal: int = 1) -> str:
    """An access token of a session that exists only in the token: verification accepts it,
    the server refuses it (no such session). For tests of token verification itself."""
    return tokens.issue_access_token(
        user_id=user_id,
        tenant_id=tenant_id,
        session_id=uuid4(),
        aal=aal,
        amr=("pwd", "otp") if aal == 2 else ("pwd",),
        auth_time=int(time.time()),
    ).token


# The user agent of the sessions `open_session` opens (so tests can tell them apart).
TEST_SESSION_AGENT = "tests"


def session_of(token: str) -> UUID:
    """The session an access token belongs to: its `sid` claim (read, not verified)."""
    payload = jws.extract_compact(token.encode()).payload
    return UUID(json.loads(payload)["sid"])


async def open_session(
    session: Session, tokens: TokenService, *, user_id: UUID, aal: int = 1, age_seconds: int = 0
) -> str:
    """An access token of a new session of the user in `session`'s tenant, as a sign-in opens
    it (a row in auth_sessions), without paying for Argon2; authenticated `age_seconds` ago."""
    assert session.tenant_id is not None
    amr = ("pwd", "otp") if aal == 2 else ("pwd",)
    opened = await auth_queries.insert_session(
        session,
        user_id=user_id,
        aal=aal,
        amr=amr,
        user_agent=TEST_SESSION_AGENT,
        ip=None,
        expires_at=datetime.now(UTC) + timedelta(days=1),
    )
    return tokens.issue_access_token(
        user_id=user_id,
        tenant_id=session.tenant_id,
        session_id=opened.id,
        aal=aal,
        amr=amr,
        auth_time=int(time.time()) - age_seconds,
    ).token


# Every row of a table in one digest: a change anywhere changes it.
_DIGEST = "md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), ''))"

# The platform tables, as sql/policies/30-rls.sql finds them: no tenant_id, neither the
# tenant registry nor yoyo's bookkeeping.
PLATFORM_TABLES_SQL = """
SELECT format('%I.%I', n.nspname, c.relname) AS name
FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname = 'public'
  AND c.relname <> 'tenants' AND c.relname NOT LIKE '%yoyo%'
  AND NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid
                  AND a.attname = 'tenant_id' AND NOT a.attisdropped)
ORDER BY name
"""


async def fingerprint(database: Database, tenant_id: UUID) -> dict[str, str]:
    """A digest of the tenant's rows in every tenant table (found in the catalog), by table."""
    async with database.transaction(tenant_id, readonly=True) as session:
        tables = sorted(await tenant_tables(session))
        return await _digests(session, tables)


async def platform_fingerprint(database: Database) -> dict[str, str]:
    """A digest of every platform table's rows, read in the platform scope."""
    async with database.transaction(None, readonly=True, platform=True) as session:
        tables = [row["name"] for row in await session.fetch(PLATFORM_TABLES_SQL)]
        assert tables, "no platform tables found"
        return await _digests(session, tables)


async def _digests(session: Session, tables: list[str]) -> dict[str, str]:
    # Table names come from the catalog, quoted by format('%I.%I').
    digests = ", ".join(f"(SELECT {_DIGEST} FROM {name} t)" for name in tables)  # noqa: S608
    row = await session.fetchrow(f"SELECT {digests}")
    assert row is not None
    return dict(zip(tables, row, strict=True))
