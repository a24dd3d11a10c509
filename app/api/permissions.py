"""Who may call or read a field: one rule per field, declared on it, shown in the SDL and in
the field's description, and enforced before it resolves.

A `Rule` is plain data (the resolver path enforces it through `Rule.extensions()`; a compiled
read path can check it before running anything):

- `needs(p)` / `@requiresPermission(permission: "…")`: the signed-in user's effective
  permissions, resolved once per operation (app/rbac), must include it. A `…:own` permission
  is the least the field needs; the service then checks ownership unless the user holds the
  broader permission.
- `SIGNED_IN` / `@signedIn`: any signed-in user, acting on their own account or tenant.
- `PUBLIC` / `@public`: no sign-in needed (sign-in itself, token refresh, invitations, …).
- `needs_platform(p)` / `@requiresPlatformPermission(permission: "…")`: a platform
  administrator in a live platform session holding this platform permission.
- `PLATFORM_SIGNED_IN` / `@platformSignedIn`: any platform administrator in a live session.
- `SELF` / `@selfOnly` and `self_or(p)` / `@selfOrPermission(permission: "…")`: per-object
  rules on a user's own data (sessions, roles, permissions): the signed-in user's own record
  (or anyone's, with `p`); on any other the field reads as null, without an error, as
  `node(id:)` reads an object its caller may not see.

The two principal kinds never mix: a platform administrator's token is FORBIDDEN on every
tenant rule, and a tenant user's token on every platform rule.

Root fields carry exactly one rule (tests/api/test_permission_rules.py). Every other field
that reaches a type with a read rule (`read_rule`: relations, a payload's object) carries that
type's rule, so a caller reads a type through a relation exactly when they could through
the root fields; app/api/relations.py attaches it. A refusal is an error with code
UNAUTHENTICATED or FORBIDDEN at the field's path and null there, and nothing of the field
runs. Below the root fields a refusal only hides data: it never undoes a mutation
(`only_read_refusals`).

Beside its rule, a field may carry `@refusedWhileImpersonating` (`not_while_impersonating`):
under a break-glass impersonation token (docs/platform.md) it is refused with
IMPERSONATION_RESTRICTED before the rule is even asked. Credentials, sessions, membership,
roles and the tenant's security settings carry it; tests/platform/test_impersonation.py keeps
the list and fails for a new mutation that has not been decided either way.

Each rule also writes one sentence into its field's description ("Requires the
`task:write:own` permission."), so GraphiQL's documentation and codegen clients, which see
descriptions but not applied directives, show it too.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import strawberry
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from strawberry.extensions import FieldExtension
from strawberry.extensions.field_extension import AsyncExtensionResolver
from strawberry.schema_directive import Location
from strawberry.types.field import StrawberryField

from app.api.context import Context, Info
from app.core.errors import Forbidden, ImpersonationRestricted, Unauthenticated


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    name="requiresPermission",
    description="Callable only by signed-in users holding this permission "
    "(docs/permissions.md); `…:own` permissions cover the caller's own objects only. Below "
    "the root fields (a relation, a payload's object) the field is null with a FORBIDDEN "
    "error at its path for callers without it.",
)
class RequiresPermission:
    permission: str


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    name="signedIn",
    description="Callable by any signed-in user, for their own account and tenant.",
)
class SignedIn:
    pass


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    name="public",
    description="Callable without signing in.",
)
class Public:
    pass


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    name="requiresPlatformPermission",
    description="Callable only by platform administrators holding this platform permission "
    "(docs/permissions.md); never by users of a tenant.",
)
class RequiresPlatformPermission:
    permission: str


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    name="platformSignedIn",
    description="Callable by any signed-in platform administrator; never by users of a tenant.",
)
class PlatformSignedIn:
    pass


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    name="refusedWhileImpersonating",
    description="Refused (IMPERSONATION_RESTRICTED) when a platform administrator acts as the "
    "user through break-glass impersonation: it would touch credentials, sessions, membership "
    "or the tenant's security settings.",
)
class RefusedWhileImpersonating:
    pass


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    name="selfOnly",
    description="Readable on the signed-in user's own record only; null on anyone else's "
    "(a per-object rule: no error).",
)
class SelfOnly:
    pass


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    name="selfOrPermission",
    description="Readable on the signed-in user's own record, and on anyone's by holders of "
    "this permission; null otherwise (a per-object rule: no error).",
)
class SelfOrPermission:
    permission: str


class RuleKind(enum.Enum):
    """The kinds of rules; each value is the name of the directive that shows it."""

    PERMISSION = "requiresPermission"
    SIGNED_IN = "signedIn"
    PUBLIC = "public"
    PLATFORM_PERMISSION = "requiresPlatformPermission"
    PLATFORM_SIGNED_IN = "platformSignedIn"
    SELF = "selfOnly"
    SELF_OR_PERMISSION = "selfOrPermission"
    # Not an access rule: a restriction put in front of one (`not_while_impersonating`).
    NOT_IMPERSONATING = "refusedWhileImpersonating"


@dataclass(frozen=True)
class Rule:
    """Who may call or read a field (the kinds are listed in the module docstring)."""

    kind: RuleKind
    # The permission of PERMISSION, PLATFORM_PERMISSION and SELF_OR_PERMISSION.
    permission: str | None = None

    @property
    def per_row(self) -> bool:
        """Decided per object (its source): a refused object reads as null, no error."""
        return self.kind in (RuleKind.SELF, RuleKind.SELF_OR_PERMISSION)

    @property
    def is_access_rule(self) -> bool:
        return self.kind is not RuleKind.NOT_IMPERSONATING

    @property
    def sentence(self) -> str:
        """The rule as it reads in the field's description."""
        return _SENTENCES[self.kind].format(self.permission)

    @property
    def directive(self) -> object:
        """The rule as it shows in the SDL."""
        make = _DIRECTIVES[self.kind]
        return make(self.permission) if self.permission is not None else make()

    def extensions(self) -> list[FieldExtension]:
        """`extensions=` of a field with this rule: each field gets its own extension
        instance (Strawberry binds an extension to one field)."""
        return [RuleExtension(lambda: (self,))]


