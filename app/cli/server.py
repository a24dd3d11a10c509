"""`tenantry serve | migrate | export-schema | db bootstrap`: running and setting up a server."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli.common import admin_call, connecting, with_database
from app.core import migrate as migrations
from app.core.settings import Settings, SettingsError

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


def _listen(host: str, port: int) -> socket.socket:
    """The server's socket, bound before anything is started or printed, so an address in
    use is one line at once (uvicorn would print its banner, then a traceback-like error)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # As uvicorn does: a restart need not wait for the old connections' TIME_WAIT.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise SettingsError(
                f"port {port} on {host} is already in use: stop what listens there, or choose"
                " another port with --port (or TENANTRY_PORT)"
            ) from None
        raise SettingsError(
            f"cannot listen on {host} port {port}: {exc.strerror}; choose another address"
            " with --host and --port (or TENANTRY_HOST and TENANTRY_PORT)"
        ) from None
    return sock


def _refuse(problems: list[str]) -> bool:
    """Print each problem as one line; whether there were any."""
    for problem in problems:
        print(f"configuration error: {problem}", file=sys.stderr)
    return bool(problems)


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import time

    import uvicorn

    from app.core import logs
    from app.main import create_app, freeze_heap

    # JSON lines or readable text, with every request's ids (docs/observability.md).
    logs.configure(settings.observability)
    started = time.perf_counter()
    refused = settings.development_defaults()
    if settings.environment == "production" and args.demo:
        refused.append("--demo seeds a tenant whose password is published: never in production")
    if args.workers > 1 and settings.redis_url is None:
        # Each process would count rate limits and keep revocations of its own.
        refused.append(
            f"--workers {args.workers} needs REDIS_URL: the processes share limits,"
            " revocations and caches through Redis"
        )
    if _refuse(refused):
        return 2
    host, port = args.host or settings.host, args.port or settings.port
    with contextlib.closing(_listen(host, port)) as listener:
        embedded = settings.embedded
        settings = with_database(settings)
        owner_url = settings.migration_database_url
        # Only the owner role reads the migration bookkeeping. A server given no owner URL
        # (the least privilege: its process never holds the owner's password) relies on the
        # deployment running `tenantry migrate` first, as compose.yaml's migrate service does.
        if owner_url is not None and owner_url != settings.database_url:
            with connecting("MIGRATION_DATABASE_URL"):
                pending = migrations.status(owner_url).pending
            if pending:
                print(
                    f"pending migrations {pending}: run `tenantry migrate` first", file=sys.stderr
                )
                return 1
        else:
            print("MIGRATION_DATABASE_URL is not set: not checking for pending migrations")
        base = f"http://{host}:{port}"
        if args.demo:
            from app.demo import DEMO_USERS, seed_demo

            login = admin_call(settings, seed_demo)
            print(
                f"\nDemo tenant {login.tenant!r} ready. Its users, all with the password"
                f" {login.password}:"
            )
            for email, _name, role in DEMO_USERS:
                print(f"  {email:<22} {role}")
            print(f"\nSign in as {login.email} in GraphiQL ({base}/graphql):\n")
            print(_SIGN_IN_EXAMPLE.format(**vars(login)))
            print('\nthen set the header {"Authorization": "Bearer <accessToken>"}.\n')
        else:
            from app.demo import demo_present

            # The server's role signs in now, not in the first request (a wrong password in
            # DATABASE_URL is one line here, a traceback from the server's start-up there).
            if admin_call(settings, demo_present) and settings.environment == "production":
                _refuse(
                    [
                        "the database holds the demo tenant, whose password is published:"
                        " delete and purge it (deleteTenant, purgeTenant) before serving production"
                    ]
                )
                return 2
        # Built here in every case: a configuration error is one line now, not a worker that
        # fails at start-up again and again under the supervisor.
        app = create_app(settings)
        where = "embedded PostgreSQL in " + str(settings.data_dir) if embedded else "DATABASE_URL"
        print(
            f"Tenantry on {base} (database: {where}; ready in {time.perf_counter() - started:.1f}s)"
        )
        if settings.graphiql:
            print(f"GraphiQL: {base}/graphql")
        config: dict[str, Any] = dict(
            host=host,
            port=port,
            log_level=settings.observability.log_level.lower(),
            # uvicorn's lines go through our handler (logs.configure), and our access line
            # (app/api/observability.py) replaces its own.
            log_config=None,
            access_log=False,
            # Client addresses (audit, sessions, per-IP throttling) come from
            # X-Forwarded-For only when it is set by a proxy we were told to trust.
            proxy_headers=settings.forwarded_allow_ips is not None,
            forwarded_allow_ips=settings.forwarded_allow_ips,
        )
        if args.workers > 1:
            del app  # each worker builds its own
            return _serve_workers(settings, args.workers, listener, config)
        # uvicorn re-raises SIGTERM after its graceful shutdown. As SystemExit (not the default
        # kill) it lets atexit stop the embedded PostgreSQL instead of leaving it running.
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
        freeze_heap()
        server = uvicorn.Server(uvicorn.Config(app, **config))
        server.run(sockets=[listener])
    return 0 if server.started else 1


