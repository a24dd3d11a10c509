"""`tenantry tenant export | import | purge-expired`: a tenant's data out and back in, and the
retention job that purges deleted tenants (docs/platform.md)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from app.cli.common import admin_call, operator_meta
from app.core.settings import Settings

if TYPE_CHECKING:
    from app.cli.common import Commands
    from app.core.db import Database
    from app.platform import portability
    from app.platform.tenant_import import Imported


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

    meta = operator_meta()
    destination = "-" if args.output is None else str(args.output)

    def export(out: IO[bytes]) -> portability.Exported:
        return admin_call(
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
    from app.core.store import Store
    from app.platform import tenant_import
    from app.tenants.resolution import forget_slug

    meta = operator_meta()

    async def restore_into(database: Database, lines: IO[bytes]) -> Imported:
        imported = await tenant_import.import_tenant(
            database, settings, meta, lines=lines, source=args.file, slug=args.slug, name=args.name
        )
        if settings.redis_url is not None:
            # The servers' store: requests naming the new slug (subdomain, X-Tenant) find it
            # at once, not when they stop remembering it as unknown.
            store = Store.from_settings(settings)
            try:
                await forget_slug(store, imported.tenant.slug)
            finally:
                await store.close()
        return imported

    def restore(lines: IO[bytes]) -> Imported:
        return admin_call(settings, lambda db: restore_into(db, lines))

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


def _tenant_purge_expired(settings: Settings, args: argparse.Namespace) -> int:
    from app.core.store import Store
    from app.platform import retention

    meta = operator_meta()

    async def run(database: Database) -> int:
        expired = await retention.expired_tenants(
            database, retention_days=settings.tenant_retention_days, limit=args.limit
        )
        if args.dry_run:
            for tenant in expired:
                deleted = (
                    "purge begun, not finished"
                    if tenant.deleted_at is None
                    else f"deleted {tenant.deleted_at.isoformat(timespec='seconds')}"
                )
                print(f"would purge {tenant.slug} ({tenant.id}), {deleted}")
            return 0
        # The servers' store (Redis): the purge drops what they cache of the tenant.
        store = Store.from_settings(settings)
        failed = 0
        try:
            for tenant in expired:
                try:
                    purged = await retention.purge_expired(database, store, meta, tenant)
                except Exception as exc:
                    # One tenant must not keep the others from being purged; a purge that
                    # stopped half-way is finished by the next run.
                    failed += 1
                    print(
                        f"error: purging {tenant.slug} ({tenant.id}) failed: {_failure(exc)}",
                        file=sys.stderr,
                    )
                    continue
                print(f"purged {tenant.slug} ({tenant.id}): {purged.total} rows deleted")
        finally:
            await store.close()
        if failed:
            print(
                f"error: {failed} of {len(expired)} expired tenant(s) failed; the next run"
                " tries them again",
                file=sys.stderr,
            )
            return 1
        return 0

    return admin_call(settings, run)


def _failure(exc: Exception) -> str:
    """One line on why, said as `main` says it."""
    import asyncpg

    from app.core.errors import DomainError

    if isinstance(exc, DomainError):
        return exc.message
    if isinstance(exc, asyncpg.PostgresError):
        # Its class only, never the SQL.
        return f"the database refused the operation ({exc.sqlstate})"
    return f"{type(exc).__name__}: {exc}"


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def register(commands: Commands) -> None:
    tenant = commands.add_parser(
        "tenant", help="export and import a tenant's data, purge expired ones (docs/platform.md)"
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
    expiring = tenant.add_parser(
        "purge-expired",
        help="purge every deleted tenant whose retention period is over (for cron; never asks)",
    )
    expiring.add_argument(
        "--dry-run", action="store_true", help="list what would be purged; change nothing"
    )
    expiring.add_argument(
        "--limit",
        type=_positive,
        metavar="N",
        help="purge at most N tenants, longest deleted first (default: all)",
    )
    expiring.set_defaults(run=_tenant_purge_expired)
