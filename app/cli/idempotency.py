"""`tenantry idempotency purge-expired`: the retention job of idempotency keys, whose
results are kept 24 hours (docs/operations.md#retrying-mutations)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from app.cli.common import admin_call
from app.core.settings import Settings

if TYPE_CHECKING:
    from app.cli.common import Commands
    from app.core.db import Database


def _purge_expired(settings: Settings, args: argparse.Namespace) -> int:
    from app.idempotency.service import purge_expired

    async def run(database: Database) -> int:
        return await purge_expired(database)

    deleted = admin_call(settings, run)
    print(f"deleted {deleted} expired idempotency key(s)")
    return 0


def register(commands: Commands) -> None:
    group = commands.add_parser(
        "idempotency", help="idempotency keys of mutations (docs/operations.md)"
    ).add_subparsers(dest="idempotency_command", required=True)
    expiring = group.add_parser(
        "purge-expired",
        help="delete the keys older than 24 hours, in every tenant (for cron; never asks)",
    )
    expiring.set_defaults(run=_purge_expired)
