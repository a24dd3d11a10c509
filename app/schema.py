"""The GraphQL schema, assembled once from the domains' query and mutation types."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from app.accounts.resolvers import AccountMutations
from app.api.context import Info
from app.api.extensions import build_extensions
from app.api.observability import OperationObserver
from app.api.permissions import signed_in
from app.api.relay import Node, resolve_global_id
from app.audit.resolvers import AuditQueries
from app.auth.resolvers import AuthMutations
from app.comments.resolvers import CommentMutations
from app.comments.types import Comment
from app.core.settings import Limits
from app.idempotency.extension import IdempotentMutations, idempotent
from app.identity.resolvers import IdentityMutations, IdentityQueries
from app.mfa.resolvers import MfaMutations, MfaQueries
from app.platform.resolvers import PlatformMutations, PlatformQueries
from app.platform.tenant_resolvers import TenantDirectoryQueries, TenantLifecycleMutations
from app.projects.resolvers import ProjectMutations, ProjectQueries
from app.rbac.resolvers import RoleMutations, RoleQueries
from app.tasks.resolvers import TaskMutations, TaskQueries
from app.tenants.resolvers import TenantMutations, TenantQueries
from app.tenants.types import Tenant
from app.users.resolvers import UserMutations, UserQueries


@strawberry.type(description="Everything a client can read.")
class Query(
    UserQueries,
    TenantQueries,
    ProjectQueries,
    TaskQueries,
    AuditQueries,
    MfaQueries,
    IdentityQueries,
    RoleQueries,
    PlatformQueries,
    TenantDirectoryQueries,
):
    @strawberry.field(
        description="Any object by its global ID; null if there is none here, or if reading "
        "its type needs a permission the caller lacks.",
        extensions=signed_in(),
    )
    async def node(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="A global ID.")],
    ) -> Node | None:
        return await resolve_global_id(info, id)


@strawberry.type(description="Everything a client can change.")
class Mutation(
    AuthMutations,
    ProjectMutations,
    TaskMutations,
    CommentMutations,
    MfaMutations,
    AccountMutations,
    IdentityMutations,
    UserMutations,
    TenantMutations,
    RoleMutations,
    PlatformMutations,
    TenantLifecycleMutations,
):
    pass


class TenantrySchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Nothing: Strawberry would log every client mistake at ERROR level. Unexpected
        errors are logged in full, with the request id, by app/api/errors.py."""

    def _get_custom_context_kwargs(
        self, operation_extensions: dict[str, Any] | None = None, *, sync: bool = False
    ) -> dict[str, Any]:
        # Execution's own "Did you mean …?" (variables naming an enum value or input field
        # wrongly) goes with the validation's: hidden where the schema is (no introspection).
        # Strawberry passes these keyword arguments on to graphql-core's `execute`.
        kwargs = super()._get_custom_context_kwargs(operation_extensions, sync=sync)
        kwargs["hide_suggestions"] = self.config.disable_field_suggestions
        return kwargs


def build_schema(limits: Limits | None = None, *, introspection: bool = True) -> strawberry.Schema:
    """The schema with its hardening extensions; the SDL does not depend on the arguments."""
    return TenantrySchema(
        query=Query,
        mutation=Mutation,
        # Node types reachable only through `node(id:)` must still be in the schema.
        types=[Comment, Tenant],
        # The observer outermost: it sees the errors masked and the transaction closed.
        extensions=[
            OperationObserver,
            *build_extensions(limits or Limits(), introspection=introspection),
            # After OperationTransaction: it runs inside the operation's transaction.
            IdempotentMutations,
        ],
        directives=[idempotent],
        # "Did you mean …?" hints map a hidden schema as well as introspection does.
        config=StrawberryConfig(auto_camel_case=True, disable_field_suggestions=not introspection),
    )


def sdl() -> str:
    """The schema in SDL, as committed in schema.graphql."""
    return build_schema().as_str() + "\n"