SIGNED_IN = Rule(RuleKind.SIGNED_IN)
PUBLIC = Rule(RuleKind.PUBLIC)
PLATFORM_SIGNED_IN = Rule(RuleKind.PLATFORM_SIGNED_IN)
SELF = Rule(RuleKind.SELF)
NOT_IMPERSONATING = Rule(RuleKind.NOT_IMPERSONATING)


def needs(permission: str) -> Rule:
    """The rule of a field that needs `permission` (an app.rbac Permission)."""
    return Rule(RuleKind.PERMISSION, str(permission))


def needs_platform(permission: str) -> Rule:
    """The rule of a platform field that needs `permission` (a PlatformPermission)."""
    return Rule(RuleKind.PLATFORM_PERMISSION, str(permission))


def self_or(permission: str) -> Rule:
    """The per-object rule of a user's own data that holders of `permission` read too."""
    return Rule(RuleKind.SELF_OR_PERMISSION, str(permission))


_SENTENCES: dict[RuleKind, str] = {
    RuleKind.PERMISSION: "Requires the `{}` permission.",
    RuleKind.SIGNED_IN: "Requires a signed-in user of the tenant.",
    RuleKind.PUBLIC: "Open to anyone, signed in or not.",
    RuleKind.PLATFORM_PERMISSION: "Requires a platform administrator holding the `{}` "
    "platform permission.",
    RuleKind.PLATFORM_SIGNED_IN: "Requires a signed-in platform administrator.",
    RuleKind.SELF: "Only on the signed-in user's own record; null on anyone else's.",
    RuleKind.SELF_OR_PERMISSION: "Only on the signed-in user's own record, or with the `{}` "
    "permission; null otherwise.",
    RuleKind.NOT_IMPERSONATING: "Refused while a platform administrator impersonates the user.",
}

