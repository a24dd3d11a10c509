"""What one request did, gathered while it runs: the source of its access log line, its
metrics and the ids on every log line it writes.

app/api/observability.py opens an `Observation` per HTTP request and makes it current (a
context variable, so resolvers running as tasks of the request see it too). Code anywhere
below reports to it through the functions at the end of this module; outside a request
(commands, start-up) they do nothing, so no caller needs to know whether it is observed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Literal
from uuid import UUID

from opentelemetry.trace import TracerProvider

from app.core.metrics import CacheName, Metrics, statement_verb

ReplicaOutcome = Literal["replica", "behind", "unavailable"]
# Codes of refusals by a rate limit besides HTTP 429 (an expected error in a payload).
RATE_LIMIT_CODES = frozenset({"TOO_MANY_ATTEMPTS"})
# How much of the slowest statement's SQL (never its parameters) a slow-request line shows.
_SQL_SHOWN = 500


@dataclass(frozen=True)
class Identity:
    """Who a request acts for: a tenant's user, or a platform administrator (`admin_id`,
    also set when an administrator acts as the user)."""

    tenant_id: UUID | None = None
    user_id: UUID | None = None
    admin_id: UUID | None = None


NOBODY = Identity()


def _nobody() -> Identity:
    return NOBODY


@dataclass
class Observation:
    """One request as it runs."""

    metrics: Metrics
    # The app's tracer provider when it traces (app/core/tracing.py), else None.
    tracer_provider: TracerProvider | None = None
    request_id: str | None = None
    # A caller's W3C trace id, kept for the logs when this server does not trace.
    caller_trace_id: str | None = None
    # Read when needed: who is calling is known only once the token has been verified.
    identify: Callable[[], Identity] = _nobody
    operation_name: str | None = None
    operation_type: str | None = None
    # Every error code answered, in order (top-level errors, payload errors, refusals).
    codes: list[str] = field(default_factory=list)
    statements: int = 0
    database_seconds: float = 0.0
    slowest_statement: tuple[float, str] | None = None
    started: float = field(default_factory=time.perf_counter)

    def identity(self) -> Identity:
        return self.identify()

    @property
    def outcome(self) -> str:
        """OK, or the first error code of the answer."""
        return self.codes[0] if self.codes else "OK"

    @property
    def slowest_sql(self) -> str | None:
        """The slowest statement's SQL on one line (never its parameters: statements are SQL
        with $n placeholders, so no value reaches a log)."""
        if self.slowest_statement is None:
            return None
        return " ".join(self.slowest_statement[1].split())[:_SQL_SHOWN]


_current: ContextVar[Observation | None] = ContextVar("tenantry_observation", default=None)


def current() -> Observation | None:
    """The request being observed, if any."""
    return _current.get()


@contextmanager
def observing(observation: Observation) -> Iterator[Observation]:
    token = _current.set(observation)
    try:
        yield observation
    finally:
        _current.reset(token)


def statement(sql: str, seconds: float) -> None:
    """A SQL statement of the current request ran (or failed) in `seconds`."""
    observation = _current.get()
    if observation is None:
        return
    observation.statements += 1
    observation.database_seconds += seconds
    slowest = observation.slowest_statement
    if slowest is None or seconds > slowest[0]:
        observation.slowest_statement = (seconds, sql)
    observation.metrics.statement_duration.labels(statement_verb(sql)).observe(seconds)


def error_code(code: str) -> None:
    """The current request answers with an error of stable code `code`."""
    observation = _current.get()
    if observation is not None:
        observation.codes.append(code)


def cache(name: CacheName, *, hit: bool) -> None:
    """A read of cache `name` found its entry (`hit`) or went to the source."""
    observation = _current.get()
    if observation is not None:
        observation.metrics.cache.labels(name, "hit" if hit else "miss").inc()


def replica_read(outcome: ReplicaOutcome) -> None:
    """A read-only operation sent to the replica ran there (`replica`), or on the primary
    because the replica was `behind` or `unavailable`."""
    observation = _current.get()
    if observation is not None:
        observation.metrics.replica_reads.labels(outcome).inc()


def sign_in(method: str, outcome: str) -> None:
    """A sign-in step was recorded: `method` (password, external, platform, totp, ...) and
    its audit outcome (success, failure, denied)."""
    observation = _current.get()
    if observation is not None:
        observation.metrics.sign_ins.labels(method, outcome).inc()


def provisioned(seconds: float) -> None:
    """A tenant was provisioned in `seconds`, first write to commit."""
    observation = _current.get()
    if observation is not None:
        observation.metrics.provisioning.observe(seconds)
