"""Static limits of a GraphQL document, measured in one pass whose work is linear in its length.

Depth, aliases, expanded size, the cost estimate and the introspection bounds are computed
together. Each fragment is analysed once and its measure memoised by name, so a spread costs a
lookup however often it is repeated: 25 fragments, each `{ ...F0 ...F0 }` of the one before,
expand to 2^24 fields and are measured (and refused) in 50 steps. The numbers a
spread stands for are multiplied, never expanded, and saturate at `SATURATED`.

- Depth counts object levels: a connection's `edges { node { … } }` or `nodes { … }` is one
  level with the connection field, and an introspection `ofType` chain is counted on its own.
- Cost (`nodes`) is the most objects the operation's connections could return: the page
  size (`first`, or `last` for a page from the end) multiplied down every path, a
  connection without either counting the default page. It reads them from the operation's
  variables, else their defaults, else the default page.
  Cost is linear in the multiplier, so a fragment's cost at multiplier 1 is all that is kept.
- Introspection is bounded by its roots (`__schema`, `__type`), its `ofType` depth, and the
  values it can produce, counted from the schema's real sizes: where the parents are distinct
  schema members (the types of `__schema.types`, their fields, their arguments) a list holds
  at most its total over the whole schema, elsewhere its largest length per parent. Those
  few states are part of a fragment's memo key, so the work stays linear.

The walk is a trampoline over generators (`_run`): documents nest up to graphql-core's 200
levels per definition and fragments chain further, deeper than Python's recursion limit.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_introspection_query,
    get_named_type,
    get_nullable_type,
    is_list_type,
    parse,
)

from app.core.errors import DomainError
from app.core.settings import Limits

# Larger than any limit; products and sums stop growing here so they stay small integers.
SATURATED = 10**15
# A digit string this long is already over every limit: not converted (a 1 MB number would
# cost quadratic time, and Python refuses over 4300 digits).
_MAX_DIGITS = 15

_INTROSPECTION_ROOTS = {"__schema": "__Schema", "__type": "__Type"}
# Lists whose elements are distinct schema members when their parents are: the fields of
# distinct types are distinct fields. Not `interfaces` or `possibleTypes` (shared types).
_DISTINCT_LISTS = {
    ("__Schema", "types"),
    ("__Schema", "directives"),
    ("__Type", "fields"),
    ("__Type", "inputFields"),
    ("__Type", "enumValues"),
    ("__Field", "args"),
    ("__Directive", "args"),
}


class LimitExceeded(DomainError):
    """A document over one of the static limits: `limit` names which, `maximum` its value.
    The subclasses below narrow the code by the kind of limit."""

    code = "QUERY_TOO_COMPLEX"

    def __init__(self, message: str, *, limit: str, maximum: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.maximum = maximum

    def details(self) -> dict[str, object]:
        return {"limit": self.limit, "maximum": self.maximum}


class TooDeep(LimitExceeded):
    code = "QUERY_TOO_DEEP"


class TooManyAliases(LimitExceeded):
    code = "TOO_MANY_ALIASES"


class TooLarge(LimitExceeded):
    code = "QUERY_TOO_LARGE"


class TooComplex(LimitExceeded):
    code = "QUERY_TOO_COMPLEX"


class BatchBudget:
    """The objects the operations of one batched request may still return together: the
    cost limit (`max_nodes`) bounds their sum, not each one alone."""

    def __init__(self, max_nodes: int) -> None:
        self.max_nodes = max_nodes
        self.remaining = max_nodes

    def take(self, nodes: int) -> TooComplex | None:
        """Take an operation's objects; the refusal (taking nothing) when they would
        overdraw the batch's budget."""
        if nodes > self.remaining:
            spent = self.max_nodes - self.remaining
            return TooComplex(
                f"This batch's operations could return up to {spent + nodes} objects"
                f" together; the limit is {self.max_nodes}. Send fewer operations together or"
                " ask for smaller pages.",
                limit="nodes",
                maximum=self.max_nodes,
            )
        self.remaining -= nodes
        return None