_DIRECTIVES: dict[RuleKind, Callable[..., object]] = {
    RuleKind.PERMISSION: lambda p: RequiresPermission(permission=p),
    RuleKind.SIGNED_IN: SignedIn,
    RuleKind.PUBLIC: Public,
    RuleKind.PLATFORM_PERMISSION: lambda p: RequiresPlatformPermission(permission=p),
    RuleKind.PLATFORM_SIGNED_IN: PlatformSignedIn,
    RuleKind.SELF: SelfOnly,
    RuleKind.SELF_OR_PERMISSION: lambda p: SelfOrPermission(permission=p),
    RuleKind.NOT_IMPERSONATING: RefusedWhileImpersonating,
}


def _decided_now(rule: Rule, source: Any, context: Context) -> bool | None:
    """`rule`'s decision when it needs nothing that is not resolved yet (None: it needs the
    actor, resolved once per operation by `_allowed`). Relations ask it for every row, so
    the common case costs no coroutine."""
    kind = rule.kind
    if kind is RuleKind.PUBLIC:
        return True
    if kind is RuleKind.SIGNED_IN:
        context.require_principal()
        return True
    if kind is RuleKind.PERMISSION:
        context.require_principal()
        actor = context.resolved_actor()
        if actor is None:
            return None
        assert rule.permission is not None
        actor.require(rule.permission)
        return True
    if kind in (RuleKind.SELF, RuleKind.SELF_OR_PERMISSION):
        principal = context.principal
        if principal is None:
            return False
        # At the root (`viewer`) the field returns the caller's own record by construction.
        if source is None or source.pk == principal.user_id:
            return True
        if kind is RuleKind.SELF:
            return False
        actor = context.resolved_actor()
        return None if actor is None else actor.can(str(rule.permission))
    if kind is RuleKind.NOT_IMPERSONATING:
        principal = context.principal
        if principal is not None and principal.impersonated:
            raise ImpersonationRestricted(
                "Not allowed while impersonating a user: credentials, sessions, membership and "
                "security settings stay the user's own"
            )
        return True
    return None  # platform rules check the live platform session


async def _allowed(rule: Rule, source: Any, info: Info) -> bool:
    """Whether `rule` lets the caller have the field on `source`: True, or False for a
    per-object refusal; a refusal of anything else raises Unauthenticated or Forbidden
    (app/api/errors.py gives their stable codes)."""
    context = info.context
    decided = _decided_now(rule, source, context)
    if decided is not None:
        return decided
    if rule.kind is RuleKind.PLATFORM_SIGNED_IN:
        # The live session is checked, not only the token: a signed-out token stops here.
        await context.platform_actor()
        return True
    if rule.kind is RuleKind.PLATFORM_PERMISSION:
        (await context.platform_actor()).require(str(rule.permission))
        return True
    await context.actor()  # resolved now: decided without waiting from here on
    decided = _decided_now(rule, source, context)
    assert decided is not None
    return decided


class RuleExtension(FieldExtension):
    """Enforces a field's rules before it resolves, shows them as directives in the SDL and
    as sentences in its description.

    The rules are given lazily: a relation reaches a type of another domain, named lazily,
    whose read rule is known only once the schema is built (`apply`).
    """

    def __init__(self, rules: Callable[[], Sequence[Rule]]) -> None:
        self._source = rules
        self._rules: tuple[Rule, ...] | None = None

    @property
    def rules(self) -> tuple[Rule, ...]:
        if self._rules is None:
            # Restrictions first: an impersonation token is refused before anything is asked.
            found = sorted(self._source(), key=lambda r: r.is_access_rule)
            self._rules = tuple(found)
        return self._rules

    def apply(self, field: StrawberryField) -> None:
        for rule in self.rules:
            # Idempotent: the same field object is applied again by every schema built.
            if rule.directive not in field.directives:
                field.directives.append(rule.directive)
        sentences = " ".join(
            r.sentence for r in sorted(self.rules, key=lambda r: not r.is_access_rule)
        )
        if sentences and not (field.description or "").endswith(sentences):
            field.description = (
                f"{field.description}\n\n{sentences}" if field.description else sentences
            )

    async def resolve_async(
        self, next_: AsyncExtensionResolver, source: Any, info: Info, **kwargs: Any
    ) -> Any:
        context = info.context
        for rule in self.rules:
            allowed = _decided_now(rule, source, context)
            if allowed is None:
                allowed = await _allowed(rule, source, info)
            if not allowed:
                assert rule.per_row  # every other refusal raised
                return None
        result = next_(source, info, **kwargs)
        return await result if inspect.isawaitable(result) else result


