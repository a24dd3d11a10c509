"""Idempotency keys on mutation operations: the `Idempotency-Key` header, or the
`@idempotent(key:)` directive where a client cannot set headers.

Per operation, not per field: the header names one request, and one request is one
operation run in one transaction, whose result is stored with its writes (service.py). The
schema gains one directive, not an argument on every mutation field.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import strawberry
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError, OperationDefinitionNode, get_operation_ast
from graphql.execution.values import get_directive_values, get_variable_values
from strawberry.directive import DirectiveLocation
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from app.api.context import Context
from app.core.errors import Invalid
from app.idempotency import service
from app.idempotency.models import KeyOwner, PlatformAdmin, TenantUser

HEADER = "idempotency-key"
REPLAYED_HEADER = "idempotent-replayed"


@strawberry.directive(
    locations=[DirectiveLocation.MUTATION],
    description="Run this mutation operation at most once per key (for 24 hours), like the "
    "`Idempotency-Key` header, for clients that cannot set headers: a retry with the same "
    "key and the same request returns the first result and changes nothing; the same key "
    "with another request is a CONFLICT. Needs a signed-in caller.",
)
def idempotent(
    key: Annotated[
        str,
        strawberry.argument(description="1-255 visible ASCII characters, e.g. a UUID."),
    ],
) -> None:
    """Read before execution by IdempotentMutations; nothing runs here."""


class IdempotentMutations(SchemaExtension):
    """Claims the operation's key before it runs and stores its result in its transaction;
    a retry of a finished request gets that result instead (and an `Idempotent-Replayed:
    true` header)."""

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        context = execution.context
        key = None
        if execution.operation_type == OperationType.MUTATION and isinstance(context, Context):
            key = _requested_key(context, execution)
        if key is None:
            yield
            return
        assert isinstance(context, Context)
        owner = await _owner(context)
        digest = service.request_digest(
            execution.query or "", execution.operation_name, execution.variables or {}
        )
        replay = await service.claim(context.session, owner, key, digest)
        if replay is not None:
            # Strawberry does not execute an operation whose result is already set.
            execution.result = GraphQLExecutionResult(data=replay, errors=None)
            context.response.headers[REPLAYED_HEADER] = "true"
            yield
            return
        yield
        result = execution.result
        # Only a result the transaction commits is stored: with errors it is rolled back
        # (app/api/extensions.py), key and all, and a retry runs again.
        if result is not None and not result.errors and isinstance(result.data, dict):
            await service.complete(context.session, owner, key, result.data)


def _requested_key(context: Context, execution: Any) -> str | None:
    header = context.request.headers.get(HEADER)
    given = None if header is None else service.check_key(header)
    argued = _directive_key(execution)
    if argued is not None:
        argued = service.check_key(argued)
        if given is not None and given != argued:
            raise Invalid(
                "The Idempotency-Key header and @idempotent(key:) name different keys",
                field=service.FIELD,
            )
    return given or argued


def _directive_key(execution: Any) -> str | None:
    document = execution.graphql_document
    operation = None if document is None else get_operation_ast(document, execution.operation_name)
    if not isinstance(operation, OperationDefinitionNode):
        return None
    schema = execution.schema._schema
    definition = schema.get_directive("idempotent")
    if definition is None or not operation.directives:
        return None
    # The key may be a variable of the operation: coerced as the executor would.
    variables = get_variable_values(
        schema, operation.variable_definitions or (), execution.variables or {}
    )
    try:
        if isinstance(variables, list):
            raise variables[0]
        values = get_directive_values(definition, operation, variables)
    except GraphQLError:
        raise Invalid("@idempotent(key:) needs a key", field=service.FIELD) from None
    key = None if values is None else values.get("key")
    return key if isinstance(key, str) else None


async def _owner(context: Context) -> KeyOwner:
    if context.principal is not None:
        # The middleware refused revoked sessions and suspended tenants already.
        return TenantUser(context.principal.tenant_id, context.principal.user_id)
    if context.platform is not None:
        # A platform session is checked per operation: a signed-out one gets no replay either.
        actor = await context.platform_actor()
        return PlatformAdmin(actor.admin_id)
    # Signing in, signing up, accepting an invitation and resetting a password run before
    # there is anyone to keep keys for; each has its own retry rules (docs/operations.md).
    raise Invalid("Idempotency keys need a signed-in caller", field=service.FIELD)