def _serve_workers(
    settings: Settings, workers: int, listener: socket.socket, config: dict[str, Any]
) -> int:
    """`workers` server processes sharing the listening socket, under uvicorn's supervisor
    (it restarts a worker that dies). Each builds its own application from the environment
    (`app.main:from_environment`), which this process completes first: the database it
    resolved (the embedded one, started here) and a metrics directory they all write to."""
    import tempfile

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    assert settings.database_url is not None
    os.environ["DATABASE_URL"] = settings.database_url
    if settings.migration_database_url is not None:
        os.environ["MIGRATION_DATABASE_URL"] = settings.migration_database_url
    with contextlib.ExitStack() as stack:
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Without it each worker's /metrics would count only its own requests.
            metrics_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="tenantry-"))
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        print(f"{workers} worker processes")
        Multiprocess(
            uvicorn.Config("app.main:from_environment", factory=True, workers=workers, **config),
            sockets=[listener],
        ).run()
    return 0


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    if settings.embedded:
        from app.core import embedded

        url = embedded.start(settings.data_dir).urls.owner
    else:
        assert settings.migration_database_url is not None
        url = settings.migration_database_url
    with connecting("MIGRATION_DATABASE_URL"):
        return _migrate_at(url, args)


def _migrate_at(url: str, args: argparse.Namespace) -> int:
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
    import secrets

    from app.core.dbadmin import APP_ROLE, OWNER_ROLE, bootstrap
    from app.core.settings import check_database_url, role_passwords

    check_database_url("--admin-url", args.admin_url)
    given = role_passwords()
    # URL-safe, so the printed URLs need no escaping wherever they are pasted.
    owner = given.owner or secrets.token_urlsafe(24)
    app = given.app or secrets.token_urlsafe(24)
    with connecting("--admin-url"):
        urls = bootstrap(args.admin_url, args.database, owner_password=owner, app_password=app)
    # Standard output is only the two settings (`… > tenantry.env`); the rest goes to stderr.
    print(f"DATABASE_URL={urls.app}\nMIGRATION_DATABASE_URL={urls.owner}")
    for role, chosen, variable in (
        (OWNER_ROLE, given.owner, "TENANTRY_OWNER_PASSWORD"),
        (APP_ROLE, given.app, "TENANTRY_APP_PASSWORD"),
    ):
        origin = f"from {variable}" if chosen else f"generated (set {variable} to choose it)"
        print(f"password of {role} set now, {origin}", file=sys.stderr)
    print(
        "keep both URLs in your secret store; running again sets the passwords again",
        file=sys.stderr,
    )
    return 0


def _port(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"must be 1-65535, got {number}")
    return number


def _workers(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def register(commands: Commands) -> None:
    serve = commands.add_parser("serve", help="run the API server")
    serve.add_argument("--demo", action="store_true", help="seed and print a demo tenant")
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, help="listen port (default 8000)")
    serve.add_argument(
        "--workers",
        type=_workers,
        default=1,
        help="server processes sharing the port (default 1; about one per core; needs REDIS_URL)",
    )
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
    boot.add_argument(
        "--admin-url",
        required=True,
        help="an administrator's URL; its password may also come from PGPASSWORD or ~/.pgpass",
    )
    boot.add_argument("--database", default="tenantry")
    boot.set_defaults(run=_bootstrap)
