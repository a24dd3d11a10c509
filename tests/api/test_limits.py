"""The static limits of a document (app/api/limits.py): what they measure, that measuring does
work linear in the document's length however large its expansion, and that the server refuses
documents over a limit before graphql-core or any resolver sees them.

The linear-work properties count the analysis' own work (selections visited, fragment bodies
analysed) on documents hypothesis generates to be adversarial: fragment chains with fan-out,
wide fragments, aliases and inline fragments at every level, introspection cycles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLList,
    GraphQLNonNull,
    InlineFragmentNode,
    Node,
    Visitor,
    get_introspection_query,
    get_operation_ast,
    introspection_types,
    parse,
    print_ast,
    visit,
)
from hypothesis import given
from hypothesis import strategies as st

from app.api.limits import SATURATED, Analysis, DocumentLimits
from app.core.settings import Limits
from app.schema import build_schema
from tests.app_fixtures import COST_1, GraphQL, Org

LIMITS = Limits()
CHECKER = DocumentLimits.of(LIMITS, build_schema()._schema)
# Introspection: the states a fragment can be analysed in: outside introspection, per object,
# or over one of the sets of distinct schema members a chain of lists can reach from a root
# (all types; all their fields, arguments, input fields or enum values; all directives and
# their arguments; one type's fields, their arguments, ...): 2 + 10 in this schema.
INTROSPECTION_STATES = 16


@pytest.fixture
async def org(org: Org, gql: GraphQL) -> Org:
    """The shared org, with its status already known to the server (authentication reads it
    at most every few seconds): `statements` then sees only what a request itself runs."""
    await gql("{ __typename }", token=org.token)
    return org


def analysed(document: str, variables: dict[str, Any] | None = None) -> Analysis:
    parsed = parse(document)
    return CHECKER.analyse(parsed, get_operation_ast(parsed), variables)


def refused(document: str) -> tuple[str, str] | None:
    error = CHECKER.refusal(analysed(document))
    return None if error is None else (error.code, error.limit)


class _Size(Visitor):
    """The document as written: selections and fragment definitions."""

    def __init__(self) -> None:
        super().__init__()
        self.selections = 0
        self.fragments = 0

    def enter(self, node: Node, *_: object) -> None:
        if isinstance(node, FieldNode | FragmentSpreadNode | InlineFragmentNode):
            self.selections += 1
        elif isinstance(node, FragmentDefinitionNode):
            self.fragments += 1


def size_of(document: str) -> _Size:
    size = _Size()
    visit(parse(document), size)
    return size


# --- What is measured --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "depth"),
    [
        ("{ __typename }", 0),
        ("{ viewer { email } }", 1),
        # A connection with its `nodes`, or its `edges { node }`, is one level.
        ("{ projects { nodes { id } } }", 1),
        ("{ projects { edges { cursor node { id } } } }", 1),
        ("{ projects { nodes { tasks { edges { node { project { id } } } } } } }", 3),
        # pageInfo is an object of its own.
        ("{ projects { pageInfo { hasNextPage } } }", 2),
        # Through fragments and inline fragments alike.
        (
            "{ ...Q } fragment Q on Query { projects { ...C } } fragment C on ProjectConnection"
            " { nodes { ... on Project { tasks { nodes { id } } } } }",
            2,
        ),
        # `ofType` is counted on its own (GraphiQL's introspection nests it 9 deep).
        ('{ __type(name: "Query") { fields { type { ofType { ofType { name } } } } } }', 3),
    ],
)
def test_depth_counts_object_levels(document: str, depth: int) -> None:
    assert analysed(document).depth == depth


def test_fields_and_aliases_count_every_expansion() -> None:
    # given: V (2 fields, 1 alias) spread twice directly and twice through W
    document = """
        { ...V ...V ...W a: viewer { id } }
        fragment V on Query { b: __typename viewer { email } }
        fragment W on Query { ...V ... on Query { ...V } }
    """

    # when
    analysis = analysed(document)

    # then
    assert analysis.fields == 4 * 3 + 2
    assert analysis.aliases == 4 * 1 + 1
    assert analysis.fragment_analyses == 2


def test_a_fragment_cycle_ends() -> None:
    analysis = analysed("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }")

    assert analysis.fields == 0
    assert analysis.fragment_analyses == 2


def test_the_full_introspection_query_is_within_every_limit() -> None:
    # given: every option on, GraphiQL's `ofType` depth
    document = get_introspection_query(
        descriptions=True,
        specified_by_url=True,
        directive_is_repeatable=True,
        schema_description=True,
        input_value_deprecation=True,
        experimental_directive_deprecation=True,
        one_of=True,
        type_depth=LIMITS.max_introspection_type_depth,
    )

    # when
    analysis = analysed(document)

    # then: the introspection budget is what this query produces
    assert refused(document) is None
    assert analysis.introspection == CHECKER.introspection_budget
    assert analysis.type_depth == LIMITS.max_introspection_type_depth


def test_every_introspection_list_has_a_size() -> None:
    # A list of the introspection schema without one would count as saturated (refused).
    lists = {
        (type_.name, name)
        for type_ in introspection_types.values()
        for name, field in getattr(type_, "fields", {}).items()
        if isinstance(
            field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type,
            GraphQLList,
        )
    }

    assert lists == set(CHECKER.shape.lists)


@pytest.mark.parametrize(
    ("document", "refusal"),
    [
        # The probe's cycle: a type's fields' types' fields' …
        (
            "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }",
            ("QUERY_TOO_COMPLEX", "introspection"),
        ),
        (
            '{ __type(name: "Mutation") {'
            " fields { type { fields { type { fields { name } } } } } } }",
            ("QUERY_TOO_COMPLEX", "introspection"),
        ),
        # Each type's possible types' interfaces' possible types' …
        (
            "{ __schema { types { possibleTypes { interfaces { possibleTypes { interfaces {"
            " possibleTypes { fields { args { name } } } } } } } } } }",
            ("QUERY_TOO_COMPLEX", "introspection"),
        ),
        # The full query twice, under two aliases.
        (
            "{ a: __schema { ...S } b: __schema { ...S } }"
            " fragment S on __Schema { types { fields { args { name type { name } } } } }"
            " fragment T on __Type { name }",
            None,
        ),
        (
            "{ " + " ".join(f'a{i}: __type(name: "Query") {{ name }}' for i in range(4)) + " }",
            ("QUERY_TOO_COMPLEX", "introspectionRoots"),
        ),
        (
            '{ __type(name: "Query") { '
            + "ofType { " * (LIMITS.max_introspection_type_depth + 1)
            + "name"
            + " }" * (LIMITS.max_introspection_type_depth + 1)
            + " } }",
            ("QUERY_TOO_DEEP", "introspectionTypeDepth"),
        ),
    ],
    ids=[
        "types-fields-cycle",
        "type-fields-cycle",
        "possible-types-cycle",
        "two-roots",
        "four-roots",
        "of-type-depth",
    ],
)
def test_introspection_is_bounded(document: str, refusal: tuple[str, str] | None) -> None:
    assert refused(document) == refusal


def full_introspection_twice() -> str:
    """GraphiQL's selection of `__schema` under two aliases: twice the full schema."""
    parsed = parse(get_introspection_query(descriptions=True))
    operation = get_operation_ast(parsed)
    assert operation is not None
    root = operation.selection_set.selections[0]
    assert isinstance(root, FieldNode)
    selection = print_ast(root.selection_set)  # type: ignore[arg-type]
    fragments = " ".join(print_ast(d) for d in parsed.definitions if d is not operation)
    return f"{{ a: __schema {selection} b: __schema {selection} }} {fragments}"


