"""The cost limit: how many objects an operation could return, checked before it runs.

Depth and alias limits bound a document's shape, not its size: three nested connections at
`first: 100` could return a million objects. The estimate multiplies `first` down every
path (a connection without `first` counts the default page size) and adds up the objects
each connection could return. It needs the operation's variables, so it runs as the
operation starts executing, not as a validation rule (whose results are cached per text).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
)
from strawberry.extensions import SchemaExtension

from app.core.errors import DomainError


class TooComplex(DomainError):
    code = "QUERY_TOO_COMPLEX"


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    for operation in operations:
        if name is None or (operation.name is not None and operation.name.value == name):
            return operation
    return None


def estimated_nodes(
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    *,
    default_page_size: int,
) -> int:
    """The most objects the operation's connections could return together."""
    operation = _operation(document, operation_name)
    if operation is None:
        return 0
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    values = variables or {}

    def first_of(field: FieldNode) -> int | None:
        for argument in field.arguments or ():
            if argument.name.value != "first":
                continue
            node = argument.value
            if isinstance(node, IntValueNode):
                return int(node.value)
            if isinstance(node, VariableNode):
                value = values.get(node.name.value)
                return value if isinstance(value, int) else default_page_size
            return default_page_size
        # A connection asked for without `first` (it has `edges` or `nodes`) gets a default page.
        selected = {s.name.value for s in _fields(field.selection_set)}
        return default_page_size if {"edges", "nodes"} & selected else None

    def _fields(selection_set: SelectionSetNode | None) -> Iterator[FieldNode]:
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                yield selection
            elif isinstance(selection, InlineFragmentNode):
                yield from _fields(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = fragments.get(selection.name.value)
                if fragment is not None:
                    yield from _fields(fragment.selection_set)

    def cost(selection_set: SelectionSetNode | None, multiplier: int) -> int:
        total = 0
        for field in _fields(selection_set):
            page = first_of(field)
            inner = multiplier if page is None else multiplier * max(page, 0)
            total += (inner if page is not None else 0) + cost(field.selection_set, inner)
        return total

    return cost(operation.selection_set, 1)


class CostLimit(SchemaExtension):
    """Rejects an operation whose estimate exceeds `max_nodes` before anything executes."""

    def __init__(self, *, max_nodes: int, default_page_size: int) -> None:
        super().__init__()
        self.max_nodes = max_nodes
        self.default_page_size = default_page_size

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is not None:
            nodes = estimated_nodes(
                context.graphql_document,
                context.operation_name,
                context.variables,
                default_page_size=self.default_page_size,
            )
            if nodes > self.max_nodes:
                message = (
                    f"This operation could return up to {nodes} objects; the limit is "
                    f"{self.max_nodes}. Ask for smaller pages (`first`) or fewer nested lists."
                )
                error = GraphQLError(message, original_error=TooComplex(message))
                # Strawberry skips execution when a result is already there.
                context.result = ExecutionResult(data=None, errors=[error])
        yield
