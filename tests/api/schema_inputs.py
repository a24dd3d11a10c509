"""Every place a client can put a string into the API, found by walking the schema.

For each root field and each string-typed position in its arguments (arguments, input-object
fields at any depth, list elements) a `StringInput` builds a valid operation with every
other required argument filled in, and the same operation with a chosen string at that
position, sent as a variable or written as a literal in the document.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from graphql import (
    GraphQLArgument,
    GraphQLField,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLSchema,
    get_named_type,
    is_enum_type,
    is_input_object_type,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
)
from graphql.language.print_string import print_string
from graphql.pyutils import Undefined

# Values that pass coercion for the scalars that are not strings (and for our own scalars,
# which are strings on the wire).
_SAMPLES: dict[str, Any] = {
    "Int": 1,
    "Float": 1.0,
    "Boolean": False,
    "String": "x",
    "ID": "x",
    "Date": "2030-01-01",
    "DateTime": "2030-01-01T00:00:00+00:00",
    "JSON": {},
}
# Scalars a client writes as strings (so a NUL can be in them).
_STRINGS = {"String", "ID", "Date", "DateTime"}


@dataclass(frozen=True)
class StringInput:
    """One string position: `path` runs from the argument through input-object fields."""

    kind: str  # "query" or "mutation"
    field_name: str
    field: GraphQLField
    path: tuple[str, ...]
    # The position's scalar: String, ID, or one of ours written as a string (Date).
    scalar: str

    @property
    def id(self) -> str:
        return f"{self.field_name}({'.'.join(self.path)})"

    @property
    def expected_field(self) -> str:
        """How errors name it: input fields relative to the `input` argument, as every
        service names them (`owner.email`), other arguments by their name."""
        path = self.path[1:] if self.path[0] == "input" and len(self.path) > 1 else self.path
        return ".".join(path)

    def _arguments(self) -> dict[str, GraphQLArgument]:
        target = self.path[0]
        return {
            name: argument
            for name, argument in self.field.args.items()
            if name == target
            or (is_non_null_type(argument.type) and argument.default_value is Undefined)
        }

    def _values(self, text: str) -> dict[str, Any]:
        arguments = self._arguments()
        values = {name: sample(argument.type) for name, argument in arguments.items()}
        values[self.path[0]] = _put(
            values[self.path[0]], arguments[self.path[0]].type, self.path[1:], text
        )
        return values

    def with_variables(self, text: str) -> tuple[str, dict[str, Any]]:
        """The operation taking every argument as a variable, `text` at this position."""
        arguments = self._arguments()
        declared = ", ".join(f"${name}: {argument.type}" for name, argument in arguments.items())
        passed = ", ".join(f"{name}: ${name}" for name in arguments)
        return (
            f"{self.kind}({declared}) {{ {self.field_name}({passed}){self._selection()} }}",
            self._values(text),
        )

    def with_literals(self, text: str) -> str:
        """The operation with every argument written out in the document."""
        arguments = self._arguments()
        values = self._values(text)
        passed = ", ".join(
            f"{name}: {_literal(values[name], argument.type)}"
            for name, argument in arguments.items()
        )
        return f"{self.kind} {{ {self.field_name}({passed}){self._selection()} }}"

    def _selection(self) -> str:
        return "" if is_leaf_type(get_named_type(self.field.type)) else " { __typename }"


def string_inputs(schema: GraphQLSchema) -> list[StringInput]:
    """Every string position of every root field's arguments."""
    found: list[StringInput] = []
    roots = [("query", schema.query_type), ("mutation", schema.mutation_type)]
    for kind, root in roots:
        assert root is not None
        for name, field in root.fields.items():
            for argument_name, argument in field.args.items():
                for path, scalar in _string_paths(argument.type, (argument_name,), ()):
                    found.append(StringInput(kind, name, field, path, scalar))
    return found


def _string_paths(
    type_: GraphQLInputType, path: tuple[str, ...], seen: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], str]]:
    named = get_named_type(type_)
    if isinstance(named, GraphQLScalarType) and named.name in _STRINGS:
        yield path, named.name
    elif isinstance(named, GraphQLInputObjectType) and named.name not in seen:
        for name, field in named.fields.items():
            yield from _string_paths(field.type, (*path, name), (*seen, named.name))


def sample(type_: GraphQLInputType) -> Any:
    """A value of `type_` that passes coercion: required input fields only, one list item."""
    if isinstance(type_, GraphQLNonNull):
        return sample(type_.of_type)
    if isinstance(type_, GraphQLList):
        return [sample(type_.of_type)]
    if is_enum_type(type_):
        return next(iter(type_.values))  # type: ignore[attr-defined]
    if is_input_object_type(type_):
        return {
            name: sample(field.type)
            for name, field in type_.fields.items()  # type: ignore[attr-defined]
            if _required(field)
        }
    return _SAMPLES[type_.name]  # type: ignore[attr-defined]


def _required(field: GraphQLInputField) -> bool:
    return is_non_null_type(field.type) and field.default_value is Undefined


def _put(value: Any, type_: GraphQLInputType, path: tuple[str, ...], text: str) -> Any:
    if isinstance(type_, GraphQLNonNull):
        return _put(value, type_.of_type, path, text)
    if is_list_type(type_):
        return [_put(None, type_.of_type, path, text)]  # type: ignore[attr-defined]
    if not path:
        return text
    assert isinstance(type_, GraphQLInputObjectType)
    current = dict(value) if isinstance(value, dict) else sample(type_)
    field_type = type_.fields[path[0]].type
    current[path[0]] = _put(current.get(path[0]), field_type, path[1:], text)
    return current


def _literal(value: Any, type_: GraphQLInputType) -> str:
    """`value` written as a GraphQL literal of `type_`."""
    if isinstance(type_, GraphQLNonNull):
        return _literal(value, type_.of_type)
    if isinstance(type_, GraphQLList):
        return "[" + ", ".join(_literal(item, type_.of_type) for item in value) + "]"
    if isinstance(type_, GraphQLInputObjectType):
        fields = ", ".join(f"{k}: {_literal(v, type_.fields[k].type)}" for k, v in value.items())
        return "{" + fields + "}"
    if is_enum_type(type_):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return print_string(value)
    if isinstance(value, dict):
        return "{}"
    return str(value)
