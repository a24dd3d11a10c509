"""The flat domain error tree, and the one place database errors become domain errors.

Messages of these errors are shown to clients, so they never carry SQL text, constraint
names or anything about other tenants. Unexpected exceptions are not DomainErrors and are
masked at the GraphQL boundary (app/api/errors.py).
"""

from __future__ import annotations

import asyncpg


class DomainError(Exception):
    """An expected failure with a stable, client-visible code."""

    code: str = "ERROR"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def details(self) -> dict[str, object]:
        """Further client-visible facts for the error's extensions (none by default)."""
        return {}


class NotFound(DomainError):
    """The object does not exist, or exists only in another tenant (indistinguishable)."""

    code = "NOT_FOUND"


class Forbidden(DomainError):
    code = "FORBIDDEN"


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"


class TenantSuspended(Forbidden):
    """The caller's organisation is suspended (or deleted): nothing of it may be used."""

    code = "TENANT_SUSPENDED"


class TenantMismatch(Forbidden):
    """The request names two different organisations (argument, header, subdomain, token)."""

    code = "TENANT_MISMATCH"


class QuotaExceeded(Forbidden):
    """The tenant's plan allows no more of something; `limit` names which (as the plan's
    GraphQL field does, e.g. maxUsers) and `maximum` how many it allows."""

    code = "QUOTA_EXCEEDED"

    def __init__(self, message: str, *, limit: str, maximum: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.maximum = maximum

    def details(self) -> dict[str, object]:
        return {"limit": self.limit, "maximum": self.maximum}


class ImpersonationRestricted(Forbidden):
    """Refused while a platform administrator acts as the user: credentials, sessions,
    membership and the tenant's security settings stay the real user's and admins' own."""

    code = "IMPERSONATION_RESTRICTED"


class Conflict(DomainError):
    code = "CONFLICT"


class Invalid(DomainError):
    """Input that fails validation; `field` names the offending input field."""

    code = "INVALID"


class Unavailable(DomainError):
    code = "UNAVAILABLE"


# Seconds a client should wait before retrying an operation refused while the database was
# out of reach or busy (the `Retry-After` header and `extensions.retryAfter`).
RETRY_AFTER_SECONDS = 1


class OperationAborted(Exception):
    """A failure of the operation as a whole, never of one field: the database out of reach,
    or a commit whose outcome is unknown. Deliberately not a DomainError: the handlers that
    turn domain errors into a mutation's typed result must not catch it. The API answers it
    as the response's only error (HTTP 503, `Retry-After`); its message is shown to clients.
    """

    code: str = "UNAVAILABLE"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = RETRY_AFTER_SECONDS

    def details(self) -> dict[str, object]:
        return {"retryAfter": self.retry_after}


class DatabaseUnavailable(OperationAborted):
    """The database could not be used: unreachable, restarting, the connection lost before
    anything was committed, or no pooled connection free in time. Nothing of the operation
    was written; it may be retried as it is."""

    code = "UNAVAILABLE"

    def __init__(self) -> None:
        super().__init__("The service is temporarily unavailable; try again")


class CommitOutcomeUnknown(OperationAborted):
    """The connection was lost while the database committed: the operation's writes may or
    may not have been saved, and only a retry with the same idempotency key can tell (it
    answers the stored result if they were, and runs once if they were not)."""

    code = "COMMIT_OUTCOME_UNKNOWN"

    def __init__(self) -> None:
        super().__init__(
            "The connection to the database was lost while saving; the changes may or may not"
            " have been saved. Retry with the same Idempotency-Key to find out"
        )


def translate_database_error(
    exc: asyncpg.PostgresError, *, not_found: str = "Not found", conflict: str = "Conflict"
) -> DomainError | None:
    """Map the database errors that have a domain meaning; None for anything unexpected.

    A foreign-key violation means "the referenced object is not in this tenant": composite
    foreign keys make another tenant's object and a random id fail the same way. Called at
    the two boundaries only: a mutation's payload errors (app/api/mutations.py) and every
    other GraphQL error (app/api/errors.py).
    """
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return NotFound(not_found)
    if isinstance(exc, asyncpg.UniqueViolationError | asyncpg.ExclusionViolationError):
        return Conflict(conflict)
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return Forbidden("Not allowed")
    if isinstance(exc, asyncpg.QueryCanceledError):
        return Unavailable("The request took too long; try again with a smaller page")
    if isinstance(exc, asyncpg.LockNotAvailableError):
        # lock_timeout: another transaction holds the rows this one must change.
        return Unavailable("The data is being changed by another request; try again")
    if isinstance(exc, asyncpg.CheckViolationError | asyncpg.NotNullViolationError):
        return Invalid("Invalid value")
    if isinstance(exc, asyncpg.DataError):
        # SQLSTATE class 22 (data exception): a value the database cannot hold or compute
        # with (out of range, malformed, too long). Its text quotes the value and the SQL
        # around it, so the client gets only the code.
        return Invalid("A value is out of range or malformed")
    return None