def _cap(value: int) -> int:
    return value if value < SATURATED else SATURATED


@dataclass(frozen=True, slots=True)
class Measure:
    """What a selection set stands for once its fragments are expanded.

    `nodes` and `introspection` are per object the selection set is selected on, except in
    a distinct introspection state, where `introspection` is the total over those objects.
    """

    depth: int = 0
    type_depth: int = 0
    fields: int = 0
    aliases: int = 0
    nodes: int = 0
    introspection_roots: int = 0
    introspection: int = 0
    # Whether `edges` or `nodes` is selected at this level (a connection without `first`
    # then counts the default page).
    pages: bool = False


EMPTY = Measure()


class _Sum:
    """A selection set's measure while its selections are added up."""

    __slots__ = (
        "aliases",
        "depth",
        "fields",
        "introspection",
        "nodes",
        "pages",
        "roots",
        "type_depth",
    )

    def __init__(self) -> None:
        self.depth = self.type_depth = self.fields = self.aliases = 0
        self.nodes = self.roots = self.introspection = 0
        self.pages = False

    def add(self, part: Measure) -> None:
        self.depth = max(self.depth, part.depth)
        self.type_depth = max(self.type_depth, part.type_depth)
        self.fields += part.fields
        self.aliases += part.aliases
        self.nodes += part.nodes
        self.roots += part.introspection_roots
        self.introspection += part.introspection
        self.pages = self.pages or part.pages

    def measure(self) -> Measure:
        # A sum of a few thousand capped numbers: capped once, here.
        return Measure(
            self.depth,
            self.type_depth,
            _cap(self.fields),
            _cap(self.aliases),
            _cap(self.nodes),
            _cap(self.roots),
            _cap(self.introspection),
            self.pages,
        )


@dataclass(frozen=True)
class ListSize:
    """An introspection list's largest length for one parent and its total over the schema."""

    largest: int
    total: int


@dataclass(frozen=True)
class SchemaShape:
    """What the analysis needs to know of the schema, derived once per schema."""

    schema: GraphQLSchema
    # (type, field) -> the field's named type and whether it is a list, for every object and
    # interface type (the introspection types too).
    fields: Mapping[tuple[str, str], tuple[GraphQLNamedType, bool]]
    # (type, field) pairs that add no object level: a connection's `edges` and `nodes`, an
    # edge's `node`.
    wrappers: frozenset[tuple[str, str]]
    lists: Mapping[tuple[str, str], ListSize]

    @classmethod
    def of(cls, schema: GraphQLSchema) -> SchemaShape:
        """Read the shape off `schema` (once per schema: about 3 ms here)."""
        types = list(schema.type_map.values())
        composite = [t for t in types if isinstance(t, GraphQLObjectType | GraphQLInterfaceType)]
        fields = {
            (t.name, name): (get_named_type(f.type), is_list_type(get_nullable_type(f.type)))
            for t in composite
            for name, f in t.fields.items()
        }
        # Relay's shapes, recognised by their fields rather than by name.
        connections = [t for t in composite if {"edges", "pageInfo"} <= t.fields.keys()]
        edges = [t for t in composite if {"node", "cursor"} <= t.fields.keys()]
        wrappers = frozenset(
            [(t.name, name) for t in connections for name in ("edges", "nodes")]
            + [(t.name, "node") for t in edges]
        )
        possible = [
            len(schema.get_possible_types(t))
            for t in types
            if isinstance(t, GraphQLInterfaceType | GraphQLUnionType)
        ]
        interfaces = [len(t.interfaces) for t in composite]
        input_fields = [len(t.fields) for t in types if isinstance(t, GraphQLInputObjectType)]
        enum_values = [len(t.values) for t in types if isinstance(t, GraphQLEnumType)]
        directives = schema.directives
        arguments = [len(f.args) for t in composite for f in t.fields.values()]

        def size(lengths: list[int]) -> ListSize:
            return ListSize(max(lengths, default=0), sum(lengths))

        lists = {
            ("__Schema", "types"): size([len(types)]),
            ("__Schema", "directives"): size([len(directives)]),
            ("__Type", "fields"): size([len(t.fields) for t in composite]),
            ("__Type", "interfaces"): size(interfaces),
            ("__Type", "possibleTypes"): size(possible),
            ("__Type", "enumValues"): size(enum_values),
            ("__Type", "inputFields"): size(input_fields),
            ("__Field", "args"): size(arguments),
            ("__Directive", "args"): size([len(d.args) for d in directives]),
            ("__Directive", "locations"): size([len(d.locations) for d in directives]),
        }
        return cls(schema, fields, wrappers, lists)


