"""Schema migrations (yoyo) and the idempotent policy SQL re-applied on every migrate.

Runs as the owner role over psycopg; the request path never imports this module.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from yoyo import get_backend, read_migrations

from app.core.dbadmin import APP_ROLE

# `app/sql` links to the repository's `sql/` and is packaged with the code: an installed
# server (a wheel, the container image) migrates from the files it was built with.
SQL_DIR = Path(__file__).resolve().parents[1] / "sql"
MIGRATIONS_DIR = SQL_DIR / "migrations"
POLICIES_DIR = SQL_DIR / "policies"


@dataclass(frozen=True)
class MigrationStatus:
    applied: list[str]
    pending: list[str]


def known_versions() -> list[str]:
    """The migrations this code knows, oldest first; the last is the schema it needs."""
    return sorted(
        p.name.removesuffix(".sql")
        for p in MIGRATIONS_DIR.glob("*.sql")
        if not p.name.endswith(".rollback.sql")
    )


def _yoyo_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgres", "postgresql", "postgresql+psycopg"):
        raise ValueError("the migration database URL must start with postgresql://")
    return "postgresql+psycopg://" + rest


def _psycopg_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@contextmanager
def _backend(owner_url: str) -> Iterator[Any]:
    """A yoyo backend whose connection is closed afterwards (yoyo itself never closes it)."""
    backend = get_backend(_yoyo_url(owner_url))
    try:
        yield backend
    finally:
        backend.connection.close()


def status(owner_url: str) -> MigrationStatus:
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with _backend(owner_url) as backend:
        pending = {m.id for m in backend.to_apply(migrations)}
    return MigrationStatus(
        applied=[m.id for m in migrations if m.id not in pending],
        pending=[m.id for m in migrations if m.id in pending],
    )


class WrongRole(ValueError):
    """Migrations were pointed at the server's role instead of the owner role."""


def _require_owner(owner_url: str) -> None:
    # yoyo would read "permission denied" on its lock table as a lock held elsewhere and
    # retry for 10 s before failing with a confusing error.
    with psycopg.connect(_psycopg_url(owner_url)) as conn:
        row = conn.execute("SELECT current_user").fetchone()
    if row is not None and row[0] == APP_ROLE:
        raise WrongRole(
            f"migrations must run as the owner role (MIGRATION_DATABASE_URL), not as {APP_ROLE}"
        )


def migrate(owner_url: str) -> list[str]:
    """Apply pending migrations, then (always) the policies. Returns the applied ids."""
    _yoyo_url(owner_url)  # reject a non-PostgreSQL URL before connecting
    _require_owner(owner_url)
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with _backend(owner_url) as backend, backend.lock():
        to_apply = backend.to_apply(migrations)
        backend.apply_migrations(to_apply)
    apply_policies(owner_url)
    return [m.id for m in to_apply]


def rollback_last(owner_url: str) -> str | None:
    """Roll back the most recently applied migration; returns its id (None if none)."""
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with _backend(owner_url) as backend, backend.lock():
        to_rollback = backend.to_rollback(migrations)
        if not to_rollback:
            return None
        last = to_rollback[:1]
        backend.rollback_migrations(last)
    # Policies are dropped with their tables; the next migrate re-applies them.
    return str(last[0].id)


def apply_policies(owner_url: str) -> None:
    """Roles checks, grants, helper functions and RLS policies, in one transaction."""
    files = sorted(POLICIES_DIR.glob("*.sql"))
    with psycopg.connect(_psycopg_url(owner_url)) as conn, conn.transaction():
        for path in files:
            # Policy files are trusted repository SQL, not user input.
            conn.execute(path.read_text(encoding="utf-8").encode())
