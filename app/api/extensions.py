"""Schema extensions and validation rules, built once at start-up.

Validation rule *classes* and the validation cache are created here once; per request only a
trivial extension object pointing at them is made, so the cache keeps hitting (a rule class
created per request misses it every time: ~10x slower).

A document is measured against the static limits (app/api/limits.py, linear in its length)
before graphql-core validates it, so validation only ever sees documents within them; the one
rule whose work can still grow faster than the document (OverlappingFieldsCanBeMerged) runs on
a budget of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from functools import lru_cache
from typing import Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    GraphQLError,
    OperationDefinitionNode,
    ValidationContext,
    get_operation_ast,
    specified_rules,
    validate,
)
from graphql.type import GraphQLSchema
from graphql.validation import (
    NoSchemaIntrospectionCustomRule,
    OverlappingFieldsCanBeMergedRule,
)
from graphql.validation.validate import ValidationAbortedError
from strawberry.extensions import ParserCache, SchemaExtension
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule
from strawberry.types.graphql import OperationType

from app.api.context import Context, OperationSummary
from app.api.errors import ErrorMasking
from app.api.fairness import CostBudget
from app.api.inputs import StringInputs
from app.api.limits import BatchBudget, DocumentLimits, TooComplex
from app.api.permissions import only_read_refusals, public_operation
from app.core.errors import Unauthenticated
from app.core.settings import Limits


class OperationTransaction(SchemaExtension):
    """One transaction per operation: read-only for queries (on the read replica when there
    is one), committed or rolled back once.

    A mutation whose execution raised an unexpected error is rolled back as a whole;
    expected failures are typed results and each mutation undoes its own writes
    (Session.atomic) before returning them.
    """

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context.context
        assert isinstance(context, Context)
        is_query = self.execution_context.operation_type == OperationType.QUERY
        context.session.readonly = is_query
        # Where the operation runs is decided with its read-only mode: queries on the read
        # replica when there is one and it has the tenant's newest commit (app/core/replicas.py).
        router = context.database.router
        if is_query and router is not None:
            await router.route(context.session)
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
        context = self.execution_context.context
        if not isinstance(context, Context):
            yield
            return
        try:
            yield
        except BaseException:
            # Execution itself failed (the error becomes the response's): nothing is kept,
            # and the connection goes back to the pool.
            await context.session.close(commit=False)
            raise
        result = self.execution_context.result
        errors = getattr(result, "errors", None) or []
        # A field refused below the root only hid data the caller may not read.
        failed = not only_read_refusals(errors)
        # A commit that fails (the database gone: DatabaseUnavailable, or lost during COMMIT:
        # CommitOutcomeUnknown) raises here; ErrorMasking answers it as the operation's error.
        await context.session.close(commit=not failed)


class SignInRequired(SchemaExtension):
    """One answer for every caller who is not signed in, whatever the reason.

    An operation selecting any root field that is not `@public` runs only for a verified
    caller. For anyone else (no token, or one the authentication middleware refused:
    malformed, forged, expired, revoked, an impersonation no longer live) it is refused
    before anything executes, with one UNAUTHENTICATED request error and no data, and
    `WWW-Authenticate: Bearer` (`error="invalid_token"` for a refused token, RFC 6750).
    Operations of only `@public` fields (signIn, refreshToken, …) and introspection run for
    anyone, whatever Authorization header came with them: a stale token never blocks the
    refresh that replaces it.
    """

    def on_execute(self) -> Iterator[None]:
        execution = self.execution_context
        context = execution.context
        answered = execution.result is not None  # already refused (StringInputs)
        if (
            not answered
            and isinstance(context, Context)
            and context.principal is None
            and context.platform is None
        ):
            document = execution.graphql_document
            assert document is not None  # executing: parsed and validated
            operation = get_operation_ast(document, execution.operation_name)
            assert operation is not None
            if not public_operation(execution.schema._schema, document, operation):
                refused = getattr(context.request.state, "refused_credential", None) is not None
                context.response.headers["www-authenticate"] = (
                    'Bearer error="invalid_token"' if refused else "Bearer"
                )
                raise Unauthenticated("Invalid access token" if refused else "Sign in required")
        yield


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


class TokenLimit(SchemaExtension):
    """The parser's token limit, smaller for anonymous requests.

    graphql-core's validation costs tens of microseconds per token, so the token limit is
    what bounds the CPU a document within every other limit can take. An anonymous caller
    can reach little (signing in, introspection where it is on): its documents are small.
    """

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context.context
        signed_in = isinstance(context, Context) and (
            context.principal is not None or context.platform is not None
        )
        limit = self.limits.max_tokens if signed_in else self.limits.max_anonymous_tokens
        self.execution_context.parse_options["max_tokens"] = limit
        yield


class BudgetedOverlappingFields(OverlappingFieldsCanBeMergedRule):
    """graphql-core's field-merging rule with a smaller work budget (graphql-core's own is
    500 000 units, about a second here): comparing every pair of same-named fields grows
    with the square of their number, which no linear limit bounds."""

    budget: int = 2000

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self.rule_context.remaining_complexity_budget = self.budget

    def enter_selection_set(self, *args: Any) -> None:
        try:
            super().enter_selection_set(*args)
        except ValidationAbortedError:
            if self.rule_context.remaining_complexity_budget >= 0:
                raise  # too many errors: graphql-core's own abort
            refusal = TooComplex(
                "This document repeats the same fields too often to be checked; select each"
                " field once per level.",
                limit="validation",
                maximum=self.budget,
            )
            raise ValidationAbortedError(refusal.message, original_error=refusal) from None


_INTROSPECTION_DISABLED = (
    "GraphQL introspection is disabled on this server: `__schema` and `__type` are refused."
)


class DocumentValidator:
    """Refuses documents over the static limits, then validates the rest with graphql-core
    (cached per document). Built once at start-up; what it needs of the schema is derived
    at the first request."""

    def __init__(self, limits: Limits, *, introspection: bool) -> None:
        self.limits = limits
        self.introspection = introspection
        # "Did you mean …?" maps a hidden schema as well as introspection does.
        self.hide_suggestions = not introspection
        overlap = type(
            "BudgetedOverlappingFields",
            (BudgetedOverlappingFields,),
            {"budget": limits.validation_budget},
        )
        rules: list[type[ASTValidationRule]] = [
            overlap if rule is OverlappingFieldsCanBeMergedRule else rule
            for rule in specified_rules
        ]
        # Strawberry's own rules, which its validation adds to graphql-core's.
        rules += [MaybeNullValidationRule, OneOfInputValidationRule]
        if not introspection:
            rules.append(NoSchemaIntrospectionCustomRule)
        self.rules = tuple(rules)
        self._limits: DocumentLimits | None = None
        self._validate = lru_cache(maxsize=256)(self._validate_uncached)

    def errors(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation_name: str | None,
        variables: dict[str, Any] | None,
    ) -> list[GraphQLError]:
        """The document's errors: one for the first limit it exceeds, else graphql-core's."""
        return self.check(schema, document, operation_name, variables)[0]

    def check(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation_name: str | None,
        variables: dict[str, Any] | None,
        batch: BatchBudget | None = None,
    ) -> tuple[list[GraphQLError], int]:
        """`errors`, and the cost of the operation to run: one, plus the most objects its
        connections could return (what the tenant's cost budget is charged). With a batch's
        `batch` budget, a valid document's objects are taken from it (and one that would
        overdraw it is refused, taking nothing)."""
        if self._limits is None or self._limits.shape.schema is not schema:
            self._limits = DocumentLimits.of(self.limits, schema)
        operation = get_operation_ast(document, operation_name)
        analysis = self._limits.analyse(document, operation, variables)
        cost = 1 + analysis.nodes
        refusal = self._limits.refusal(analysis)
        if refusal is not None:
            return [GraphQLError(refusal.message, original_error=refusal)], cost
        # Refused here, before validation (tens of milliseconds for a full introspection
        # query); graphql-core's NoSchemaIntrospectionCustomRule stays as the backstop.
        if analysis.introspection_roots and not self.introspection:
            return [_validation_error(GraphQLError(_INTROSPECTION_DISABLED))], cost
        errors = self._validate(schema, document)
        if not errors and batch is not None:
            refusal = batch.take(analysis.nodes)
            if refusal is not None:
                return [GraphQLError(refusal.message, original_error=refusal)], cost
        return errors, cost

    def _validate_uncached(
        self, schema: GraphQLSchema, document: DocumentNode
    ) -> list[GraphQLError]:
        found = validate(schema, document, self.rules, hide_suggestions=self.hide_suggestions)
        return [_validation_error(e) for e in found]


def _validation_error(error: GraphQLError) -> GraphQLError:
    """graphql-core's validation error with its stable code (app/api/errors.py keeps it); a
    limit's refusal (one rule enforces one) keeps its own."""
    if error.original_error is not None:
        return error
    return GraphQLError(
        error.message, nodes=error.nodes, extensions={"code": "GRAPHQL_VALIDATION_FAILED"}
    )