def test_the_full_introspection_twice_is_over_the_budget() -> None:
    assert refused(get_introspection_query(descriptions=True)) is None
    assert refused(full_introspection_twice()) == ("QUERY_TOO_COMPLEX", "introspection")


# --- Linear work on adversarial documents ------------------------------------------------------


@dataclass(frozen=True)
class Generated:
    text: str
    introspection: bool


def _chain(fragments: int, fan_out: int, body: str, on: str = "Query") -> str:
    """F0 holds `body`; each further fragment spreads the one before `fan_out` times."""
    parts = [f"fragment F0 on {on} {{ {body} }}"]
    for i in range(1, fragments):
        parts.append(f"fragment F{i} on {on} {{ {' '.join([f'...F{i - 1}'] * fan_out)} }}")
    return " ".join(parts)


@st.composite
def fragment_chains(draw: st.DrawFn) -> Generated:
    n = draw(st.integers(1, 60))
    fan_out = draw(st.integers(1, 8))
    body = draw(
        st.sampled_from(
            [
                "__typename",
                "a: __typename b: viewer { id }",
                "projects(first: 3) { nodes { id tasks { nodes { id } } } }",
                "... on Query { ... on Query { x: __typename } }",
            ]
        )
    )
    return Generated(f"{{ ...F{n - 1} }} " + _chain(n, fan_out, body), introspection=False)


