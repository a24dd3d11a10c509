"""The benchmark dataset: generated from one fixed seed, inserted set-based as the server role.

Every value (ids, names, statuses, timestamps, comment counts) comes from
`random.Random(seed)`, so two runs with the same seed read and write the same rows in the
same order. Rows go in with one `INSERT … SELECT FROM unnest(…)` per table and tenant,
inside `Database.transaction(tenant)`: row-level security checks every row, as in production.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid5

from app.core.db import Database
from app.core.passwords import hash_password
from app.tenants.service import create_tenant

SEED = 20260105
TENANTS = 20
USERS_PER_TENANT = 5
PROJECTS_PER_TENANT = 50
TASKS_PER_PROJECT = 20
MAX_COMMENTS_PER_TASK = 3
PASSWORD = "bench-password-not-a-secret"  # noqa: S105 (a throwaway database's known password)

_BASE_TIME = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
_FIRST_NAMES = ("Ada", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Frances")
_LAST_NAMES = ("Lovelace", "Hopper", "Torvalds", "Liskov", "Thompson", "Hamilton", "Ritchie")
_ADJECTIVES = ("Apollo", "Blue", "Copper", "Delta", "Ember", "Falcon", "Granite", "Harbor")
_NOUNS = ("relaunch", "migration", "onboarding", "billing", "search", "mobile app", "audit")
_VERBS = ("Design", "Build", "Review", "Test", "Document", "Ship", "Plan", "Fix", "Measure")
_THINGS = ("login page", "billing flow", "search index", "settings", "API docs", "emails")
_WORDS = (
    *("the", "customer", "asked", "for", "this", "before", "next", "release", "so", "please"),
    *("check", "edge", "cases", "and", "write", "down", "what", "you", "find", "in"),
    *("ticket", "together", "with", "numbers", "from", "staging", "again"),
)
_STATUSES = ("todo", "in_progress", "blocked", "done", "cancelled")
_STATUS_WEIGHTS = (30, 20, 10, 35, 5)
_PRIORITIES = ("low", "medium", "high", "urgent")
_PRIORITY_WEIGHTS = (25, 40, 25, 10)


@dataclass(frozen=True)
class TenantData:
    """One seeded tenant: what the benchmarks need to address its rows."""

    id: UUID
    slug: str
    user_ids: tuple[UUID, ...]
    emails: tuple[str, ...]
    project_ids: tuple[UUID, ...]
    task_ids: tuple[UUID, ...]
    comment_count: int

    @property
    def session_id(self) -> UUID:
        """The first user's session, which the bench's access tokens belong to (the server
        refuses tokens of sessions it does not know). Derived, so the seeded rows stay the
        seed's."""
        return uuid5(self.id, "bench-session")


# Column arrays, one list per column, in the order of the INSERT's unnest() arguments.
Columns = tuple[list[Any], ...]


@dataclass(frozen=True)
class _Rows:
    """The rows of one tenant, as column arrays for the unnest() inserts."""

    tenant: TenantData
    name: str
    users: Columns
    projects: Columns
    tasks: Columns
    comments: Columns


def _uuid(rng: random.Random) -> UUID:
    return UUID(int=rng.getrandbits(128), version=4)


def _append(columns: Columns, *values: object) -> None:
    for column, value in zip(columns, values, strict=True):
        column.append(value)


def _sentence(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(low, high))).capitalize()


def _tenant_rows(rng: random.Random, index: int) -> _Rows:
    tenant_id = _uuid(rng)
    slug = f"bench-{index:02d}"
    user_ids = [_uuid(rng) for _ in range(USERS_PER_TENANT)]
    emails = [f"user{u}@{slug}.example" for u in range(USERS_PER_TENANT)]
    names = [f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}" for _ in user_ids]
    user_times = [_BASE_TIME + timedelta(minutes=u) for u in range(USERS_PER_TENANT)]

    projects: Columns = ([], [], [], [], [])
    tasks: Columns = tuple([] for _ in range(11))
    comments: Columns = ([], [], [], [], [])
    for p in range(PROJECTS_PER_TENANT):
        project_id = _uuid(rng)
        project_time = _BASE_TIME + timedelta(hours=1 + p)
        _append(
            projects,
            project_id,
            f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} {p + 1}",
            _sentence(rng, 0, 30),
            rng.choice(user_ids),
            project_time,
        )
        for t in range(TASKS_PER_PROJECT):
            task_id = _uuid(rng)
            task_time = project_time + timedelta(minutes=t)
            due = _BASE_TIME.date() + timedelta(days=rng.randint(0, 120))
            _append(
                tasks,
                task_id,
                project_id,
                f"{rng.choice(_VERBS)} the {rng.choice(_THINGS)}",
                _sentence(rng, 0, 40),
                rng.choices(_STATUSES, _STATUS_WEIGHTS)[0],
                rng.choices(_PRIORITIES, _PRIORITY_WEIGHTS)[0],
                rng.choice([*user_ids, None]),
                due if rng.random() < 0.6 else None,
                1024.0 * (t + 1),
                rng.choice(user_ids),
                task_time,
            )
            for c in range(rng.randint(0, MAX_COMMENTS_PER_TASK)):
                _append(
                    comments,
                    _uuid(rng),
                    task_id,
                    rng.choice(user_ids),
                    _sentence(rng, 3, 25),
                    task_time + timedelta(hours=1 + c),
                )
    tenant = TenantData(
        id=tenant_id,
        slug=slug,
        user_ids=tuple(user_ids),
        emails=tuple(emails),
        project_ids=tuple(projects[0]),
        task_ids=tuple(tasks[0]),
        comment_count=len(comments[0]),
    )
    return _Rows(
        tenant=tenant,
        name=f"Bench tenant {index:02d}",
        users=(user_ids, emails, names, user_times),
        projects=projects,
        tasks=tasks,
        comments=comments,
    )


