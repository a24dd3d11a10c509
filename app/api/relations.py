"""Relations between GraphQL types, each declared once: what it reaches and through which
columns, its arguments and ordering, how it is loaded, and the rule a reader needs.

A relation is data: a frozen `Relation` kept in its field's metadata (`relations_of(type)`
lists a type's), from which the factories here generate the Strawberry field, its
arguments and its resolver (DataLoaders, app/api/loaders.py: one statement per relation
whatever the number of parents). A compiled read path reads the same declarations, and the
resolvers stay the reference semantics.

- `to_one(target, key=…)`: the object whose id the parent holds in the column `key`.
- `connection(listing, partition=…)`: a page of the listing's rows whose column `partition`
  holds the parent's id (no partition: the whole table, for root fields).
- `to_many(target, load=…)`: every related object, through a batch loader (a join table).
- `result(target)`: a mutation payload's object.

Every one of them carries the rule of the type it reaches (`read_rule`, app/api/relay.py) or
an explicit per-object rule: a caller reads a type through a relation exactly when they could
through the root fields, at every depth. A relation whose rule can differ from its parent
type's must be nullable, so a refusal (FORBIDDEN at its path, null there) keeps its siblings;
tests/api/test_permission_rules.py checks both on the whole schema.

A `Listing` declares once how a type's rows are listed: its orderings (an enum whose members'
values are the SQL orderings, from which the GraphQL order enum and input are generated, so
the two cannot drift apart) and its filter arguments. Every connection to the type uses it.
"""

from __future__ import annotations

import enum
import importlib
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any
from uuid import UUID

import strawberry
from strawberry.types.base import get_object_definition
from strawberry.types.field import StrawberryField

from app.api.context import Info
from app.api.permissions import Rule, RuleExtension
from app.api.relay import (
    After,
    Before,
    Connection,
    First,
    Last,
    OrderDirection,
    PageArguments,
    TableBacked,
    ordering,
    table_connection,
)
from app.core.db import Session
from app.core.tables import Filter, Ordering

# Where a field keeps its Relation (StrawberryField.metadata).
RELATION = "tenantry.relation"

# Annotations built from declarations at run time, which a static checker cannot follow.
_ANNOTATED: Any = Annotated
_CONNECTION: Any = Connection
_LIST: Any = list


@dataclass(frozen=True)
class TypeRef:
    """A GraphQL type by module and Python name, resolved lazily: types of different
    domains refer to each other, and the domains import each other only one way."""

    module: str
    name: str

    @classmethod
    def of(cls, target: TypeRef | type[Any]) -> TypeRef:
        if isinstance(target, TypeRef):
            return target
        return cls(target.__module__, target.__name__)

    def resolve(self) -> type[TableBacked]:
        found: type[TableBacked] = getattr(importlib.import_module(self.module), self.name)
        return found

    def annotation(self) -> Any:
        """The type as a lazy Strawberry annotation."""
        return _ANNOTATED[self.name, strawberry.lazy(self.module)]


@dataclass(frozen=True)
class OrderBy:
    """The `orderBy` argument of a listing: the order-field enum whose members' values are
    the SQL orderings, and the Strawberry input generated from it (`order_by`)."""

    choices: type[enum.Enum]
    default: enum.Enum
    input: type[Any]
    description: str

    def ordering(self, value: Any | None) -> Ordering:
        if value is None:
            return ordering(self.default, OrderDirection.ASC)
        return ordering(value.field, value.direction)


def order_by(
    choices: type[enum.Enum], *, default: enum.Enum, plural: str, argument: str
) -> OrderBy:
    """Expose an enum of orderings (declared with its table, e.g. app/tasks/models.py) as
    the GraphQL enum `<Name>Field` and the input `<Name>`, e.g. TaskOrderField and TaskOrder.
    `argument` describes the `orderBy` argument."""
    for member in choices:
        assert isinstance(member.value, Ordering), member
    strawberry.enum(choices, description=f"Fields {plural} can be ordered by.")
    name = choices.__name__.removesuffix("Field")
    namespace = {
        "__module__": choices.__module__,
        "__annotations__": {"field": choices, "direction": OrderDirection},
        "field": strawberry.field(default=default, description="The field to sort by."),
        "direction": strawberry.field(
            default=OrderDirection.ASC, description="The sort direction."
        ),
    }
    generated = strawberry.input(type(name, (), namespace), description=f"How to order {plural}.")
    return OrderBy(choices, default, generated, argument)


