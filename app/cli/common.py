"""What the command groups share: the database a command uses and how operators act on it."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

import asyncpg
import psycopg

from app.core import migrate as migrations
from app.core.request_meta import RequestMeta
from app.core.settings import Settings

if TYPE_CHECKING:
    import argparse

    from app.core.db import Database

    # Where a command group adds its commands (`tenantry <group> …`); generic only to mypy.
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]

T = TypeVar("T")

# asyncpg's errors that mean "these credentials or this database are wrong", not a failed
# statement: invalid authorization (28000, 28P01 wrong password) and no such database.
_REFUSED_LOGINS = (
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
)


class CannotConnect(Exception):
    """The database a setting names cannot be reached, or refuses its credentials."""


def one_line(text: str) -> str:
    """Drivers' multi-line messages (libpq adds hints on their own lines) as one line."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


@contextlib.contextmanager
def connecting(setting: str) -> Iterator[None]:
    """Failures to connect, by either driver, become one CannotConnect naming `setting`."""
    try:
        yield
    except _REFUSED_LOGINS as exc:
        raise CannotConnect(f"the database refused {setting}: {one_line(str(exc))}") from None
    except psycopg.OperationalError as exc:
        raise CannotConnect(
            f"cannot reach the database ({setting}): {one_line(str(exc))}"
        ) from None
    except (OSError, TimeoutError) as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        if exc.errno and not isinstance(exc.errno, str) and exc.errno > 0:
            reason = f"{reason} ({os.strerror(exc.errno)})"
        raise CannotConnect(f"cannot reach the database ({setting}): {reason}") from None


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

    setting = "the embedded database" if settings.embedded else "DATABASE_URL"
    settings = with_database(settings)
    assert settings.database_url is not None
    url = settings.database_url

    async def run() -> T:
        with connecting(setting):
            database = await Database.connect(
                url,
                min_size=1,
                max_size=2,
                statement_timeout_ms=30_000,
                transaction_pooler=settings.database_pooler == "transaction",
            )
        try:
            return await call(database)
        finally:
            await database.close()

    return asyncio.run(run())