_INSERT_USERS = """
INSERT INTO users (tenant_id, id, email, display_name, password_hash, created_at, updated_at)
SELECT app.current_tenant_id(), u.id, u.email, u.name, $5, u.at, u.at
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[]) AS u(id, email, name, at)
"""
# The first user (the measured principal) owns the tenant; the others are members, so the
# permission checks the bench measures are the ones real tenants run.
_INSERT_USER_ROLES = """
INSERT INTO user_roles (tenant_id, user_id, role_id)
SELECT app.current_tenant_id(), u.id, r.id
FROM unnest($1::uuid[]) WITH ORDINALITY AS u(id, n)
JOIN roles AS r ON r.key = CASE WHEN u.n = 1 THEN 'owner' ELSE 'member' END
"""
# The measured principal's session, open for the whole run, as a sign-in would have left it.
_INSERT_SESSION = """
INSERT INTO auth_sessions (tenant_id, id, user_id, aal, amr, expires_at)
VALUES (app.current_tenant_id(), $1, $2, 1, '{pwd}', statement_timestamp() + interval '1 day')
"""
_INSERT_PROJECTS = """
INSERT INTO projects (tenant_id, id, name, description, created_by, created_at, updated_at)
SELECT app.current_tenant_id(), p.id, p.name, p.description, p.created_by, p.at, p.at
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::timestamptz[])
    AS p(id, name, description, created_by, at)
"""
_INSERT_TASKS = """
INSERT INTO tasks (tenant_id, id, project_id, title, description, status, priority,
                   assignee_id, due_date, position, created_by, created_at, updated_at)
SELECT app.current_tenant_id(), t.id, t.project_id, t.title, t.description, t.status,
       t.priority, t.assignee_id, t.due_date, t.position, t.created_by, t.at, t.at
FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::uuid[], $8::date[], $9::float8[], $10::uuid[], $11::timestamptz[])
    AS t(id, project_id, title, description, status, priority, assignee_id, due_date,
         position, created_by, at)
"""
_INSERT_COMMENTS = """
INSERT INTO comments (tenant_id, id, task_id, author_id, body, created_at, updated_at)
SELECT app.current_tenant_id(), c.id, c.task_id, c.author_id, c.body, c.at, c.at
FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::timestamptz[])
    AS c(id, task_id, author_id, body, at)
"""


def generate(seed: int = SEED) -> list[_Rows]:
    """Every tenant's rows; tenant 0 is the measured one, tenant 1 the noisy neighbour's victim."""
    rng = random.Random(seed)
    return [_tenant_rows(rng, i) for i in range(TENANTS)]


async def insert(app_url: str, dataset: list[_Rows]) -> list[TenantData]:
    """Insert the dataset as the server's role, one transaction per tenant."""
    database = await Database.connect(app_url, min_size=1, max_size=1, statement_timeout_ms=60_000)
    try:
        # One Argon2 hash shared by every user: sign-in still pays a full verification.
        password_hash = await hash_password(PASSWORD)
        for rows in dataset:
            tenant = rows.tenant
            # Unlimited: a plan's requests per minute would turn load into 429s.
            await create_tenant(
                database, slug=tenant.slug, name=rows.name, tenant_id=tenant.id, plan="enterprise"
            )
            async with database.transaction(tenant.id) as session:
                await session.execute(_INSERT_USERS, *rows.users, password_hash)
                await session.execute(_INSERT_USER_ROLES, rows.users[0])
                await session.execute(_INSERT_SESSION, tenant.session_id, tenant.user_ids[0])
                await session.execute(_INSERT_PROJECTS, *rows.projects)
                await session.execute(_INSERT_TASKS, *rows.tasks)
                await session.execute(_INSERT_COMMENTS, *rows.comments)
    finally:
        await database.close()
    return [rows.tenant for rows in dataset]


def describe() -> str:
    """One line for reports."""
    return (
        f"{TENANTS} tenants, each with {USERS_PER_TENANT} users, {PROJECTS_PER_TENANT} projects, "
        f"{TASKS_PER_PROJECT} tasks per project ({PROJECTS_PER_TENANT * TASKS_PER_PROJECT} tasks), "
        f"0-{MAX_COMMENTS_PER_TASK} comments per task"
    )