@dataclass(frozen=True)
class Argument:
    """A filter argument of a listing, as the SDL shows it (after `first` and `after`)."""

    name: str
    type: Any
    description: str


@dataclass(frozen=True)
class Listing:
    """How the rows of one type are listed, for every connection to it.

    `order` is a fixed ordering, or an `OrderBy` (the client chooses). `filters` turns the
    values of `arguments` (by name; absent ones are None) into the table's equality filters.
    """

    target: TypeRef
    order: OrderBy | Ordering
    arguments: tuple[Argument, ...] = ()
    filters: Callable[..., tuple[Filter, ...]] | None = None

    def ordering(self, value: Any | None) -> Ordering:
        if isinstance(self.order, Ordering):
            return self.order
        return self.order.ordering(value)

    def filter_values(self, values: Mapping[str, Any]) -> tuple[Filter, ...]:
        if self.filters is None:
            return ()
        return self.filters(**{a.name: values.get(a.name) for a in self.arguments})


def listing(
    target: TypeRef | type[Any],
    *,
    order: OrderBy | Ordering,
    arguments: Sequence[Argument] = (),
    filters: Callable[..., tuple[Filter, ...]] | None = None,
) -> Listing:
    return Listing(TypeRef.of(target), order, tuple(arguments), filters)


class RelationKind(enum.Enum):
    TO_ONE = "to_one"
    CONNECTION = "connection"
    TO_MANY = "to_many"
    RESULT = "result"


# A batch loader: parent ids to the related rows' models (a domain's service function).
BatchLoad = Callable[[Session, Sequence[UUID]], Awaitable[dict[UUID, list[Any]]]]


@dataclass(frozen=True)
class Relation:
    """One relation, as declared. The column names are the target's (`partition`) or the
    parent's (`key`) table columns; the parent's id is its `pk`."""

    kind: RelationKind
    target: TypeRef
    nullable: bool
    # TO_ONE: the parent's column holding the target's id.
    key: str | None = None
    # CONNECTION: the target's column holding the parent's id; None: the whole table.
    partition: str | None = None
    listing: Listing | None = None
    # TO_MANY: parent ids to the targets' models.
    load: BatchLoad | None = field(default=None, compare=False)
    # None: the target type's read rule, the one every way to the type needs.
    rule: Rule | None = None

    @property
    def read_rule(self) -> Rule | None:
        """The rule a reader of this relation needs (None: none beyond its parent's)."""
        return self.rule if self.rule is not None else self.target.resolve().read_rule

    def rules(self) -> tuple[Rule, ...]:
        rule = self.read_rule
        return () if rule is None else (rule,)


def relation_of(field: StrawberryField) -> Relation | None:
    """The relation a field serves, if it is one."""
    metadata: Mapping[str, Any] = field.metadata or {}
    found = metadata.get(RELATION)
    return found if isinstance(found, Relation) else None


def relations_of(graphql_type: type[Any]) -> dict[str, Relation]:
    """A type's relations by GraphQL field name."""
    definition = get_object_definition(graphql_type, strict=True)
    return {
        f.graphql_name or f.python_name: r
        for f in definition.fields
        if (r := relation_of(f)) is not None
    }


def _field(
    relation: Relation,
    resolve: Callable[..., Awaitable[Any]],
    parameters: Sequence[inspect.Parameter],
    returns: Any,
    *,
    description: str,
    name: str | None,
) -> Any:
    """The Strawberry field serving `relation` through `resolve`, whose signature (the
    field's arguments and type) is built from the declaration."""
    base = [
        inspect.Parameter("root", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        inspect.Parameter("info", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Info),
    ]
    returns = returns | None if relation.nullable else returns
    resolve.__signature__ = inspect.Signature([*base, *parameters], return_annotation=returns)  # type: ignore[attr-defined]
    return strawberry.field(
        resolver=resolve,
        name=name,
        description=description,
        extensions=[RuleExtension(relation.rules)],
        metadata={RELATION: relation},
    )


def _keyword(name: str, annotation: Any) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=None
    )


