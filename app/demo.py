"""Demo data for `tenantry serve --demo`: one tenant with users, projects, tasks, comments.

Seeded through the same service functions the API uses, with a fixed random seed, and
only once: a restart finds the demo tenant and leaves it alone.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from app.comments.service import add_comment
from app.core.db import Database
from app.core.errors import Conflict
from app.projects.service import create_project
from app.rbac import service as rbac
from app.tasks.models import TaskPriority, TaskStatus
from app.tasks.service import NewTask, create_task
from app.tenants.service import create_tenant, lookup_slug
from app.users.service import create_user, look_up

DEMO_SLUG = "demo"
DEMO_PASSWORD = "tenantry-demo-password"
# Email, name, role. The first one (the owner) is the one the printed sign-in example uses.
DEMO_USERS = (
    ("alice@demo.example", "Alice Example", "owner"),
    ("bob@demo.example", "Bob Example", "member"),
    ("carol@demo.example", "Carol Example", "member"),
)
_PROJECTS = ("Website relaunch", "Mobile app", "Customer onboarding")
_VERBS = ("Design", "Build", "Review", "Test", "Document", "Ship", "Plan", "Fix")
_THINGS = ("login page", "billing flow", "search", "settings", "API docs", "emails", "reports")


@dataclass(frozen=True)
class DemoLogin:
    """How to sign in to the demo: its slug, its first user and the password all users share."""

    tenant: str
    email: str
    password: str


async def seed_demo(database: Database, *, seed: int = 42) -> DemoLogin:
    """Create the demo tenant unless it exists; returns how to sign in to it."""
    login = DemoLogin(DEMO_SLUG, DEMO_USERS[0][0], DEMO_PASSWORD)
    if await lookup_slug(database, DEMO_SLUG) is not None:
        return login
    rng = random.Random(seed)
    try:
        # On a plan with room: the free plan's three projects would be full from the start.
        tenant = await create_tenant(database, slug=DEMO_SLUG, name="Demo Inc.", plan="team")
    except Conflict:  # another process seeded it at the same moment
        return login
    async with database.transaction(tenant.id) as session:
        users = [
            await create_user(
                session, email=email, display_name=name, password=DEMO_PASSWORD, role=role
            )
            for email, name, role in DEMO_USERS
        ]
        actors = {u.id: await rbac.resolve(session, u.id) for u in users}
        for name in _PROJECTS:
            owner = rng.choice(users)
            project = await create_project(
                session,
                name=name,
                description=f"Everything for the {name.lower()}.",
                actor=actors[owner.id],
            )
            for _ in range(rng.randint(6, 12)):
                task = await create_task(
                    session,
                    NewTask(
                        project_id=project.id,
                        title=f"{rng.choice(_VERBS)} the {rng.choice(_THINGS)}",
                        status=rng.choice(list(TaskStatus)),
                        priority=rng.choice(list(TaskPriority)),
                        assignee_id=rng.choice([*(u.id for u in users), None]),
                        due_date=date(2026, 12, 1) + timedelta(days=rng.randint(0, 90))
                        if rng.random() < 0.6
                        else None,
                    ),
                    actor=actors[owner.id],
                )
                for _ in range(rng.randint(0, 3)):
                    author = rng.choice(users)
                    await add_comment(
                        session,
                        task.id,
                        rng.choice(("Looks good.", "On it.", "Blocked?")),
                        actor=actors[author.id],
                    )
    return login


async def demo_present(database: Database) -> bool:
    """Whether the demo tenant, whose users' password is published, is in this database.

    Its first user's address is under `.example` (reserved, RFC 2606): no real tenant has it.
    """
    tenant = await lookup_slug(database, DEMO_SLUG)
    if tenant is None:
        return False
    async with database.transaction(tenant.id, readonly=True) as session:
        return (await look_up(session, DEMO_USERS[0][0])).found is not None