@dataclass(frozen=True)
class Analysis:
    """A document's measures (summed over its operations; depths are the deepest), the cost
    of the operation to run, and the work the analysis did."""

    depth: int
    type_depth: int
    fields: int
    aliases: int
    introspection_roots: int
    introspection: int
    nodes: int
    # Selections looked at, and fragment bodies analysed (a memo hit analyses nothing).
    visited: int
    fragment_analyses: int


# Outside introspection: None. Inside: how many objects the selection set is selected on
# and whether they are distinct schema members; (1, False) means "per object".
_State = tuple[int, bool] | None
_PER_OBJECT: _State = (1, False)
_Step = Generator["_Step", Measure, Measure]


def _run(step: _Step) -> Measure:
    """Drive nested analysis steps with an explicit stack instead of Python's."""
    stack = [step]
    sent: Measure | None = None
    while True:
        try:
            child = stack[-1].send(sent)  # type: ignore[arg-type]
        except StopIteration as done:
            stack.pop()
            if not stack:
                result: Measure = done.value
                return result
            sent = done.value
        else:
            stack.append(child)
            sent = None


class _Descent(NamedTuple):
    """Where a field leads: its type, and inside introspection how many objects its
    selection is selected on."""

    type: GraphQLNamedType | None
    # The field's own value in each object it is selected on (introspection only).
    here: int
    child_state: _State
    # What the child's `introspection` is multiplied by (1 when it is already a total).
    scale: int
    # A leaf's values: its own, and a scalar list's items.
    leaf_values: int


# A field the schema does not have (graphql-core's validation refuses the document later).
_UNKNOWN: tuple[GraphQLNamedType | None, bool] = (None, False)
_LIST_UNKNOWN = ListSize(SATURATED, SATURATED)