def to_one(
    target: TypeRef | type[Any],
    *,
    key: str,
    description: str,
    nullable: bool,
    rule: Rule | None = None,
    name: str | None = None,
) -> Any:
    """The object of `target` whose id the parent holds in its column `key`."""
    ref = TypeRef.of(target)
    relation = Relation(RelationKind.TO_ONE, ref, nullable, key=key, rule=rule)

    async def resolve(root: Any, info: Info) -> Any:
        pk = getattr(root, key)
        if pk is None:
            return None
        node_type = ref.resolve()
        model = await info.context.loaders.by_id(node_type.table).load(pk)
        # Not null for a NOT NULL key: a composite foreign key guarantees the row.
        assert model is not None or nullable, (ref, key)
        return None if model is None else node_type.from_model(model)

    return _field(relation, resolve, (), ref.annotation(), description=description, name=name)


def connection(
    rows: Listing,
    *,
    description: str,
    partition: str | None = None,
    nullable: bool = False,
    rule: Rule | None = None,
    name: str | None = None,
) -> Any:
    """A page of `rows` whose column `partition` holds the parent's id (None: the whole
    table), with `first`/`after` and `last`/`before`, the listing's filter arguments and its
    `orderBy`."""
    relation = Relation(
        RelationKind.CONNECTION, rows.target, nullable, partition=partition, listing=rows, rule=rule
    )

    async def resolve(
        root: Any,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        order_by: Any | None = None,
        **filters: Any,
    ) -> Connection[Any]:
        return await table_connection(
            info,
            rows.target.resolve(),
            ordering=rows.ordering(order_by),
            arguments=PageArguments(first=first, after=after, last=last, before=before),
            filters=rows.filter_values(filters),
            partition=partition,
            parent=None if partition is None else root.pk,
        )

    parameters = [
        _keyword("first", First),
        _keyword("after", After),
        _keyword("last", Last),
        _keyword("before", Before),
        *(
            _keyword(
                a.name, _ANNOTATED[a.type | None, strawberry.argument(description=a.description)]
            )
            for a in rows.arguments
        ),
    ]
    if isinstance(rows.order, OrderBy):
        chosen = _ANNOTATED[
            rows.order.input | None, strawberry.argument(description=rows.order.description)
        ]
        parameters.append(_keyword("order_by", chosen))
    returns = _CONNECTION[rows.target.annotation()]
    return _field(relation, resolve, parameters, returns, description=description, name=name)


def to_many(
    target: TypeRef | type[Any],
    *,
    load: BatchLoad,
    description: str,
    nullable: bool,
    rule: Rule | None = None,
    name: str | None = None,
) -> Any:
    """Every object of `target` related to the parent, read for all parents of the
    operation at once by `load` (e.g. through a join table)."""
    ref = TypeRef.of(target)
    relation = Relation(RelationKind.TO_MANY, ref, nullable, load=load, rule=rule)
    loader_name = f"{load.__module__}.{load.__qualname__}"

    async def resolve(root: Any, info: Info) -> list[Any]:
        found: list[Any] | None = await info.context.loaders.batch(loader_name, load).load(root.pk)
        node_type = ref.resolve()
        return [node_type.from_model(m) for m in found or ()]

    returns = _LIST[ref.annotation()]
    return _field(relation, resolve, (), returns, description=description, name=name)


def result(target: TypeRef | type[Any], *, description: str) -> Any:
    """A mutation payload's object (set by the resolver; null when the mutation failed):
    readable as the target type is anywhere else. A refusal hides it and keeps the write."""
    relation = Relation(RelationKind.RESULT, TypeRef.of(target), nullable=True)
    return strawberry.field(
        description=description,
        extensions=[RuleExtension(relation.rules)],
        metadata={RELATION: relation},
    )


__all__ = [
    "Argument",
    "Listing",
    "OrderBy",
    "Relation",
    "RelationKind",
    "TypeRef",
    "connection",
    "listing",
    "order_by",
    "relation_of",
    "relations_of",
    "result",
    "to_many",
    "to_one",
]
