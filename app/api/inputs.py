"""One check of every string a client sends, before any resolver runs.

PostgreSQL text cannot hold NUL and UTF-8 cannot hold a lone surrogate (JSON's "\\ud800"
escape carries one into a Python str), so a string holding either can only fail later, deep
in a service or a driver, as an internal error. Every string input reaches the operation as
a literal in the document or inside a variable's JSON; this walks the arguments of the
fields and directives the operation selects (fragments once each), follows each variable
into its value or its default, and refuses the first such string as `INVALID`, naming the
argument or input field the way services do (`title`, `owner.email`: inside the `input`
argument, relative to it). Services keep their own, stricter checks (app/core/validation.py).

It runs as the operation starts executing (it needs the variables), after validation and
before the executor coerces anything.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    VariableNode,
    get_operation_ast,
)
from strawberry.extensions import SchemaExtension

from app.core.validation import encodable, not_allowed


def refused_string(
    document: DocumentNode, operation_name: str | None, variables: Mapping[str, Any] | None
) -> tuple[str, ArgumentNode] | None:
    """(field, argument) of the first string input no service could store, or None."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return None
    defaults = {
        d.variable.name.value: d.default_value for d in operation.variable_definitions or ()
    }
    given = variables or {}
    for argument in _arguments(document, operation):
        # Iterative: a value may be nested as deep as the parser allows.
        pending: list[tuple[object, tuple[str, ...]]] = [(argument.value, (argument.name.value,))]
        while pending:
            value, path = pending.pop()
            if isinstance(value, VariableNode):
                name = value.name.value
                value = given[name] if name in given else defaults.get(name)
            if isinstance(value, StringValueNode):
                value = value.value
            if isinstance(value, str):
                if not encodable(value):
                    return _field(path), argument
            # Children pushed in reverse: the first offending string in reading order wins.
            elif isinstance(value, ObjectValueNode):
                pending += [(f.value, (*path, f.name.value)) for f in reversed(value.fields)]
            elif isinstance(value, ListValueNode):
                pending += [(v, path) for v in reversed(value.values)]
            elif isinstance(value, dict):
                pending += [(v, (*path, str(k))) for k, v in reversed(value.items())]
            elif isinstance(value, list):
                pending += [(v, path) for v in reversed(value)]
    return None


def _field(path: tuple[str, ...]) -> str:
    # Services name input fields relative to the `input` argument (`owner.email`).
    return ".".join(path[1:] if path[0] == "input" and len(path) > 1 else path)


def _arguments(
    document: DocumentNode, operation: OperationDefinitionNode
) -> Iterator[ArgumentNode]:
    """Arguments of the fields and directives the operation selects, each fragment once."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    seen: set[str] = set()
    pending: list[SelectionSetNode] = [operation.selection_set]
    while pending:
        for selection in pending.pop().selections:
            for directive in selection.directives or ():
                yield from directive.arguments or ()
            if isinstance(selection, FieldNode):
                yield from selection.arguments or ()
                if selection.selection_set is not None:
                    pending.append(selection.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name not in seen and name in fragments:
                    seen.add(name)
                    pending.append(fragments[name].selection_set)


class StringInputs(SchemaExtension):
    """Refuses an operation with a string input no service could store before it runs."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        if context.result is None and context.graphql_document is not None:
            refused = refused_string(
                context.graphql_document, context.operation_name, context.variables
            )
            if refused is not None:
                field, argument = refused
                error = not_allowed(field)
                # Strawberry skips execution when a result is already there.
                context.result = ExecutionResult(
                    data=None,
                    errors=[GraphQLError(error.message, argument, original_error=error)],
                )
        yield
