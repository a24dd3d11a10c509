"""Declarative table mappings and the generic, batched reads every domain shares.

A `Table` pairs a SQL table with the frozen dataclass its rows become; the dataclass's
fields *are* the selected columns. GraphQL types map to these declarations (type, table,
key, columns), which keeps them compilable into single SQL statements later.

Identifiers here come only from these declarations, never from input; every value is a
`$n` parameter. Row-level security supplies the tenant, so no query names tenant_id.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
import json
import re
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

import asyncpg

from app.core.db import Session
from app.core.errors import Invalid
from app.core.validation import encodable, json_value

M = TypeVar("M")


@dataclass(frozen=True)
class Table(Generic[M]):
    """A tenant table keyed (tenant_id, id) whose rows map onto the dataclass `model`."""

    name: str
    model: type[M]
    columns: tuple[str, ...] = field(init=False)
    _enums: dict[str, type[enum.Enum]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(self.model)
        names = tuple(f.name for f in dataclasses.fields(self.model))  # type: ignore[arg-type]
        enums = {n: h for n, h in hints.items() if isinstance(h, type) and issubclass(h, enum.Enum)}
        object.__setattr__(self, "columns", names)
        object.__setattr__(self, "_enums", enums)

    def __hash__(self) -> int:
        return hash(self.name)

    def select_list(self, alias: str = "t") -> str:
        return ", ".join(f"{alias}.{c}" for c in self.columns)

    def to_model(self, record: asyncpg.Record) -> M:
        values = {c: record[c] for c in self.columns}
        for name, enum_type in self._enums.items():
            values[name] = enum_type(values[name])
        return self.model(**values)


@dataclass(frozen=True)
class Ordering:
    """A NOT NULL sort expression over alias `t`, and the SQL type its cursor value has."""

    expression: str
    cast: typing.Literal["text", "timestamptz", "date", "double precision", "integer"]
    descending: bool = False
    # Used instead of `expression` when descending (e.g. to keep missing values last).
    descending_expression: str | None = None

    @property
    def sql(self) -> str:
        if self.descending and self.descending_expression is not None:
            return self.descending_expression
        return self.expression


@dataclass(frozen=True)
class Cursor:
    sort: str
    id: UUID


# Sort values exactly as PostgreSQL prints them (cursor values are read as `expr::text`).
# A forged cursor must fail here, never in SQL: anything PostgreSQL would reject (a NUL,
# an out-of-range number, a date format Python accepts but PostgreSQL does not) would
# otherwise surface as an internal error.
_TIMESTAMPTZ = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"[+-](0[0-9]|1[0-5])(:[0-5][0-9])?$"  # PostgreSQL accepts offsets up to 15:59
)
_DATE = re.compile(r"^(-?infinity|[0-9]{4}-[0-9]{2}-[0-9]{2})$")
_FLOAT = re.compile(r"^(-?([0-9]+(\.[0-9]*)?|\.[0-9]+)(e[+-]?[0-9]+)?|-?Infinity|NaN)$")
_INTEGER = re.compile(r"^-?[0-9]{1,10}$")
_MAX_TEXT_CURSOR = 10_000
# float8's range: PostgreSQL rejects what would overflow it or underflow to zero.
_FLOAT_MAX = 1.7976931348623157e308


def _valid_float(sort: str) -> bool:
    if sort.endswith(("Infinity", "NaN")):
        return True
    value = abs(float(sort))
    mantissa = sort.split("e")[0]
    if value == 0:
        return not any(c in "123456789" for c in mantissa)  # a true zero, not an underflow
    return value <= _FLOAT_MAX


def _valid_sort(sort: str, cast: str) -> bool:
    if cast == "text":
        return len(sort) <= _MAX_TEXT_CURSOR and encodable(sort)
    if cast == "timestamptz":
        return bool(_TIMESTAMPTZ.match(sort)) and bool(datetime.fromisoformat(sort))
    if cast == "date":
        return bool(_DATE.match(sort)) and (
            sort.endswith("infinity") or bool(date.fromisoformat(sort))
        )
    if cast == "double precision":
        return bool(_FLOAT.match(sort)) and _valid_float(sort)
    return bool(_INTEGER.match(sort)) and -(2**31) <= int(sort) < 2**31


def encode_cursor(sort: str, id_: UUID) -> str:
    raw = json.dumps([sort, str(id_)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(value: str, ordering: Ordering, *, field: str = "after") -> Cursor:
    """Parse and type-check a client cursor so a forged one fails here, not in SQL; `field`
    names the argument it came in (`after` or `before`) in the error."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        decoded = json_value(raw)
        if not isinstance(decoded, list) or len(decoded) != 2:
            raise ValueError
        sort, id_text = decoded
        if not isinstance(sort, str) or not isinstance(id_text, str):
            raise ValueError
        cursor = Cursor(sort, UUID(id_text))
        if not _valid_sort(sort, ordering.cast):
            raise ValueError
    except (ValueError, TypeError, binascii.Error):
        raise Invalid("Invalid cursor", field=field) from None
    return cursor


