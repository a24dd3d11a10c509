"""Data portability: `tenantry tenant export` and `tenantry tenant import` (docs/platform.md,
"Export and import").

An export is every row of one tenant, read in one REPEATABLE READ, READ ONLY transaction bound
to it (one snapshot), written as JSON Lines, row by row: a header (format, version, schema,
the tenant, the tables and their columns), one line per row, and a trailer with the rows per
table. The import (app/platform/tenant_import.py) reads it line by line into a new tenant in
ONE transaction: a refused file creates nothing. Rows keep their ids; only `tenant_id`
changes. Both run as the server's role, under row-level security, and are audited.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any
from uuid import UUID, uuid4

from app.audit.models import ActorKind
from app.audit.service import record
from app.core.db import Database, Session
from app.core.errors import NotFound
from app.core.request_meta import RequestMeta
from app.platform import portability_queries as pq
from app.platform import queries
from app.tenants.service import lookup_slug

FORMAT = "tenantry-export"
VERSION = 1

# Tenant tables whose rows are not exported, and why. Every other table with a tenant_id
# (found in the catalog, so a table a later migration adds) is exported.
EXCLUDED_TABLES = {
    "public.auth_sessions": "sessions end with a move: users sign in again",
    "public.refresh_tokens": "they belong to the sessions, which are not moved",
    "public.account_tokens": "single-use invitation, reset and verification links of the old"
    " tenant",
    "public.outbox": "the development mailer's copies of sent mail, links included",
    "public.mfa_recovery_codes": "their digests are salted with the tenant id, so they would"
    " never match in the new tenant: users generate new ones",
    "public.idempotency_keys": "a day of retry protection for requests to the old tenant,"
    " whose ids a retry would name",
}


def schema_versions() -> list[str]:
    """The migrations this code knows, oldest first; the last is the schema it runs on
    (`tenantry serve` refuses to start with migrations pending)."""
    from app.core.migrate import known_versions

    return known_versions()


@dataclass(frozen=True)
class Exported:
    export_id: UUID
    tenant_id: UUID
    slug: str
    rows: dict[str, int]


async def export_tenant(
    database: Database, meta: RequestMeta, *, slug: str, out: IO[bytes], destination: str
) -> Exported:
    """Write every row of the tenant `slug` to `out` (any status: a deleted tenant can be
    exported until it is purged). Audited before the first row is written."""
    ref = await lookup_slug(database, slug)
    if ref is None:
        raise NotFound(f"No tenant with the slug {slug.strip().lower()!r}", field="slug")
    export_id = uuid4()
    async with database.transaction(ref.id, platform=True) as session:
        for platform in (False, True):
            await record(
                session,
                meta,
                action="tenant.exported",
                actor_id=None,
                actor_kind=ActorKind.SYSTEM,
                target_type="tenant",
                target_id=ref.id,
                metadata={
                    "export_id": str(export_id),
                    "slug": slug.strip().lower(),
                    "destination": destination,
                },
                platform=platform,
            )
    rows: dict[str, int] = {}
    async with database.transaction(ref.id, readonly=True, isolation="repeatable_read") as session:
        tenant = await pq.tenant_json(session)
        if tenant is None:
            raise NotFound(f"No tenant with the slug {slug.strip().lower()!r}", field="slug")
        tables = await exported_tables(session, "SELECT")
        header = {
            "format": FORMAT,
            "version": VERSION,
            "export_id": str(export_id),
            "exported_at": datetime.now(UTC).isoformat(),
            "schema": schema_versions()[-1],
            "tenant": json.loads(tenant),
            "tables": [{"name": t.name, "columns": list(t.columns)} for t in tables],
        }
        out.write(_line(header))
        for table in tables:
            prefix = b'{"table": ' + json.dumps(table.name).encode() + b', "row": '
            rows[table.name] = 0
            async for row in pq.stream_rows(session, table):
                out.write(prefix + row.encode() + b"}\n")
                rows[table.name] += 1
        out.write(_line({"end": FORMAT, "export_id": str(export_id), "rows": rows}))
    return Exported(export_id, ref.id, slug.strip().lower(), rows)


async def exported_tables(session: Session, privilege: str) -> list[pq.TableShape]:
    """The exported tables, parents first (the order rows can be inserted in)."""
    names = reversed(await queries.tenant_tables(session, privilege=privilege))
    return await pq.shapes(session, [n for n in names if n not in EXCLUDED_TABLES])


def _line(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode() + b"\n"
