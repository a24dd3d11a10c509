"""SQL of tenant export and import (app/platform/portability.py).

PostgreSQL encodes and decodes every value: `to_jsonb(row)` on export and
`jsonb_populate_record(NULL::table, json)` on import, so each type (uuid, timestamptz, bytea as
`\\x…` hex, jsonb, arrays, inet, …) comes back as it went out. Table and column names come
from the catalog, never from a file; every value is a `$n` parameter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from uuid import UUID

from app.core.db import Session


@dataclass(frozen=True)
class TableShape:
    """A table as the catalog describes it."""

    # Schema-qualified and quoted where needed, e.g. 'public.users' (format('%I.%I')).
    name: str
    # Every column, in the table's order.
    columns: tuple[str, ...]
    # The primary key's columns (rows are exported in its order).
    key: tuple[str, ...]


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _columns(names: tuple[str, ...] | list[str], alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return ", ".join(prefix + _ident(c) for c in names)


async def shapes(session: Session, names: list[str]) -> list[TableShape]:
    """The shapes of the tables `names` (format('%I.%I') names), in the order given; an
    unknown name is left out."""
    rows = await session.fetch(
        """
        SELECT format('%I.%I', n.nspname, c.relname) AS name,
               array(SELECT a.attname::text FROM pg_attribute a
                     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                     ORDER BY a.attnum) AS columns,
               array(SELECT a.attname::text
                     FROM pg_index i, unnest(i.indkey) WITH ORDINALITY AS k (attnum, ord)
                     JOIN pg_attribute a ON a.attnum = k.attnum
                     WHERE i.indrelid = c.oid AND i.indisprimary AND a.attrelid = c.oid
                     ORDER BY k.ord) AS key
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE format('%I.%I', n.nspname, c.relname) = ANY($1::text[])
        """,
        names,
    )
    found = {r["name"]: TableShape(r["name"], tuple(r["columns"]), tuple(r["key"])) for r in rows}
    return [found[name] for name in names if name in found]


async def tenant_json(session: Session) -> str | None:
    """The bound tenant's row as JSON text."""
    value: str | None = await session.fetchval("SELECT to_jsonb(t)::text FROM tenants t")
    return value


async def stream_rows(session: Session, table: TableShape) -> AsyncIterator[str]:
    """Each row of the bound tenant in `table` as JSON text, in primary key order, fetched
    through a cursor a batch at a time."""
    order = f" ORDER BY {_columns(table.key, 'r')}" if table.key else ""
    async for row in session.stream(f"SELECT to_jsonb(r)::text FROM {table.name} r{order}"):
        yield row[0]


async def insert_tenant(
    session: Session,
    *,
    tenant_id: UUID,
    slug: str,
    name: str,
    header_line: str,
    columns: list[str],
) -> None:
    """The new tenant's registry row: id, slug and name given, status active, every other
    column in `columns` from the header line's `tenant` object, the rest their defaults."""
    copied = f", {_columns(columns)}" if columns else ""
    values = f", {_columns(columns, 'r')}" if columns else ""
    await session.execute(
        f"INSERT INTO tenants (id, slug, name, status{copied})"
        f" SELECT $1, $2, $3, 'active'{values}"
        " FROM jsonb_populate_record(NULL::tenants, ($4::text::jsonb) -> 'tenant') r",
        tenant_id,
        slug,
        name,
        header_line,
    )


async def insert_rows(
    session: Session, table: TableShape, columns: list[str], lines: list[str], tenant_id: UUID
) -> int:
    """Insert the rows of export lines (`{"table": …, "row": {…}}`) into `table`, each with
    `tenant_id` in place of the one it was exported with; the other `columns` come from the
    row, and a column not in `columns` takes its default."""
    status = await session.execute(
        f"INSERT INTO {table.name} ({_columns(columns)})"
        f" SELECT {_columns(columns, 'r')} FROM unnest($1::text[]) AS l (line),"
        f" jsonb_populate_record(NULL::{table.name},"
        " ((l.line::jsonb) -> 'row') || jsonb_build_object('tenant_id', $2::uuid)) r",
        lines,
        tenant_id,
    )
    return int(status.split()[-1])


async def invited_users(session: Session) -> int:
    """Users of the bound tenant still invited (their invitation links did not travel)."""
    return int(await session.fetchval("SELECT count(*) FROM users WHERE status = 'invited'"))
