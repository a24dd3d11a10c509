"""The one boundary where a mutation's expected failures become typed results.

`settle` is the only code that turns an expected failure into a payload error: a domain
error keeps its code and message, and a database error with a domain meaning is translated
by app/core/errors.py (the one place that maps database errors). Every mutation reaches it
through one of three entries, which differ only in who acts and which transaction the work
runs in:

- `attempt`: the signed-in user, in the operation's transaction, inside a savepoint, so a
  refused mutation changed nothing and the next field of the document sees the new state;
- `attempt_platform`: the same for the signed-in platform administrator;
- `settle`: anyone (sign-in steps, invitation acceptance, password reset) or an actor the
  resolver already holds, for services that open transactions of their own.

Anything unexpected propagates and is masked by app/api/errors.py; the operation's
transaction is then rolled back as a whole.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import asyncpg
import strawberry

from app.api.context import Info
from app.core import telemetry
from app.core.actor import Actor, PlatformActor
from app.core.db import Session
from app.core.errors import DomainError, Invalid, translate_database_error
from app.core.validation import MISSING, Patch

T = TypeVar("T")


@strawberry.enum(description="Stable, machine-readable error codes.")
class ErrorCode(enum.Enum):
    NOT_FOUND = "NOT_FOUND"
    FORBIDDEN = "FORBIDDEN"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    CONFLICT = "CONFLICT"
    INVALID = "INVALID"
    UNAVAILABLE = strawberry.enum_value(
        "UNAVAILABLE",
        description="Not now: too slow, busy or out of reach; nothing was changed. With the "
        "database out of reach it is the response's only error, with HTTP 503 and "
        "`Retry-After` (also `extensions.retryAfter`, seconds).",
    )
    INVALID_TOKEN = "INVALID_TOKEN"  # noqa: S105 (an error code)
    TOO_MANY_ATTEMPTS = "TOO_MANY_ATTEMPTS"
    INVALID_REFRESH_TOKEN = "INVALID_REFRESH_TOKEN"  # noqa: S105 (an error code)
    INVALID_MFA_CODE = "INVALID_MFA_CODE"
    FRESH_AUTH_REQUIRED = "FRESH_AUTH_REQUIRED"
    TENANT_SUSPENDED = "TENANT_SUSPENDED"
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    TENANT_MISMATCH = "TENANT_MISMATCH"
    IMPERSONATION_RESTRICTED = "IMPERSONATION_RESTRICTED"
    COMMIT_OUTCOME_UNKNOWN = strawberry.enum_value(
        "COMMIT_OUTCOME_UNKNOWN",
        description="The connection to the database was lost while the operation's changes "
        "were being saved: they may or may not have been. Retry with the same "
        "`Idempotency-Key`: the answer is then the first result if they were saved, and the "
        "operation runs once if they were not.",
    )


@strawberry.type(description="An expected failure of a mutation; nothing was changed.")
class UserError:
    code: ErrorCode = strawberry.field(description="Stable code to branch on.")
    message: str = strawberry.field(description="Human-readable explanation.")
    field: str | None = strawberry.field(
        description="The input field at fault, when one is (e.g. `name`, `dueDate`)."
    )
    retry_after_seconds: int | None = strawberry.field(
        default=None,
        description="For TOO_MANY_ATTEMPTS: seconds until another attempt can succeed.",
    )
    limit: str | None = strawberry.field(
        default=None,
        description="For QUOTA_EXCEEDED: the plan's limit reached (`maxUsers`, `maxProjects`).",
    )
    maximum: int | None = strawberry.field(
        default=None, description="For QUOTA_EXCEEDED: how many the plan allows."
    )

    @classmethod
    def of(cls, error: DomainError) -> UserError:
        # Every expected failure of a mutation becomes one: the request's outcome code.
        telemetry.error_code(error.code)
        return cls(
            code=ErrorCode(error.code),
            message=error.message,
            field=error.field,
            retry_after_seconds=getattr(error, "retry_after", None),
            limit=getattr(error, "limit", None),
            maximum=getattr(error, "maximum", None),
        )


@dataclass
class Outcome(Generic[T]):
    value: T | None = None
    errors: list[UserError] = field(default_factory=list)


async def settle(action: Callable[[], Awaitable[T]]) -> Outcome[T]:
    """Run `action()`: its expected failures become the payload's errors, anything else
    propagates. The action is called here, so an input error raised while building the
    service call (a malformed ID, a null where a value is required) is settled too."""
    try:
        return Outcome(await action())
    except DomainError as error:
        return Outcome(errors=[UserError.of(error)])
    except asyncpg.PostgresError as exc:
        translated = translate_database_error(exc)
        if translated is None:
            raise
        return Outcome(errors=[UserError.of(translated)])


async def attempt(info: Info, action: Callable[[Session, Actor], Awaitable[T]]) -> Outcome[T]:
    """Run `action(session, actor)` atomically for the signed-in user."""
    return await _atomic(info, await info.context.actor(), action)


async def attempt_platform(
    info: Info, action: Callable[[Session, PlatformActor], Awaitable[T]]
) -> Outcome[T]:
    """Run `action(session, actor)` atomically for the signed-in platform administrator."""
    return await _atomic(info, await info.context.platform_actor(), action)


A = TypeVar("A", Actor, PlatformActor)


async def _atomic(info: Info, actor: A, action: Callable[[Session, A], Awaitable[T]]) -> Outcome[T]:
    session = info.context.session

    async def atomically() -> T:
        async with session.atomic():
            return await action(session, actor)

    try:
        return await settle(atomically)
    finally:
        # The payload, and later mutations of the same document, must read the new state.
        info.context.forget()


@strawberry.type(description="The result of a delete mutation.")
class DeletePayload:
    deleted_id: strawberry.ID | None = strawberry.field(
        description="The global ID of the deleted object; null when `errors` is not empty."
    )
    errors: list[UserError] = strawberry.field(description="Why nothing was deleted.")

    @classmethod
    def of(cls, outcome: Outcome[None], deleted_id: strawberry.ID) -> DeletePayload:
        return cls(deleted_id=None if outcome.errors else deleted_id, errors=outcome.errors)


def patch(value: T | None, *, field: str) -> Patch[T]:
    """A partial-update input of a non-null field: absent means keep; null is an error."""
    if value is strawberry.UNSET:
        return MISSING
    if value is None:
        raise Invalid(f"`{field}` cannot be null; omit it to keep the current value", field=field)
    return value


def patch_nullable(value: T | None) -> Patch[T | None]:
    """A partial-update input of a nullable field: absent means keep, null means clear."""
    return MISSING if value is strawberry.UNSET else value
