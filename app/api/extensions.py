"""Schema extensions and validation rules, built once at start-up.

Validation rule *classes* are created here once; per request only a trivial extension
object carrying the same tuple is made, so Strawberry's shared validation cache keeps
hitting (a rule class created per request misses it every time: ~10x slower).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

from graphql import ASTValidationRule, FieldNode, GraphQLError, get_operation_ast
from graphql.type import GraphQLSchema
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.types.graphql import OperationType

from app.api.context import Context, OperationSummary
from app.api.cost import CostLimit
from app.api.errors import ErrorMasking
from app.api.inputs import StringInputs
from app.core.settings import Limits


class OperationTransaction(SchemaExtension):
    """One transaction per operation: read-only for queries, committed or rolled back once.

    A mutation whose execution raised an unexpected error is rolled back as a whole;
    expected failures are typed results and each mutation undoes its own writes
    (Session.atomic) before returning them.
    """

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context.context
        assert isinstance(context, Context)
        is_query = self.execution_context.operation_type == OperationType.QUERY
        context.session.readonly = is_query
        if context.principal is not None and context.principal.impersonated:
            # Before anything runs and outside the operation's transaction (not yet open),
            # so a refused, failed or rolled-back operation is on record too.
            await context.record_impersonated_operation(self._summary())
        yield

    def _summary(self) -> OperationSummary:
        execution = self.execution_context
        fields: tuple[str, ...] = ()
        document = execution.graphql_document
        operation = (
            None if document is None else get_operation_ast(document, execution.operation_name)
        )
        if operation is not None:
            fields = tuple(
                s.name.value for s in operation.selection_set.selections if isinstance(s, FieldNode)
            )
        return OperationSummary(
            kind=execution.operation_type.value,
            name=operation.name.value if operation is not None and operation.name else None,
            fields=fields,
        )

    async def on_operation(self) -> AsyncIterator[None]:
        yield
        context = self.execution_context.context
        if not isinstance(context, Context):
            return
        result = self.execution_context.result
        failed = bool(getattr(result, "errors", None))
        await context.session.close(commit=not failed)


class ReportingParserCache(ParserCache):
    """ParserCache whose parse errors reach the client like every other error.

    Strawberry's ParserCache parses in its hook, outside the executor's error handling, so a
    syntax or token-limit error skipped ErrorMasking (no `extensions.code`). On failure this
    leaves the document unparsed and Strawberry parses (and reports) it itself.
    """

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        try:
            context.graphql_document = self.cached_parse_document(
                context.query, **context.parse_options
            )
        except GraphQLError:
            context.graphql_document = None
        yield


ExtensionFactory = Callable[[], SchemaExtension]


def build_extensions(limits: Limits, *, introspection: bool) -> list[ExtensionFactory]:
    rules: list[type[ASTValidationRule]] = [
        *QueryDepthLimiter(max_depth=limits.max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=limits.max_aliases).validation_rules,
    ]
    if not introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    frozen_rules = list(rules)
    return [
        ErrorMasking,
        OperationTransaction,
        StringInputs,
        lambda: MaxTokensLimiter(max_token_count=limits.max_tokens),
        lambda: CostLimit(max_nodes=limits.max_nodes, default_page_size=limits.default_page_size),
        lambda: ReportingParserCache(maxsize=256),
        lambda: AddValidationRules(frozen_rules),
        lambda: ValidationCache(maxsize=256),
    ]


__all__ = ["GraphQLSchema", "build_extensions"]