@dataclass
class _Walk:
    shape: SchemaShape
    fragments: Mapping[str, FragmentDefinitionNode]
    variables: Mapping[str, Any]
    defaults: Mapping[str, Any]
    default_page_size: int
    memo: dict[tuple[str, _State], Measure] = field(default_factory=dict)
    in_progress: set[tuple[str, _State]] = field(default_factory=set)
    visited: int = 0
    fragment_analyses: int = 0

    def selection_set(
        self, node: SelectionSetNode | None, parent: GraphQLNamedType | None, state: _State
    ) -> _Step:
        total = _Sum()
        for selection in node.selections if node else ():
            self.visited += 1
            if isinstance(selection, FieldNode):
                name = selection.name.value
                total.fields += 1
                total.aliases += 1 if selection.alias else 0
                total.pages = total.pages or name in ("edges", "nodes")
                total.roots += 1 if name in _INTROSPECTION_ROOTS else 0
                descent = self._descend(parent, name, state)
                if selection.selection_set is None:
                    total.introspection += descent.leaf_values
                    continue
                inner = yield self.selection_set(
                    selection.selection_set, descent.type, descent.child_state
                )
                wrapper = parent is not None and (parent.name, name) in self.shape.wrappers
                page = self._page(selection, inner.pages)
                total.depth = max(
                    total.depth, inner.depth + (0 if wrapper or name == "ofType" else 1)
                )
                total.type_depth = max(
                    total.type_depth, inner.type_depth + (1 if name == "ofType" else 0)
                )
                total.fields += inner.fields
                total.aliases += inner.aliases
                total.nodes += inner.nodes if page is None else page + page * inner.nodes
                total.roots += inner.introspection_roots
                total.introspection += descent.here + descent.scale * inner.introspection
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner_type = parent if condition is None else self._type(condition.name.value)
                total.add((yield self.selection_set(selection.selection_set, inner_type, state)))
            else:
                assert isinstance(selection, FragmentSpreadNode)
                total.add((yield self.fragment(selection.name.value, state)))
        return total.measure()

    def fragment(self, name: str, state: _State) -> _Step:
        key = (name, state)
        known = self.memo.get(key)
        if known is not None:
            return known
        definition = self.fragments.get(name)
        # Unknown fragments and cycles are invalid (graphql-core reports them): they add nothing.
        if definition is None or key in self.in_progress:
            return EMPTY
        self.in_progress.add(key)
        self.fragment_analyses += 1
        parent = self._type(definition.type_condition.name.value)
        measure = yield self.selection_set(definition.selection_set, parent, state)
        self.in_progress.discard(key)
        self.memo[key] = measure
        return measure

    def _descend(self, parent: GraphQLNamedType | None, name: str, state: _State) -> _Descent:
        if name in _INTROSPECTION_ROOTS:
            return _Descent(self._type(_INTROSPECTION_ROOTS[name]), 1, (1, True), 1, 1)
        child, is_list = (
            _UNKNOWN if parent is None else self.shape.fields.get((parent.name, name), _UNKNOWN)
        )
        if state is None:
            return _Descent(child, 0, None, 1, 0)
        here, distinct = state
        count = here
        if is_list:
            assert parent is not None
            size = self.shape.lists.get((parent.name, name), _LIST_UNKNOWN)
            count = _cap(count * size.largest)
            if distinct:
                count = min(count, size.total)
            distinct = distinct and (parent.name, name) in _DISTINCT_LISTS
        else:
            distinct = distinct and count == 1
        if distinct:
            return _Descent(child, here, (count, True), 1, here + (count if is_list else 0))
        return _Descent(child, here, _PER_OBJECT, count, here + (count if is_list else 0))

    def _type(self, name: str) -> GraphQLNamedType | None:
        return self.shape.schema.get_type(name)

    def _page(self, node: FieldNode, pages: bool) -> int | None:
        """The page a field asks for: its `first` or `last` (the larger, should both be
        given), or the default page for a connection selected without them (it has `edges`
        or `nodes`); None for any other field."""
        sizes = [
            self._size(argument.value)
            for argument in node.arguments or ()
            if argument.name.value in ("first", "last")
        ]
        if sizes:
            return max(sizes)
        return self.default_page_size if pages else None

    def _size(self, value: Any) -> int:
        if isinstance(value, VariableNode):
            name = value.name.value
            value = self.variables.get(name, self.defaults.get(name))
        elif isinstance(value, IntValueNode):
            literal = value.value
            if len(literal.lstrip("-")) <= _MAX_DIGITS:
                value = int(literal)
            else:
                value = 0 if literal.startswith("-") else SATURATED
        # A bool is an int to Python, not to GraphQL; null or anything else: the default.
        return _cap(max(value, 0)) if type(value) is int else self.default_page_size


def _defaults(operation: OperationDefinitionNode | None) -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    for definition in (operation.variable_definitions or ()) if operation else ():
        default = definition.default_value
        if isinstance(default, IntValueNode) and len(default.value) <= _MAX_DIGITS:
            defaults[definition.variable.name.value] = int(default.value)
    return defaults