@st.composite
def wide_fragments(draw: st.DrawFn) -> Generated:
    width = draw(st.integers(1, 200))
    spreads = draw(st.integers(1, 200))
    fields = " ".join(f"f{i}: __typename" for i in range(width))
    operation = "{ " + " ".join(["...W"] * spreads) + " }"
    return Generated(f"{operation} fragment W on Query {{ {fields} }}", introspection=False)


@st.composite
def nested_aliases_and_inline_fragments(draw: st.DrawFn) -> Generated:
    # Five selection sets a level: graphql-core parses at most 200 nested.
    levels = draw(st.integers(1, 35))
    fan_out = draw(st.integers(1, 8))
    inner = "id"
    for level in range(levels):
        leaves = " ".join(f"b{level}_{i}: id" for i in range(fan_out))
        task = f"... on Task {{ {leaves} project {{ ... {{ {inner} }} }} }}"
        inner = f"a{level}: tasks {{ nodes {{ {task} }} }}"
    return Generated(f"{{ project(id: 1) {{ {inner} }} }}", introspection=False)


@st.composite
def introspection_cycles(draw: st.DrawFn) -> Generated:
    n = draw(st.integers(1, 40))
    fan_out = draw(st.integers(1, 4))
    hop = draw(st.sampled_from(["fields { type {", "possibleTypes {", "interfaces {", "ofType {"]))
    closing = "}" * hop.count("{")
    parts = ["fragment T0 on __Type { name kind }"]
    for i in range(1, n):
        spreads = " ".join([f"...T{i - 1}"] * fan_out)
        parts.append(f"fragment T{i} on __Type {{ {spreads} {hop} {spreads} {closing} }}")
    root = draw(st.sampled_from(["__schema { types { ...X } }", '__type(name: "Query") { ...X }']))
    operation = "{ " + root.replace("...X", f"...T{n - 1}") + " }"
    return Generated(operation + " " + " ".join(parts), introspection=True)


ADVERSARIAL = st.one_of(
    fragment_chains(),
    wide_fragments(),
    nested_aliases_and_inline_fragments(),
    introspection_cycles(),
)


@given(ADVERSARIAL)
def test_the_work_is_linear_in_the_documents_length(generated: Generated) -> None:
    # given
    size = size_of(generated.text)
    states = INTROSPECTION_STATES if generated.introspection else 1

    # when
    analysis = analysed(generated.text)

    # then: each selection written is looked at once per state, each fragment analysed once
    # per state, whatever the expansion (up to 8^59 fields here)
    assert analysis.visited <= states * size.selections
    assert analysis.fragment_analyses <= states * size.fragments


@given(st.integers(2, 60), st.integers(1, 8))
def test_the_work_of_a_chain_grows_by_a_constant_per_fragment(n: int, fan_out: int) -> None:
    # given: the probe's shape, one fragment longer
    shorter = analysed(f"{{ ...F{n - 2} }} " + _chain(n - 1, fan_out, "__typename"))
    longer = analysed(f"{{ ...F{n - 1} }} " + _chain(n, fan_out, "__typename"))

    # then: one more fragment is one more analysis and `fan_out` more selections, while the
    # expansion multiplies by `fan_out`
    assert longer.fragment_analyses - shorter.fragment_analyses == 1
    assert longer.visited - shorter.visited == fan_out
    assert longer.fields == min(shorter.fields * fan_out, SATURATED)


@st.composite
def small_documents(draw: st.DrawFn) -> tuple[str, int]:
    """Random acyclic fragments over a few root fields, with their expanded field count
    computed by expanding them (small enough to expand)."""
    count = draw(st.integers(1, 6))
    bodies: list[str] = []
    sizes: list[int] = []
    for i in range(count):
        items = draw(st.lists(st.integers(0, 3 + i), min_size=1, max_size=5))
        text: list[str] = []
        fields = 0
        for item in items:
            if item == 0:
                text.append("__typename")
                fields += 1
            elif item == 1:
                text.append("v: viewer { id email }")
                fields += 3
            elif item == 2:
                text.append("... on Query { __typename }")
                fields += 1
            elif item >= 4 and i > 0:
                target = (item - 4) % i
                text.append(f"...G{target}")
                fields += sizes[target]
            else:
                text.append("tenant { slug }")
                fields += 2
        bodies.append(f"fragment G{i} on Query {{ {' '.join(text)} }}")
        sizes.append(fields)
    return f"{{ ...G{count - 1} }} " + " ".join(bodies), sizes[-1]


@given(small_documents())
def test_the_count_matches_an_actual_expansion(document: tuple[str, int]) -> None:
    text, expanded = document

    assert analysed(text).fields == expanded


# --- The server refuses before anything else runs ----------------------------------------------


