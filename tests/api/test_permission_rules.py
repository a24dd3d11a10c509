"""Every root field declares who may call it, visibly in the SDL, and node types declare who
may read them through `node(id:)`.

The checks walk the schema as built (and as committed in schema.graphql), never a hand-kept
list, so a new query or mutation without a rule fails here the moment it exists.
"""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import ObjectTypeDefinitionNode, StringValueNode, parse
from strawberry.permission import PermissionExtension

from app.api.permissions import RULE_CLASSES, public, requires, signed_in
from app.api.relay import Node
from app.platform.permissions import PlatformPermission
from app.rbac.permissions import Permission
from app.schema import build_schema, sdl

RULE_DIRECTIVES = {
    "requiresPermission",
    "signedIn",
    "public",
    "requiresPlatformPermission",
    "platformSignedIn",
}
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
            rules = [
                permission
                for extension in field.extensions
                if isinstance(extension, PermissionExtension)
                for permission in extension.permissions
                if isinstance(permission, RULE_CLASSES)
            ]
            if len(rules) != 1:
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


def test_every_node_type_declares_who_may_read_it() -> None:
    # `node(id:)` reaches every node type; each makes the decision explicitly (None: any
    # signed-in user of the tenant), so a new type cannot become readable by accident.
    undecided = []
    pending: list[type[Node]] = list(Node.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if "table" in cls.__dict__ and "read_permission" not in cls.__dict__:
            undecided.append(cls.__name__)
        needed = cls.__dict__.get("read_permission")
        assert needed is None or needed in {p.value for p in Permission}, cls
    assert undecided == []


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


def test_the_checks_detect_unguarded_fields() -> None:
    broken: Any = strawberry.Schema(query=_Query, mutation=_Mutation)

    assert unenforced(broken) == ["Query.open_door", "Query.two_rules", "Mutation.unguarded"]
    assert sorted(m.split(":")[0] for m in unguarded_in_sdl(broken.as_str())) == [
        "Mutation.unguarded",
        "Query.openDoor",
        "Query.twoRules",
    ]
