"""What the command groups share: the database a command uses and how operators act on it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from app.core import migrate as migrations
from app.core.request_meta import RequestMeta
from app.core.settings import Settings

if TYPE_CHECKING:
    import argparse

    from app.core.db import Database

    # Where a command group adds its commands (`tenantry <group> …`); generic only to mypy.
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]

T = TypeVar("T")


def with_database(settings: Settings) -> Settings:
    """The configured database, or the embedded one (started and migrated) when none is."""
    if not settings.embedded:
        return settings
    from app.core import embedded

    server = embedded.start(settings.data_dir)
    migrations.migrate(server.urls.owner)
    return settings.with_database(server.urls.app, server.urls.owner)


def operator_meta() -> RequestMeta:
    """Audit entries of operators' commands name the command and the OS account."""
    import getpass

    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return RequestMeta(ip=None, user_agent=f"tenantry-cli ({who})", request_id=None)


def admin_call(settings: Settings, call: Callable[[Database], Awaitable[T]]) -> T:
    """Run `call` against the configured (or embedded) database as the server's role."""
    from app.core.db import Database

    settings = with_database(settings)
    assert settings.database_url is not None
    url = settings.database_url

    async def run() -> T:
        database = await Database.connect(url, min_size=1, max_size=2, statement_timeout_ms=30_000)
        try:
            return await call(database)
        finally:
            await database.close()

    return asyncio.run(run())
