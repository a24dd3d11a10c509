"""The ASGI application: routes, middleware, and a lifespan holding the database pool.

`create_app(settings)` needs a database URL; `tenantry serve` starts the embedded
PostgreSQL first when none is configured. Nothing here runs at import time.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

from opentelemetry.sdk.trace import TracerProvider
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from app.accounts.mailer import mailer_for
from app.api.cors import CorsMiddleware
from app.api.documents import documents_for
from app.api.encoding import JSONBody
from app.api.fairness import FairSharing, TenantLimitMiddleware
from app.api.graphiql import STATIC_DIR
from app.api.headers import SecurityHeadersMiddleware
from app.api.middleware import (
    AnonymousRateLimitMiddleware,
    AuthenticationMiddleware,
    BodyLimitMiddleware,
    ErrorBoundaryMiddleware,
    RequestIdMiddleware,
    TenantResolutionMiddleware,
)
from app.api.observability import ObservabilityMiddleware, Telemetry
from app.api.view import STATIC_PREFIX, GraphQLView
from app.auth.revocation import request_access
from app.core import logs
from app.core.db import Database
from app.core.keys import KeyRing
from app.core.migrate import known_versions
from app.core.ratelimit import Rate, TokenBuckets
from app.core.readiness import readiness
from app.core.replicas import routing_reads
from app.core.security import TokenService
from app.core.settings import Settings, SettingsError
from app.core.store import Store
from app.identity.resolvers import install_jwks_cache
from app.mfa.service import ensure_keys as ensure_mfa_keys
from app.platform.impersonation import impersonation_live, record_operation
from app.platform.service import actor_for as platform_actor_for
from app.rbac.service import actor_for
from app.schema import build_schema
from app.tenants.resolution import cors_origins_of, record_mismatch, tenant_id_of

logger = logging.getLogger("tenantry")


class State(TypedDict):
    """Lifespan state, copied into every request's `request.state`."""

    database: Database
    store: Store


async def healthz(request: Request) -> JSONBody:
    """Liveness: the process answers."""
    return JSONBody({"status": "ok"})


