"""`tenantry serve | migrate | export-schema | db bootstrap`: running and setting up a server."""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from app.cli.common import with_database
from app.core import migrate as migrations
from app.core.settings import Settings

if TYPE_CHECKING:
    from app.cli.common import Commands

SCHEMA_FILE = Path("schema.graphql")

_SIGN_IN_EXAMPLE = """\
mutation {{
  signIn(input: {{tenant: "{tenant}", email: "{email}", password: "{password}"}}) {{
    accessToken
    errors {{ code message }}
  }}
}}"""


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import time

    import uvicorn

    from app.core import logs
    from app.core.db import Database
    from app.main import create_app

    # JSON lines or readable text, with every request's ids (docs/observability.md).
    logs.configure(settings.observability)
    started = time.perf_counter()
    embedded = settings.embedded
    settings = with_database(settings)
    assert settings.migration_database_url is not None
    pending = migrations.status(settings.migration_database_url).pending
    if pending:
        print(f"pending migrations {pending}: run `tenantry migrate` first", file=sys.stderr)
        return 1
    base = f"http://{args.host or settings.host}:{args.port or settings.port}"
    if args.demo:
        from app.demo import DemoLogin, seed_demo

        async def seed() -> DemoLogin:
            assert settings.database_url is not None
            database = await Database.connect(
                settings.database_url, min_size=1, max_size=2, statement_timeout_ms=30_000
            )
            try:
                return await seed_demo(database)
            finally:
                await database.close()

        login = asyncio.run(seed())
        print(f"\nDemo tenant ready. Sign in as {login.email} in GraphiQL ({base}/graphql):\n")
        print(_SIGN_IN_EXAMPLE.format(**vars(login)))
        print('\nthen set the header {"Authorization": "Bearer <accessToken>"}.\n')
    app = create_app(settings)
    where = "embedded PostgreSQL in " + str(settings.data_dir) if embedded else "DATABASE_URL"
    print(f"Tenantry on {base} (database: {where}; ready in {time.perf_counter() - started:.1f}s)")
    if settings.graphiql:
        print(f"GraphiQL: {base}/graphql")
    # uvicorn re-raises SIGTERM after its graceful shutdown. As SystemExit (not the default
    # kill) it lets atexit stop the embedded PostgreSQL instead of leaving it running.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    # Everything alive now (modules, the schema) lives as long as the process: taken out of
    # the cyclic collector's view, full collections stop rescanning it on every request
    # burst (docs/benchmarks.md: about a quarter of a large nested query's time).
    gc.collect()
    gc.freeze()
    trusted = settings.forwarded_allow_ips
    uvicorn.run(
        app,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level=settings.observability.log_level.lower(),
        # uvicorn's lines go through our handler (logs.configure), and our access line
        # (app/api/observability.py) replaces its own.
        log_config=None,
        access_log=False,
        # Client addresses (audit, sessions, per-IP throttling) come from X-Forwarded-For
        # only when it is set by a proxy we were told to trust.
        proxy_headers=trusted is not None,
        forwarded_allow_ips=trusted,
    )
    return 0


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    if settings.embedded:
        from app.core import embedded

        url = embedded.start(settings.data_dir).urls.owner
    else:
        assert settings.migration_database_url is not None
        url = settings.migration_database_url
    if args.status:
        state = migrations.status(url)
        for name in state.applied:
            print(f"applied  {name}")
        for name in state.pending:
            print(f"pending  {name}")
        return 0
    if args.rollback:
        rolled_back = migrations.rollback_last(url)
        print(f"rolled back {rolled_back}" if rolled_back else "nothing to roll back")
        return 0
    applied = migrations.migrate(url)
    print(f"applied {', '.join(applied)}" if applied else "no pending migrations")
    print("policies re-applied")
    return 0


def _export_schema(settings: Settings, args: argparse.Namespace) -> int:
    from app.schema import sdl

    text = sdl()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run `tenantry export-schema`", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


def _bootstrap(settings: Settings, args: argparse.Namespace) -> int:
    from app.core.dbadmin import bootstrap

    urls = bootstrap(args.admin_url, args.database)
    print(f"DATABASE_URL={urls.app}\nMIGRATION_DATABASE_URL={urls.owner}")
    return 0


def register(commands: Commands) -> None:
    serve = commands.add_parser("serve", help="run the API server")
    serve.add_argument("--demo", action="store_true", help="seed and print a demo tenant")
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default 8000)")
    serve.set_defaults(run=_serve)

    migrate = commands.add_parser("migrate", help="apply migrations and re-apply policies")
    which = migrate.add_mutually_exclusive_group()
    which.add_argument("--status", action="store_true", help="list applied and pending")
    which.add_argument("--rollback", action="store_true", help="roll back the last migration")
    migrate.set_defaults(run=_migrate)

    export = commands.add_parser("export-schema", help="write the GraphQL SDL")
    export.add_argument("--output", type=Path, default=SCHEMA_FILE)
    export.add_argument("--check", action="store_true", help="fail if the file differs")
    export.set_defaults(run=_export_schema)

    db = commands.add_parser("db", help="database administration").add_subparsers(
        dest="db_command", required=True
    )
    boot = db.add_parser("bootstrap", help="create the roles and database (needs an admin URL)")
    boot.add_argument("--admin-url", required=True)
    boot.add_argument("--database", default="tenantry")
    boot.set_defaults(run=_bootstrap)