def rules_of(field: StrawberryField) -> tuple[Rule, ...]:
    """The rules a field carries (restrictions included)."""
    return tuple(r for e in field.extensions if isinstance(e, RuleExtension) for r in e.rules)


async def admits(info: Info, rule: Rule | None, source: Any = None) -> bool:
    """Whether `rule` (None: no rule) lets the caller read `source`, without raising: for
    `node(id:)`, where an object its caller may not read is absent."""
    if rule is None:
        return True
    try:
        return await _allowed(rule, source, info)
    except (Forbidden, Unauthenticated):
        return False


def only_read_refusals(errors: Sequence[GraphQLError]) -> bool:
    """Whether every error is a rule refusing a field below the operation's root fields.

    Such a refusal hides data the caller may not read (a relation, a mutation payload's
    object) and changes nothing: the operation's writes stand. A refused root field, or any
    other error, still fails the operation.
    """

    def read_refusal(error: GraphQLError) -> bool:
        # Exactly the rules' errors: not their subclasses (a suspended tenant, a quota).
        original = type(error.original_error)
        return len(error.path or ()) > 1 and original in (Forbidden, Unauthenticated)

    return all(read_refusal(e) for e in errors)


def public_operation(
    schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode
) -> bool:
    """Whether every root field `operation` selects (through fragments too) is `@public` or
    introspection: what an anonymous caller, or one whose token was refused, may run. For a
    validated document (every field exists)."""
    root = schema.get_root_type(operation.operation)
    if root is None:
        return False
    public = _public_fields(root)
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    pending: list[SelectionSetNode] = [operation.selection_set]
    spread: set[str] = set()
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                name = selection.name.value
                if not name.startswith("__") and name not in public:
                    return False
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name not in spread and name in fragments:
                    spread.add(name)
                    pending.append(fragments[name].selection_set)
    return True


@lru_cache(maxsize=16)
def _public_fields(root: GraphQLObjectType) -> frozenset[str]:
    """The root type's fields whose rule is PUBLIC (computed once per schema's root type)."""
    found = set()
    for name, field in root.fields.items():
        definition = (field.extensions or {}).get("strawberry-definition")
        if isinstance(definition, StrawberryField) and any(
            r.kind is RuleKind.PUBLIC for r in rules_of(definition)
        ):
            found.add(name)
    return frozenset(found)


# The factories every root field uses: `extensions=requires(Permission.TASK_WRITE_OWN)`.
def requires(permission: str) -> list[FieldExtension]:
    """`extensions=` of a field that needs `permission` (an app.rbac Permission)."""
    return needs(permission).extensions()


def signed_in() -> list[FieldExtension]:
    return SIGNED_IN.extensions()


def public() -> list[FieldExtension]:
    return PUBLIC.extensions()


def requires_platform(permission: str) -> list[FieldExtension]:
    """`extensions=` of a platform field that needs `permission` (a PlatformPermission)."""
    return needs_platform(permission).extensions()


def platform_signed_in() -> list[FieldExtension]:
    return PLATFORM_SIGNED_IN.extensions()


def own_record() -> list[FieldExtension]:
    """`extensions=` of a field on the signed-in user's own record only (`viewer`, sessions)."""
    return SELF.extensions()


def own_record_or(permission: str) -> list[FieldExtension]:
    """`extensions=` of a user's own data that holders of `permission` read too."""
    return self_or(permission).extensions()


def not_while_impersonating(rule: list[FieldExtension]) -> list[FieldExtension]:
    """`rule` (one of the above), refused first under an impersonation token."""
    [extension] = rule
    assert isinstance(extension, RuleExtension)
    return [RuleExtension(lambda: (NOT_IMPERSONATING, *extension.rules))]
