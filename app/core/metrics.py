"""Prometheus metrics: every series the server exposes at GET /metrics, in one place.

Each label takes values from a set fixed in code (routes, error codes, cache names, ...),
except two that clients choose: the tenant and the GraphQL operation name. Those go through
`TopLabels`, so a process never exposes more than N + 1 values of either, whatever is sent.

With PROMETHEUS_MULTIPROC_DIR set *before the process starts* (prometheus-client reads it
at import), every worker writes its values to files there and any worker's /metrics sums
them all (counters and histograms over every process that ever ran since the directory was
emptied, gauges over the live ones). Without it the values live in this process's memory.
docs/observability.md lists every series and what to build on them.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Literal

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.exposition import choose_encoder

from app.core.settings import ObservabilitySettings

# The caches whose hits and misses are counted. A new cache adds its name here, so the label
# stays a fixed set and every series exists (at zero) from the start.
CacheName = Literal["tenant_slug", "tenant_access", "tenant_cors_origins", "permissions"]
CACHES: tuple[CacheName, ...] = (
    "tenant_slug",
    "tenant_access",
    "tenant_cors_origins",
    "permissions",
)
OTHER = "other"

# Latencies of whole requests and operations: a few milliseconds to the statement timeout.
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# One SQL statement: a round trip on loopback is ~0.1 ms.
_STATEMENT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)
_STATEMENT_COUNT_BUCKETS = (1, 2, 3, 5, 8, 13, 21, 34, 55, 89)
# Provisioning a tenant hashes its owner's password (Argon2, ~50 ms) in the transaction.
_PROVISIONING_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class TopLabels:
    """Which values of a client-chosen label get a series of their own: at most `limit`.

    A value is elected once it has been seen `min_count` times (by a space-saving count, so
    memory stays bounded however many distinct values arrive) while seats are free, and
    keeps its seat for the life of the process; everything else is `other`. The busiest
    values reach the count first. Seats are never given back: a series once exposed cannot
    be withdrawn in multiprocess mode, so only a fixed number of seats bounds the series.
    """

    def __init__(self, limit: int, *, min_count: int, capacity: int | None = None) -> None:
        self.limit = limit
        self.min_count = min_count
        self.capacity = capacity or max(64, 10 * limit)
        self._elected: set[str] = set()
        # value -> [count, error]: a space-saving summary (Metwally et al., 2005).
        self._counts: dict[str, list[int]] = {}

    @property
    def elected(self) -> frozenset[str]:
        return frozenset(self._elected)

    def label(self, value: str) -> str:
        """The label value to count `value` under (and one more sighting of it)."""
        if value in self._elected:
            return value
        if len(self._elected) >= self.limit:
            return OTHER
        count, error = self._sighting(value)
        # The count is an overestimate by at most `error`: elect on what is certain.
        if count - error < self.min_count:
            return OTHER
        self._elected.add(value)
        self._counts.pop(value, None)
        if len(self._elected) >= self.limit:
            self._counts.clear()  # no seat left to elect anyone to
        return value

    def _sighting(self, value: str) -> tuple[int, int]:
        entry = self._counts.get(value)
        if entry is not None:
            entry[0] += 1
        elif len(self._counts) < self.capacity:
            entry = self._counts[value] = [1, 0]
        else:
            # The least counted value makes room; the newcomer inherits its count as a
            # possible overestimate, so a heavy value is never undercounted.
            least = min(self._counts, key=lambda v: self._counts[v][0])
            floor = self._counts.pop(least)[0]
            entry = self._counts[value] = [floor + 1, floor]
        return entry[0], entry[1]


@dataclass(frozen=True)
class PoolUsage:
    """The database pool now: connections open, in use, the maximum, and sessions waiting."""

    size: int
    in_use: int
    max_size: int
    waiting: int


def multiprocess_mode() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Metrics:
    """The server's metrics, registered in a registry of their own (one per app)."""

    def __init__(self, settings: ObservabilitySettings) -> None:
        self.registry = r = CollectorRegistry()
        self.http_duration = Histogram(
            "tenantry_http_request_duration_seconds",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            buckets=_REQUEST_BUCKETS,
            registry=r,
        )
        self.operation_duration = Histogram(
            "tenantry_graphql_operation_duration_seconds",
            "GraphQL operations by name (the busiest, else other), type and outcome (OK or"
            " the first error code).",
            ["operation", "type", "outcome"],
            buckets=_REQUEST_BUCKETS,
            registry=r,
        )
        self.operation_statements = Histogram(
            "tenantry_graphql_operation_sql_statements",
            "SQL statements one GraphQL operation ran.",
            ["type"],
            buckets=_STATEMENT_COUNT_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "tenantry_errors", "Errors answered, by stable code.", ["code"], registry=r
        )
        self.rate_limited = Counter(
            "tenantry_rate_limited_requests",
            "Requests refused by a rate limit (HTTP 429 or TOO_MANY_ATTEMPTS), by code.",
            ["code"],
            registry=r,
        )
        self.sign_ins = Counter(
            "tenantry_sign_ins",
            "Sign-in steps recorded in the audit logs, by method and outcome.",
            ["method", "outcome"],
            registry=r,
        )
        self.cache = Counter(
            "tenantry_cache_requests",
            "Cache reads by cache and result (hit or miss).",
            ["cache", "result"],
            registry=r,
        )
        self.statement_duration = Histogram(
            "tenantry_db_statement_duration_seconds",
            "SQL statements of requests, by their first keyword.",
            ["verb"],
            buckets=_STATEMENT_BUCKETS,
            registry=r,
        )
        self.pool_connections = Gauge(
            "tenantry_db_pool_connections",
            "Database pool connections by state (in_use, idle, max), summed over live processes.",
            ["state"],
            multiprocess_mode="livesum",
            registry=r,
        )
        self.pool_waiting = Gauge(
            "tenantry_db_pool_waiting",
            "Operations waiting for a pooled connection, summed over live processes.",
            multiprocess_mode="livesum",
            registry=r,
        )
        self.replica_reads = Counter(
            "tenantry_replica_reads",
            "Read-only operations sent to the read replica, by where they ran: replica, or"
            " the primary because the replica was behind (had not replayed the tenant's"
            " newest commit in time) or unavailable.",
            ["outcome"],
            registry=r,
        )
        self.provisioning = Histogram(
            "tenantry_tenant_provisioning_seconds",
            "Tenants provisioned (created or signed up), from the first write to the commit.",
            buckets=_PROVISIONING_BUCKETS,
            registry=r,
        )
        self.tenant_requests = Counter(
            "tenantry_tenant_requests",
            "Requests per tenant (the busiest tenants, else other), by outcome (ok, error).",
            ["tenant", "outcome"],
            registry=r,
        )
        self.tenant_seconds = Counter(
            "tenantry_tenant_request_seconds",
            "Time spent answering each tenant's requests.",
            ["tenant"],
            registry=r,
        )
        self.tenant_database_seconds = Counter(
            "tenantry_tenant_database_seconds",
            "Time each tenant's requests spent in SQL statements.",
            ["tenant"],
            registry=r,
        )
        self.tenants = TopLabels(settings.metrics_tenants, min_count=settings.metrics_min_requests)
        self.operations = TopLabels(
            settings.metrics_operations, min_count=settings.metrics_min_requests
        )
        for cache in CACHES:
            for result in ("hit", "miss"):
                self.cache.labels(cache, result)
        if not multiprocess_mode():
            # Memory, CPU and file descriptors of this process (meaningless summed over
            # workers, so only in single-process mode).
            for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
                r.register(collector)

    def tenant_label(self, tenant_id: str) -> str:
        return self.tenants.label(tenant_id)

    def operation_label(self, name: str | None) -> str:
        # GraphQL names are [_A-Za-z][_0-9A-Za-z]*; a long one is no one's real operation.
        if name is None:
            return "anonymous"
        return self.operations.label(name[:64])

    def pool(self, usage: PoolUsage) -> None:
        self.pool_connections.labels("in_use").set(usage.in_use)
        self.pool_connections.labels("idle").set(usage.size - usage.in_use)
        self.pool_connections.labels("max").set(usage.max_size)
        self.pool_waiting.set(usage.waiting)

    def process_ended(self) -> None:
        """In multiprocess mode, drop this process's gauges (pool use) from the live sums; a
        process that dies without this leaves its last values until the directory is
        emptied (docs/observability.md)."""
        if multiprocess_mode():
            prometheus_multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition (Prometheus text, or OpenMetrics when asked) and its content type:
        of every process in multiprocess mode, of this one otherwise."""
        registry = self.registry
        if multiprocess_mode():
            registry = CollectorRegistry()
            prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        encoder, content_type = choose_encoder(accept or "")
        return encoder(registry), content_type


@functools.lru_cache(maxsize=1024)
def statement_verb(sql: str) -> str:
    """The first keyword of a statement (select, insert, ...): a label with a fixed set."""
    word = sql.lstrip()[:7].split(maxsplit=1)
    verb = word[0].lower() if word else ""
    return verb if verb in _VERBS else "other"


_VERBS = frozenset({"select", "insert", "update", "delete", "with"})
