"""Every root field declares who may call it, every field that reaches a type with a read
rule carries that rule, and each rule is visible: in the SDL and in the field's description.

The checks walk the schema as built (and as committed in schema.graphql), never a hand-kept
list, so a new query, mutation or relation without a rule fails here the moment it exists.
"""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import (
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    ObjectTypeDefinitionNode,
    StringValueNode,
    get_named_type,
    introspection_from_schema,
    parse,
)
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

from app.api.permissions import RuleKind, needs, public, requires, rules_of, signed_in
from app.api.relations import to_one
from app.api.relay import Connection, Edge
from app.platform.permissions import PlatformPermission
from app.rbac.permissions import Permission
from app.schema import build_schema, sdl
from app.users.types import User

RULE_DIRECTIVES = {kind.value for kind in RuleKind} - {RuleKind.NOT_IMPERSONATING.value}
# Which catalog each permission directive draws from.
CATALOGS = {
    "requiresPermission": {p.value for p in Permission},
    "requiresPlatformPermission": {p.value for p in PlatformPermission},
}
ROOTS = ("Query", "Mutation")


def unguarded_in_sdl(text: str) -> list[str]:
    """Root fields of the SDL without exactly one rule directive."""
    missing = []
    for definition in parse(text).definitions:
        if isinstance(definition, ObjectTypeDefinitionNode) and definition.name.value in ROOTS:
            for field in definition.fields or ():
                rules = [
                    d.name.value for d in field.directives or () if d.name.value in RULE_DIRECTIVES
                ]
                if len(rules) != 1:
                    missing.append(f"{definition.name.value}.{field.name.value}: {rules}")
    return missing


def unenforced(schema: strawberry.Schema) -> list[str]:
    """Root fields whose resolver is not wrapped by exactly one rule extension."""
    missing = []
    for root in ROOTS:
        type_def = schema.get_type_by_name(root)
        assert type_def is not None
        for field in type_def.fields:  # type: ignore[union-attr]
            if len([r for r in rules_of(field) if r.is_access_rule]) != 1:
                missing.append(f"{root}.{field.name}")
    return missing


def test_every_root_field_shows_its_rule_in_the_sdl() -> None:
    assert unguarded_in_sdl(sdl()) == []


def test_every_root_field_enforces_its_rule() -> None:
    assert unenforced(build_schema()) == []


def test_permissions_named_in_the_sdl_are_in_their_catalog() -> None:
    named: dict[str, set[str]] = {name: set() for name in CATALOGS}
    for definition in parse(sdl()).definitions:
        if isinstance(definition, ObjectTypeDefinitionNode):
            for field in definition.fields or ():
                for directive in field.directives or ():
                    if directive.name.value in CATALOGS:
                        [argument] = directive.arguments or ()
                        assert isinstance(argument.value, StringValueNode)
                        named[directive.name.value].add(argument.value.value)
    for directive, names in named.items():
        assert names, directive
        assert names <= CATALOGS[directive], directive


def test_the_two_catalogs_share_no_name() -> None:
    # A tenant role can never be given a platform permission by its name, nor the reverse.
    assert not CATALOGS["requiresPermission"] & CATALOGS["requiresPlatformPermission"]


def test_every_table_backed_type_declares_who_may_read_it() -> None:
    # `node(id:)`, relations and payloads reach these types; each makes the decision
    # explicitly (None: nothing beyond the field that reached it, for the tenant), so a new
    # type cannot become readable by accident.
    undecided = []
    for cls in _strawberry_types(build_schema()):
        if "table" in cls.__dict__ and "read_rule" not in cls.__dict__:
            undecided.append(cls.__name__)
        needed = cls.__dict__.get("read_rule")
        if needed is not None:
            catalog = CATALOGS[needed.kind.value]
            assert needed.permission in catalog, cls
    assert undecided == []
    assert {c.__name__ for c in _strawberry_types(build_schema()) if "table" in c.__dict__} >= {
        "Task",
        "PlatformTenant",
        "PlatformAuditLogEntry",
    }


def _strawberry_types(schema: strawberry.Schema) -> list[type[Any]]:
    found = []
    for graphql_type in schema._schema.type_map.values():
        definition = graphql_type.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
        origin = getattr(definition, "origin", None)
        if isinstance(graphql_type, GraphQLObjectType) and isinstance(origin, type):
            found.append(origin)
    return found


# --- fields below the root fields ------------------------------------------------------------


def _origin(graphql_type: Any) -> Any:
    definition = graphql_type.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    return getattr(definition, "origin", None)


def _connection_part(origin: Any) -> bool:
    return isinstance(origin, type) and issubclass(origin, Connection | Edge)


def reached(field_type: GraphQLOutputType) -> Any:
    """The Python type whose objects a field returns: unwrapped from non-null and lists, and
    from a connection (its nodes)."""
    named = get_named_type(field_type)
    origin = _origin(named)
    if _connection_part(origin):
        assert isinstance(named, GraphQLObjectType)
        return _origin(get_named_type(named.fields["nodes"].type))
    return origin


def _non_null(field: GraphQLField) -> bool:
    return isinstance(field.type, GraphQLNonNull) and not isinstance(
        field.type.of_type, GraphQLList
    )


