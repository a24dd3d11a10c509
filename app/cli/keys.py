"""`tenantry keys rotate | retire | list`: the token signing keys (TENANTRY_SIGNING_KEYS_FILE)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.settings import Settings

if TYPE_CHECKING:
    from app.cli.common import Commands


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


def register(commands: Commands) -> None:
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