Filter = tuple[str, object]


@dataclass(frozen=True)
class Contains:
    """A filter value: `text` occurs, in any case, in one of `columns` (the filter's column
    name is then only a label). LIKE wildcards in `text` match themselves."""

    columns: tuple[str, ...]
    text: str

    @property
    def pattern(self) -> str:
        escaped = self.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return f"%{escaped}%"


@dataclass(frozen=True)
class PageQuery:
    """One page of rows: equality filters, an ordering, and `first` rows of the range between
    the cursors `after` and `before` (each exclusive, each optional), taken from the start of
    that range, or from its end when `from_end` (Relay's `last`: then `first` is its value).
    """

    ordering: Ordering
    first: int
    after: Cursor | None = None
    filters: tuple[Filter, ...] = ()
    before: Cursor | None = None
    from_end: bool = False


def _where(filters: Sequence[Filter], args: list[object]) -> list[str]:
    clauses = []
    for column, value in filters:
        if isinstance(value, Contains):
            args.append(value.pattern)
            n = len(args)
            clauses.append("(" + " OR ".join(f"t.{c} ILIKE ${n}" for c in value.columns) + ")")
            continue
        if value is None:
            clauses.append(f"t.{column} IS NULL")
            continue
        args.append(list(value) if isinstance(value, list | tuple | frozenset) else value)
        op = "= ANY(${})" if isinstance(value, list | tuple | frozenset) else "= ${}"
        clauses.append(f"t.{column} " + op.format(len(args)))
    return clauses


def _keyset(page: PageQuery, args: list[object]) -> list[str]:
    """The range between the cursors: rows after `after` and before `before` in the order."""
    clauses = []
    for cursor, later in ((page.after, True), (page.before, False)):
        if cursor is None:
            continue
        args.extend([cursor.sort, cursor.id])
        op = ">" if later != page.ordering.descending else "<"
        n = len(args)
        # The sort value travels as text (as it was read) and is cast by PostgreSQL, so it
        # compares exactly like the column it came from.
        expression, cast = page.ordering.sql, page.ordering.cast
        clauses.append(f"({expression}, t.id) {op} (${n - 1}::text::{cast}, ${n}::uuid)")
    return clauses


def _order_by(ordering: Ordering, *, reverse: bool = False) -> str:
    """The ordering's ORDER BY; `reverse` reads it from the end (the same expression, so a
    descending ordering's own expression is kept)."""
    direction = " DESC" if ordering.descending != reverse else ""
    return f"{ordering.sql}{direction}, t.id{direction}"


async def fetch_by_ids(session: Session, table: Table[M], ids: Sequence[UUID]) -> dict[UUID, M]:
    rows = await session.fetch(
        f"SELECT {table.select_list()} FROM {table.name} t WHERE t.id = ANY($1::uuid[])",
        list(ids),
    )
    return {r["id"]: table.to_model(r) for r in rows}


@dataclass(frozen=True)
class Row(Generic[M]):
    """A model plus the cursor of its position in the page it was read for."""

    model: M
    cursor: str


async def fetch_page(
    session: Session,
    table: Table[M],
    page: PageQuery,
    *,
    partition: str | None = None,
    parents: Sequence[UUID] = (),
) -> dict[UUID | None, list[Row[M]]]:
    """Up to `page.first + 1` rows in reading order: the ordering's, or its reverse for a
    page taken from the end (`from_end`). One row beyond `first` says more rows follow in
    that direction; `slice_page` turns the rows into the page.

    With `partition`, one statement reads a page per parent id (a window function), so a
    nested connection costs one query whatever the number of parents.
    """
    args: list[object] = []
    where = _where(page.filters, args)
    if partition is not None:
        args.append(list(parents))
        where.append(f"t.{partition} = ANY(${len(args)}::uuid[])")
    where += _keyset(page, args)
    args.append(page.first + 1)
    limit = f"${len(args)}"
    sort = f"({page.ordering.sql})::text AS _sort"
    where_sql = " AND ".join(where) or "true"
    order = _order_by(page.ordering, reverse=page.from_end)
    if partition is None:
        sql = (
            f"SELECT {table.select_list()}, {sort} FROM {table.name} t WHERE {where_sql} "
            f"ORDER BY {order} LIMIT {limit}"
        )
    else:
        sql = (
            f"SELECT * FROM (SELECT {table.select_list()}, {sort}, row_number() OVER "
            f"(PARTITION BY t.{partition} ORDER BY {order}) AS _rn "
            f"FROM {table.name} t WHERE {where_sql}) s WHERE s._rn <= {limit} ORDER BY s._rn"
        )
    result: dict[UUID | None, list[Row[M]]] = {}
    for r in await session.fetch(sql, *args):
        key = r[partition] if partition is not None else None
        result.setdefault(key, []).append(
            Row(table.to_model(r), encode_cursor(r["_sort"], r["id"]))
        )
    return result


