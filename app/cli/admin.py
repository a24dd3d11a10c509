"""`tenantry admin …`: operators create and maintain platform administrators (docs/platform.md)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from app.cli.common import admin_call, operator_meta
from app.core.errors import Invalid
from app.core.settings import Settings

if TYPE_CHECKING:
    from app.cli.common import Commands
    from app.platform.models import NewAdmin, PlatformAdmin


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
    new = admin_call(
        settings,
        lambda db: service.create_admin(
            db,
            settings,
            operator_meta(),
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

    for admin in admin_call(settings, service.list_admins):
        _print_admin(admin)
    return 0


def _admin_status(settings: Settings, args: argparse.Namespace) -> int:
    from app.platform import service
    from app.platform.models import AdminStatus

    status = AdminStatus.DISABLED if args.admin_command == "disable" else AdminStatus.ACTIVE
    admin = admin_call(
        settings,
        lambda db: service.set_status(db, operator_meta(), email=args.email, status=status),
    )
    _print_admin(admin)
    return 0


def _admin_set_permissions(settings: Settings, args: argparse.Namespace) -> int:
    from app.platform import service

    admin = admin_call(
        settings,
        lambda db: service.set_permissions(
            db, operator_meta(), email=args.email, permissions=args.permissions
        ),
    )
    _print_admin(admin)
    return 0


def _admin_reset(settings: Settings, args: argparse.Namespace) -> int:
    from app.platform import service

    new = admin_call(
        settings,
        lambda db: service.reset_credentials(
            db, settings, operator_meta(), email=args.email, password=args.password
        ),
    )
    print(f"new credentials for {new.admin.email}; every session of theirs has ended")
    _print_secrets(new)
    return 0


def register(commands: Commands) -> None:
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