class DocumentValidation(SchemaExtension):
    """Validation through the shared `DocumentValidator` (in place of Strawberry's)."""

    def __init__(self, validator: DocumentValidator) -> None:
        self.validator = validator

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        assert context.graphql_document is not None
        # GraphQL's GetOperation(): without `operationName` a document must hold exactly one
        # operation (Strawberry would run the first one).
        named = getattr(context, "_provided_operation_name", None)
        operations = [
            d
            for d in context.graphql_document.definitions
            if isinstance(d, OperationDefinitionNode)
        ]
        if named is None and len(operations) > 1:
            context.pre_execution_errors = [
                GraphQLError(
                    "This document holds several operations: name the one to run in"
                    " `operationName`",
                    extensions={"code": "OPERATION_RESOLUTION_FAILURE"},
                )
            ]
            yield
            return
        # Set in every case: Strawberry then skips its own validation.
        batch = context.context.batch_budget if isinstance(context.context, Context) else None
        context.pre_execution_errors, cost = self.validator.check(
            context.schema._schema,
            context.graphql_document,
            context.operation_name,
            context.variables,
            batch,
        )
        if isinstance(context.context, Context):
            # Charged to the tenant's budget and reported by CostBudget (app/api/fairness.py).
            context.context.cost = cost
        yield


ExtensionFactory = Callable[[], SchemaExtension]


def build_extensions(limits: Limits, *, introspection: bool) -> list[ExtensionFactory]:
    """The schema's extensions, in the order their hooks run; shared parts built here, once."""
    validator = DocumentValidator(limits, introspection=introspection)
    return [
        ErrorMasking,
        # Inputs no service could store are refused first, whoever the caller (like
        # validation errors).
        StringInputs,
        # Before the transaction and idempotency extensions: nothing of theirs runs either.
        SignInRequired,
        OperationTransaction,
        lambda: TokenLimit(limits),
        lambda: ReportingParserCache(maxsize=256),
        lambda: DocumentValidation(validator),
        # After DocumentValidation, whose cost it charges.
        CostBudget,
    ]


__all__ = ["GraphQLSchema", "build_extensions"]