@dataclass(frozen=True)
class PageSlice(Generic[M]):
    """A page as a Relay connection shows it: its rows in the ordering's order, and whether
    rows follow or precede it."""

    rows: list[Row[M]]
    has_next_page: bool
    has_previous_page: bool


def slice_page(page: PageQuery, rows: Sequence[Row[M]]) -> PageSlice[M]:
    """The page of what `fetch_page` read for it, with the flags of the Relay cursor
    connections specification: in the reading direction, a row beyond `first` means more
    follow; in the other, rows are claimed exactly when that side's cursor was given (its own
    row lies there), which the specification allows in place of an extra query.
    """
    more = len(rows) > page.first
    visible = list(rows[: page.first])
    if page.from_end:
        visible.reverse()
        return PageSlice(visible, has_next_page=page.before is not None, has_previous_page=more)
    return PageSlice(visible, has_next_page=more, has_previous_page=page.after is not None)


async def count_rows(
    session: Session,
    table: Table[Any],
    filters: Sequence[Filter],
    *,
    partition: str | None = None,
    parents: Sequence[UUID] = (),
) -> dict[UUID | None, int]:
    args: list[object] = []
    where = _where(filters, args)
    if partition is None:
        sql = f"SELECT count(*) FROM {table.name} t WHERE {' AND '.join(where) or 'true'}"
        return {None: int(await session.fetchval(sql, *args))}
    args.append(list(parents))
    where.append(f"t.{partition} = ANY(${len(args)}::uuid[])")
    sql = (
        f"SELECT t.{partition} AS parent, count(*) AS n FROM {table.name} t "
        f"WHERE {' AND '.join(where)} GROUP BY t.{partition}"
    )
    return {r["parent"]: int(r["n"]) for r in await session.fetch(sql, *args)}


def _checked(table: Table[Any], columns: Sequence[str]) -> None:
    # Column names are interpolated into SQL: only the declared columns may pass.
    unknown = set(columns) - set(table.columns) - {"updated_at"}
    if unknown or "id" in columns:
        raise ValueError(f"not writable columns of {table.name}: {sorted(unknown)}")


async def insert_row(session: Session, table: Table[M], values: dict[str, object]) -> M:
    """Insert into the bound tenant: tenant_id comes from the transaction, never from input.

    With no tenant bound, tenant_id is NULL and the insert fails (fail closed).
    """
    _checked(table, list(values))
    columns = ", ".join(values)
    params = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    row = await session.fetchrow(
        f"INSERT INTO {table.name} AS t (tenant_id, {columns}) "
        f"VALUES (app.current_tenant_id(), {params}) RETURNING {table.select_list()}",
        *values.values(),
    )
    assert row is not None
    return table.to_model(row)


async def update_row(
    session: Session, table: Table[M], id_: UUID, changes: dict[str, object]
) -> M | None:
    """Apply `changes` (and bump updated_at); None when no visible row has that id."""
    _checked(table, list(changes))
    assignments = [f"{c} = ${i}" for i, c in enumerate(changes, start=2)]
    if "updated_at" in table.columns and "updated_at" not in changes:
        # Statement time, not transaction time: several changes in one operation keep order.
        assignments.append("updated_at = statement_timestamp()")
    row = await session.fetchrow(
        f"UPDATE {table.name} AS t SET {', '.join(assignments)} WHERE t.id = $1 "
        f"RETURNING {table.select_list()}",
        id_,
        *changes.values(),
    )
    return None if row is None else table.to_model(row)


async def lock_row(session: Session, table: Table[M], id_: UUID) -> M | None:
    """Read one row FOR UPDATE, so a read-check-write sequence is not raced."""
    row = await session.fetchrow(
        f"SELECT {table.select_list()} FROM {table.name} t WHERE t.id = $1 FOR UPDATE", id_
    )
    return None if row is None else table.to_model(row)


async def delete_row(session: Session, table: Table[Any], id_: UUID) -> bool:
    return bool(
        await session.fetchval(
            f"WITH d AS (DELETE FROM {table.name} t WHERE t.id = $1 RETURNING 1) "
            "SELECT count(*) > 0 FROM d",
            id_,
        )
    )
