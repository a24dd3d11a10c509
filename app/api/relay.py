"""Relay conventions: the Node interface, opaque global ids, and connections.

Connections are backed by the declarative tables in app/core/tables.py: keyset cursors in
both directions (`first`/`after` forward, `last`/`before` backward), one row more than the
page to know whether more follow, and `totalCount` only when asked.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Generic, Protocol, Self, TypeVar
from uuid import UUID

import strawberry

from app.api.context import Info
from app.api.permissions import Rule, admits
from app.core.errors import Invalid
from app.core.tables import (
    Cursor,
    Filter,
    Ordering,
    PageQuery,
    Row,
    Table,
    count_rows,
    decode_cursor,
    fetch_page,
    slice_page,
)


def encode_global_id(type_name: str, pk: UUID) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode().rstrip("=")


def decode_global_id(value: str) -> tuple[str, UUID] | None:
    """(type name, id), or None for anything that is not one of our ids."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        type_name, _, pk = raw.partition(":")
        return type_name, UUID(pk)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


@strawberry.interface(description="An object with a globally unique, opaque ID.")
class Node:
    pk: strawberry.Private[UUID]
    table: ClassVar[Table[Any]]
    # What reading an object of this type needs, wherever it is reached: `node(id:)` (where
    # without it the object reads as absent, like another tenant's), relations and payloads
    # (app/api/relations.py). None: nothing beyond the field that reached it (the tenant).
    read_rule: ClassVar[Rule | None] = None

    @strawberry.field(description="The opaque global ID of this object, usable with `node(id:)`.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(encode_global_id(self.graphql_name(), self.pk))

    @classmethod
    def graphql_name(cls) -> str:
        return str(cls.__strawberry_definition__.name)  # type: ignore[attr-defined]

    @classmethod
    def from_model(cls, model: Any) -> Self:
        return copy_model(cls, model)

    @classmethod
    def maybe(cls, model: Any | None) -> Self | None:
        return None if model is None else cls.from_model(model)


C = TypeVar("C")


def copy_model(cls: type[C], model: Any) -> C:
    """An object of GraphQL type `cls` from a row model: the type's fields map 1:1 onto the
    model's columns, and `pk` is its id."""
    names = {f.name for f in dataclasses.fields(cls) if f.init} - {"pk"}  # type: ignore[arg-type]
    return cls(pk=model.id, **{n: getattr(model, n) for n in names})  # type: ignore[call-arg]


class TableBacked(Protocol):
    """A GraphQL type over a declared table (every Node; also types `node(id:)` must never
    reach, such as the platform's audit entries)."""

    table: ClassVar[Table[Any]]
    read_rule: ClassVar[Rule | None]

    @classmethod
    def from_model(cls, model: Any) -> Any: ...


def parse_id(value: strawberry.ID, node_type: type[Node], *, field: str = "id") -> UUID:
    """The UUID inside a global id of `node_type`; a malformed id is an input error."""
    decoded = decode_global_id(str(value))
    if decoded is None or decoded[0] != node_type.graphql_name():
        raise Invalid(f"Not a valid {node_type.graphql_name()} ID", field=field)
    return decoded[1]


async def load_node(info: Info, node_type: type[Node], pk: UUID) -> Any | None:
    """The node of this type and id in the caller's tenant, or None (also for other tenants')."""
    return node_type.maybe(await info.context.loaders.by_id(node_type.table).load(pk))


async def resolve_global_id(info: Info, value: strawberry.ID) -> Node | None:
    """`node(id:)`: malformed ids, unknown types and other tenants' ids all give None."""
    decoded = decode_global_id(str(value))
    node_type = _node_types().get(decoded[0]) if decoded is not None else None
    if decoded is None or node_type is None:
        return None
    if not await admits(info, node_type.read_rule):
        return None
    return await load_node(info, node_type, decoded[1])


def _node_types() -> dict[str, type[Node]]:
    """Concrete node types (those declaring their table) by GraphQL name."""
    found: dict[str, type[Node]] = {}
    pending = list(Node.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if "table" in cls.__dict__:
            found[cls.graphql_name()] = cls
    return found


@strawberry.enum(description="Sort direction.")
class OrderDirection(enum.Enum):
    ASC = "asc"
    DESC = "desc"


def ordering(field: enum.Enum, direction: OrderDirection) -> Ordering:
    """The ordering a client's order-field enum member stands for (its value), in the
    wanted direction."""
    chosen = field.value
    assert isinstance(chosen, Ordering)
    return dataclasses.replace(chosen, descending=direction is OrderDirection.DESC)


N = TypeVar("N")

# The arguments every connection and every by-id field take, described once.
First = Annotated[
    int | None,
    strawberry.argument(
        description="Page size from the start (default 20, at most 100). Not with `last`."
    ),
]
After = Annotated[
    str | None,
    strawberry.argument(description="Cursor to continue after (a page's `endCursor`)."),
]
Last = Annotated[
    int | None,
    strawberry.argument(
        description="Page size from the end, for paging backwards (at most 100). Not with `first`."
    ),
]
Before = Annotated[
    str | None,
    strawberry.argument(description="Cursor to continue before (a page's `startCursor`)."),
]
ObjectId = Annotated[strawberry.ID, strawberry.argument(description="Its global ID.")]


@strawberry.type(description="Where a page sits in its connection.")
class PageInfo:
    has_next_page: bool = strawberry.field(
        description="More items follow this page (with `last`: true whenever `before` was given)."
    )
    has_previous_page: bool = strawberry.field(
        description="Items precede this page (with `first`: true whenever `after` was given)."
    )
    start_cursor: str | None = strawberry.field(
        description="Cursor of the first edge: pass it as `before` for the previous page."
    )
    end_cursor: str | None = strawberry.field(
        description="Cursor of the last edge: pass it as `after` for the next page."
    )


@strawberry.type(description="An item of a connection with its cursor.")
class Edge(Generic[N]):
    node: N = strawberry.field(description="The item.")
    cursor: str = strawberry.field(description="Opaque position of this item.")


@strawberry.type(description="A page of items, in the Relay connection format.")
class Connection(Generic[N]):
    edges: list[Edge[N]] = strawberry.field(description="The items of this page with cursors.")
    page_info: PageInfo = strawberry.field(description="Pagination information.")
    _count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="The number of items in the whole (filtered) connection.")
    async def total_count(self) -> int:
        return await self._count()

    @strawberry.field(description="The items of this page, without cursors.")
    def nodes(self) -> list[N]:
        return [e.node for e in self.edges]


@dataclass(frozen=True)
class PageArguments:
    """A connection's pagination arguments as the client gave them."""

    first: int | None = None
    after: str | None = None
    last: int | None = None
    before: str | None = None


def page_query(
    info: Info, arguments: PageArguments, ordering: Ordering, filters: tuple[Filter, ...] = ()
) -> PageQuery:
    """The page the arguments ask for: `first` rows from the start of the range between the
    cursors, or `last` rows from its end; neither is the default page from the start. Both
    together are refused (the Relay specification strongly discourages them)."""
    limits = info.context.settings.limits
    if arguments.first is not None and arguments.last is not None:
        raise Invalid("Pass either `first` or `last`, not both", field="last")
    name, size = (
        ("last", arguments.last) if arguments.last is not None else ("first", arguments.first)
    )
    if size is None:
        size = limits.default_page_size
    elif size < 0 or size > limits.max_page_size:
        raise Invalid(f"`{name}` must be between 0 and {limits.max_page_size}", field=name)
    return PageQuery(
        ordering=ordering,
        first=size,
        after=_cursor(arguments.after, ordering, "after"),
        before=_cursor(arguments.before, ordering, "before"),
        filters=filters,
        from_end=arguments.last is not None,
    )


def _cursor(value: str | None, ordering: Ordering, field: str) -> Cursor | None:
    return None if value is None else decode_cursor(value, ordering, field=field)


async def table_connection(
    info: Info,
    node_type: type[TableBacked],
    *,
    ordering: Ordering,
    arguments: PageArguments,
    filters: tuple[Filter, ...] = (),
    partition: str | None = None,
    parent: UUID | None = None,
) -> Connection[Any]:
    """A connection over `node_type.table`; with `partition`, the children of `parent`."""
    page = page_query(info, arguments, ordering, filters)
    loaders = info.context.loaders
    table = node_type.table
    rows: list[Row[Any]]
    if partition is not None and parent is not None:
        rows = await loaders.page(table, partition, page).load(parent)
        count_loader = loaders.count(table, partition, filters)

        async def count() -> int:
            return await count_loader.load(parent)
    else:
        session = info.context.session
        rows = (await fetch_page(session, table, page)).get(None, [])

        async def count() -> int:
            return (await count_rows(session, table, filters))[None]

    shown = slice_page(page, rows)
    edges = [Edge(node=node_type.from_model(r.model), cursor=r.cursor) for r in shown.rows]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=shown.has_next_page,
            has_previous_page=shown.has_previous_page,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        _count=count,
    )