def analyse(
    document: DocumentNode,
    shape: SchemaShape,
    *,
    operation: OperationDefinitionNode | None,
    variables: Mapping[str, Any] | None,
    default_page_size: int,
) -> Analysis:
    """Measure every operation of `document`; the cost is that of `operation` (the one to
    run), with its variables and their defaults."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    walk = _Walk(shape, fragments, variables or {}, _defaults(operation), default_page_size)
    sums = _Sum()
    nodes = 0
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        root = shape.schema.get_root_type(definition.operation)
        measure = _run(walk.selection_set(definition.selection_set, root, None))
        sums.add(measure)
        if definition is operation:
            nodes = measure.nodes
    total = sums.measure()
    return Analysis(
        depth=total.depth,
        type_depth=total.type_depth,
        fields=total.fields,
        aliases=total.aliases,
        introspection_roots=total.introspection_roots,
        introspection=total.introspection,
        nodes=nodes,
        visited=walk.visited,
        fragment_analyses=walk.fragment_analyses,
    )


@dataclass(frozen=True)
class DocumentLimits:
    """The limits every document must keep, with what they need to know of the schema."""

    limits: Limits
    shape: SchemaShape
    # No introspection may produce more values than the full introspection query does: it
    # grows with the schema, so GraphiQL and code generators keep working unconfigured.
    introspection_budget: int

    @classmethod
    def of(cls, limits: Limits, schema: GraphQLSchema) -> DocumentLimits:
        """The limits for `schema`, its introspection budget measured on it."""
        shape = SchemaShape.of(schema)
        # Everything a client can ask of introspection at once: every option of graphql-core's
        # (and GraphiQL's) introspection query switched on, `ofType` as deep as allowed.
        everything = get_introspection_query(
            descriptions=True,
            specified_by_url=True,
            directive_is_repeatable=True,
            schema_description=True,
            input_value_deprecation=True,
            experimental_directive_deprecation=True,
            one_of=True,
            type_depth=limits.max_introspection_type_depth,
        )
        full = analyse(
            parse(everything),
            shape,
            operation=None,
            variables=None,
            default_page_size=limits.default_page_size,
        )
        return cls(limits, shape, full.introspection)

    def analyse(
        self,
        document: DocumentNode,
        operation: OperationDefinitionNode | None,
        variables: Mapping[str, Any] | None,
    ) -> Analysis:
        """`analyse` with this schema's shape and the default page size."""
        return analyse(
            document,
            self.shape,
            operation=operation,
            variables=variables,
            default_page_size=self.limits.default_page_size,
        )

    def refusal(self, analysis: Analysis) -> LimitExceeded | None:
        """The first limit `analysis` exceeds, as the error to answer with; None if none."""
        limits, a = self.limits, analysis
        if a.depth > limits.max_depth:
            return TooDeep(
                f"This document nests {a.depth} levels deep; the limit is {limits.max_depth}"
                " (a connection with its `edges { node }` or `nodes` is one level).",
                limit="depth",
                maximum=limits.max_depth,
            )
        if a.type_depth > limits.max_introspection_type_depth:
            return TooDeep(
                f"This document's introspection nests `ofType` {a.type_depth} deep; the limit"
                f" is {limits.max_introspection_type_depth}.",
                limit="introspectionTypeDepth",
                maximum=limits.max_introspection_type_depth,
            )
        if a.aliases > limits.max_aliases:
            return TooManyAliases(
                f"This document uses {a.aliases} aliases; the limit is {limits.max_aliases}.",
                limit="aliases",
                maximum=limits.max_aliases,
            )
        if a.fields > limits.max_fields:
            return TooLarge(
                f"This document selects {a.fields} fields once its fragments are expanded;"
                f" the limit is {limits.max_fields}.",
                limit="fields",
                maximum=limits.max_fields,
            )
        if a.introspection_roots > limits.max_introspection_roots:
            return TooComplex(
                f"This document asks for `__schema` or `__type` {a.introspection_roots} times;"
                f" the limit is {limits.max_introspection_roots}.",
                limit="introspectionRoots",
                maximum=limits.max_introspection_roots,
            )
        if a.introspection > self.introspection_budget:
            return TooComplex(
                f"This introspection could produce {a.introspection} values, more than the"
                f" full introspection query ({self.introspection_budget}); ask for less.",
                limit="introspection",
                maximum=self.introspection_budget,
            )
        if a.nodes > limits.max_nodes:
            return TooComplex(
                f"This operation could return up to {a.nodes} objects; the limit is "
                f"{limits.max_nodes}. Ask for smaller pages (`first`, `last`) or fewer nested"
                " lists.",
                limit="nodes",
                maximum=limits.max_nodes,
            )
        return None