def unguarded_reads(schema: strawberry.Schema) -> list[str]:
    """Fields that reach a type with a read rule (directly, in a list or a connection) but
    neither carry that rule nor an explicit per-object rule, or do not show it in the SDL; and
    non-null ones whose rule can differ from their parent type's (a refusal there would erase
    the parent, and its siblings with it)."""
    problems = []
    for type_name, graphql_type in schema._schema.type_map.items():
        parent = _origin(graphql_type)
        if not isinstance(graphql_type, GraphQLObjectType) or _connection_part(parent):
            continue
        for name, field in graphql_type.fields.items():
            needed = getattr(reached(field.type), "read_rule", None)
            if needed is None:
                continue
            strawberry_field = field.extensions[GraphQLCoreConverter.DEFINITION_BACKREF]
            assert isinstance(strawberry_field, StrawberryField)
            rules = [r for r in rules_of(strawberry_field) if r.is_access_rule]
            shown = {getattr(d, "permission", None) for d in strawberry_field.directives}
            where = f"{type_name}.{name}"
            if not (rules == [needed] or (len(rules) == 1 and rules[0].per_row)):
                problems.append(f"{where}: needs {needed}, carries {rules}")
            elif rules[0].permission not in shown:
                problems.append(f"{where}: its rule is not in the SDL")
            elif (
                type_name not in ROOTS
                and _non_null(field)
                and rules[0] != getattr(parent, "read_rule", None)
            ):
                problems.append(f"{where}: non-null, but its rule differs from its parent's")
    return problems


def test_every_field_reaching_a_guarded_type_carries_its_rule() -> None:
    assert unguarded_reads(build_schema()) == []


def test_every_rule_is_in_the_description_graphiql_and_codegen_show() -> None:
    # Introspection carries descriptions but not applied directives: the sentence is what a
    # developer in GraphiQL's docs (or a generated client's doc comments) sees.
    schema = build_schema()
    introspected = introspection_from_schema(schema._schema)["__schema"]
    descriptions = {
        (t["name"], f["name"]): f["description"] or ""
        for t in introspected["types"]
        for f in t.get("fields") or ()
    }
    missing = []
    for graphql_type in schema._schema.type_map.values():
        if not isinstance(graphql_type, GraphQLObjectType):
            continue
        for name, field in graphql_type.fields.items():
            strawberry_field = field.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if not isinstance(strawberry_field, StrawberryField):
                continue
            for rule in rules_of(strawberry_field):
                if rule.sentence not in descriptions[graphql_type.name, name]:
                    missing.append(f"{graphql_type.name}.{name}: {rule.sentence}")
    assert missing == []
    mutations = [d for (t, _), d in descriptions.items() if t == "Mutation"]
    assert len(mutations) > 50
    assert all("Requires " in d or "Open to anyone" in d for d in mutations)
    assert descriptions["Mutation", "createTask"].endswith(
        "Requires the `task:write:own` permission."
    )


# --- the checks can fail ---------------------------------------------------------------------


@strawberry.type
class _Query:
    @strawberry.field
    def open_door(self) -> int:
        return 1

    @strawberry.field(extensions=public())
    def fine(self) -> int:
        return 1

    @strawberry.field(extensions=[*signed_in(), *requires(Permission.AUDIT_READ)])
    def two_rules(self) -> int:
        return 1


@strawberry.type
class _Mutation:
    @strawberry.mutation
    def unguarded(self) -> int:
        return 1


@strawberry.type
class _Holder:
    pk: strawberry.Private[Any]
    owner_id: strawberry.Private[Any]

    # A relation declared by hand, without the toolkit: no rule.
    @strawberry.field
    def owner(self) -> User | None:
        return None

    # Declared with the toolkit, but non-null although the holder's rule (none) differs.
    boss = to_one(User, key="owner_id", nullable=False, description="Its boss.")
    # A rule, but not the one of the type it reaches.
    keeper = to_one(
        User,
        key="owner_id",
        nullable=True,
        rule=needs(Permission.PROJECT_READ),
        description="Its keeper.",
    )


@strawberry.type(name="ReadQuery")
class _ReadQuery:
    @strawberry.field(extensions=public())
    def holder(self) -> _Holder | None:
        return None

    @strawberry.field(extensions=public())
    def people(self) -> list[User]:
        return []


def test_the_walk_detects_relations_without_their_rule() -> None:
    broken: Any = strawberry.Schema(query=_ReadQuery)

    assert sorted(p.split(":")[0] for p in unguarded_reads(broken)) == [
        "Holder.boss",
        "Holder.keeper",
        "Holder.owner",
        "ReadQuery.people",
    ]


def test_the_checks_detect_unguarded_fields() -> None:
    broken: Any = strawberry.Schema(query=_Query, mutation=_Mutation)

    assert unenforced(broken) == ["Query.open_door", "Query.two_rules", "Mutation.unguarded"]
    assert sorted(m.split(":")[0] for m in unguarded_in_sdl(broken.as_str())) == [
        "Mutation.unguarded",
        "Query.openDoor",
        "Query.twoRules",
    ]