def create_app(
    settings: Settings,
    *,
    database: Database | None = None,
    tracer_provider: TracerProvider | None = None,
) -> Starlette:
    """The application; with `database`, that pool is used (and left open) instead of a new one.

    Tests pass their own pool so the server and the test share one event loop and one set of
    statement listeners; and a `tracer_provider` to trace into (else the OTEL_* variables
    decide, app/core/tracing.py).
    """
    if settings.database_url is None and database is None:
        raise SettingsError("no database URL: set DATABASE_URL or use `tenantry serve`")
    given = database
    keys = KeyRing.from_file(settings.keys_file, create=settings.environment == "development")
    # A production server without its MFA key file fails here, not at the first enrolment.
    ensure_mfa_keys(settings)
    # Likewise a malformed TENANTRY_SMTP_URL.
    mailer_for(settings)
    tokens = TokenService.from_settings(keys, settings)
    schema = build_schema(settings.limits, introspection=settings.introspection)
    # Redis when configured (connections open lazily), else this process's memory.
    store = Store.from_settings(settings)
    telemetry = Telemetry(settings.observability, provider=tracer_provider)
    buckets = TokenBuckets(store)
    sharing = FairSharing.of(settings, buckets)
    graphql = GraphQLView(
        schema,
        settings=settings,
        tokens=tokens,
        authorize=actor_for,
        authorize_platform=platform_actor_for,
        record_impersonated=record_operation,
        documents=documents_for(settings.transport, store, schema),
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        wait_ms = settings.read_replica_wait_ms
        if given is not None:
            try:
                with routing_reads(given, store, wait_ms=wait_ms):
                    yield {"database": given, "store": store}
            finally:
                await store.close()
                telemetry.shutdown()
            return
        assert settings.database_url is not None
        database = await Database.connect(
            settings.database_url,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            statement_timeout_ms=settings.limits.statement_timeout_ms,
            lock_timeout_ms=settings.limits.lock_timeout_ms,
            acquire_timeout_ms=settings.pool_acquire_timeout_ms,
            tenant_max_size=settings.pool_tenant_max_size,
            transaction_pooler=settings.database_pooler == "transaction",
            replica_dsn=settings.read_database_url,
        )
        try:
            with routing_reads(database, store, wait_ms=wait_ms):
                yield {"database": database, "store": store}
        finally:
            await store.close()
            await database.close()
            telemetry.shutdown()

    # The schema this code needs: readiness compares the database's with it.
    expected_schema = known_versions()[-1]

    async def readyz(request: Request) -> JSONBody:
        """Readiness: the database (with the schema this code needs) and the store, each
        named with its latency; 503 when the database is not usable (app/core/readiness.py)."""
        ready, report = await readiness(
            request.state.database,
            request.state.store,
            expected_schema=expected_schema,
            timeout_ms=settings.ready_timeout_ms,
        )
        return JSONBody(report, status_code=200 if ready else 503)

    async def jwks(request: Request) -> JSONBody:
        """Public keys that verify access tokens, for other services."""
        return JSONBody(tokens.public_jwks(), headers={"cache-control": "max-age=300"})

    routes: list[BaseRoute] = [
        # Every method: the view answers those it does not take (405, with Allow) in JSON.
        Route("/graphql", graphql),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/.well-known/jwks.json", jwks),
    ]
    if settings.graphiql:
        routes.append(Mount(STATIC_PREFIX, app=StaticFiles(directory=STATIC_DIR), name="graphiql"))
    app = Starlette(
        routes=routes,
        middleware=[
            # The HTTP span when tracing, outermost, so every other step is inside it.
            *telemetry.outer_middleware(),
            Middleware(
                SecurityHeadersMiddleware,
                hsts_max_age_seconds=settings.browsers.hsts_max_age_seconds,
            ),
            Middleware(RequestIdMiddleware),
            # Access log, metrics and GET /metrics: before anything can refuse the request.
            Middleware(ObservabilityMiddleware, telemetry=telemetry),
            # Outside every middleware that answers on its own (413, 401, 403, 429), so a page
            # of an allowed origin can read those answers too.
            Middleware(
                CorsMiddleware,
                settings=settings.browsers,
                store=store,
                base_domain=settings.base_domain,
                tenant_origins=cors_origins_of,
            ),
            # Failures outside GraphQL (a middleware's database or store call) as JSON 503/500,
            # inside CORS so an allowed page can read them, and inside the access log.
            Middleware(ErrorBoundaryMiddleware),
            Middleware(
                AuthenticationMiddleware,
                tokens=tokens,
                store=store,
                tenant_access=request_access,
                impersonation_live=impersonation_live,
            ),
            # After the token's verification, so a request whose token was refused counts as
            # anonymous too (it may still run `@public` operations); before any tenant or
            # GraphQL work and before the body is read.
            Middleware(
                AnonymousRateLimitMiddleware,
                buckets=buckets,
                rate=Rate(settings.limits.anonymous_burst, settings.limits.anonymous_per_minute),
                paths=frozenset({"/graphql"}),
            ),
            Middleware(
                BodyLimitMiddleware,
                max_bytes=settings.limits.max_body_bytes,
                anonymous_max_bytes=settings.limits.max_anonymous_body_bytes,
            ),
            Middleware(
                TenantResolutionMiddleware,
                store=store,
                base_domain=settings.base_domain,
                resolve=tenant_id_of,
                on_mismatch=record_mismatch,
            ),
            # A signed-in request's plan rates and its tenant's fair share of this process.
            Middleware(TenantLimitMiddleware, sharing=sharing),
        ],
        lifespan=lifespan,
    )
    install_jwks_cache(app.state, settings)
    # For metrics and the fault tests: the store's breaker, the limits and fair admission,
    # with their counts.
    app.state.store = store
    app.state.fair_sharing = sharing
    return app


def freeze_heap() -> None:
    """Take everything alive now (modules, the schema, the application) out of the cyclic
    collector's view: it lives as long as the process, and full collections then stop
    rescanning it on every burst of requests (docs/performance.md)."""
    gc.collect()
    gc.freeze()


def from_environment() -> Starlette:
    """The application of one `tenantry serve --workers N` process, which uvicorn starts
    fresh: its settings come from the environment the parent process prepared."""
    settings = Settings.from_env()
    logs.configure(settings.observability)
    app = create_app(settings)
    freeze_heap()
    return app