def probe_document(chain: int) -> str:
    """The probe's ~1 KB document: each fragment spreads the previous one twice."""
    return f"{{ ...F{chain} }} fragment F0 on Query {{ __typename }} " + " ".join(
        f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, chain + 1)
    )


@pytest.mark.parametrize(("chain", "signed_in"), [(12, False), (24, True)])
async def test_the_probes_fragment_chain_is_refused_before_any_sql(
    gql: GraphQL, org: Org, statements: list[str], chain: int, signed_in: bool
) -> None:
    # when: the probe's 25 fragments (251 tokens) signed in; anonymous, a shorter chain
    # (anonymous documents may hold 250 tokens: the probe's is refused by the parser)
    body = await gql(probe_document(chain), token=org.token if signed_in else None)

    # then: 2^chain fields once expanded, refused without expanding them
    assert "data" not in body
    [error] = body["errors"]
    assert error["extensions"] == {
        "code": "QUERY_TOO_LARGE",
        "limit": "fields",
        "maximum": LIMITS.max_fields,
    }
    assert f"selects {2**chain} fields" in error["message"]
    assert statements == []


async def test_fields_at_the_limit_are_answered(gql: GraphQL, org: Org) -> None:
    # given: 512 + 256 + 128 + 64 + 32 + 8 = 1000 fields once expanded
    document = "{ ...F9 ...F8 ...F7 ...F6 ...F5 ...F3 } " + _chain(10, 2, "__typename")
    assert analysed(document).fields == LIMITS.max_fields

    # when
    data = await gql.data(document, token=org.token)

    # then
    assert data == {"__typename": "Query"}


async def test_the_full_introspection_is_answered_within_the_bounds(gql: GraphQL) -> None:
    # when: GraphiQL's query, anonymous (GraphiQL asks before anyone signs in)
    data = await gql.data(get_introspection_query(descriptions=True))

    # then
    assert {"Query", "Mutation", "Project"} <= {t["name"] for t in data["__schema"]["types"]}


@pytest.mark.parametrize(
    ("document", "code", "limit"),
    [
        # The probe's 2.9 MB answer came from the full introspection repeated under aliases.
        (full_introspection_twice(), "QUERY_TOO_COMPLEX", "introspection"),
        (
            "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }",
            "QUERY_TOO_COMPLEX",
            "introspection",
        ),
        (
            "{ " + " ".join(f'a{i}: __type(name: "Query") {{ name }}' for i in range(4)) + " }",
            "QUERY_TOO_COMPLEX",
            "introspectionRoots",
        ),
        (
            '{ __type(name: "Query") { ' + "ofType { " * 10 + "name" + " }" * 10 + " } }",
            "QUERY_TOO_DEEP",
            "introspectionTypeDepth",
        ),
    ],
    ids=["twice", "cycle", "roots", "of-type-depth"],
)
async def test_introspection_over_its_bounds_is_refused(
    gql: GraphQL, statements: list[str], document: str, code: str, limit: str
) -> None:
    # when
    body = await gql(document)

    # then
    assert "data" not in body
    [error] = body["errors"]
    assert (error["extensions"]["code"], error["extensions"]["limit"]) == (code, limit)
    assert statements == []


async def test_repeating_the_same_field_exhausts_the_validation_budget(
    gql: GraphQL, org: Org
) -> None:
    # given: 40 times `viewer { id email }`, no alias, 120 fields: within every static limit, but
    # graphql-core compares every pair of the 40 (and of their subfields)
    document = "{ " + "viewer { id email } " * 40 + "}"
    assert refused(document) is None

    # when
    body = await gql(document, token=org.token)

    # then
    assert "data" not in body
    [error] = body["errors"]
    assert error["extensions"] == {
        "code": "QUERY_TOO_COMPLEX",
        "limit": "validation",
        "maximum": LIMITS.validation_budget,
    }


async def test_anonymous_documents_have_a_smaller_token_limit(gql: GraphQL, org: Org) -> None:
    # given: 16 tokens around the enum values
    document = (
        "{ tasks(filter: {status: [" + "TODO " * (LIMITS.max_anonymous_tokens - 15) + "]}) {"
        " totalCount } }"
    )

    # when
    anonymous = await gql(document)
    signed_in = await gql(document, token=org.token)

    # then
    [error] = anonymous["errors"]
    assert f"more than {LIMITS.max_anonymous_tokens} tokens" in error["message"]
    assert error["extensions"] == {
        "code": "QUERY_TOO_LARGE",
        "limit": "tokens",
        "maximum": LIMITS.max_anonymous_tokens,
    }
    assert signed_in == {"data": {"tasks": {"totalCount": 0}}, "extensions": COST_1}
