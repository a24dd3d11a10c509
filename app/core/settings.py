"""Typed settings read once from the environment; nothing here is read at import time."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import platformdirs

from app.core.origins import OriginError, origin

Environment = Literal["development", "production"]
LogFormat = Literal["json", "text"]
# What sits between the server and PostgreSQL: nothing (or a pooler in session mode), or a
# pooler in transaction mode (PgBouncer's pool_mode=transaction), which hands every
# transaction to whichever server connection is free (docs/scale-out.md).
DatabasePooler = Literal["none", "transaction"]
TracesExporter = Literal["otlp", "console"]
MAX_IMPERSONATION_TTL_SECONDS = 900


class SettingsError(ValueError):
    """A setting has a value the server cannot run with."""


def _int(
    env: Mapping[str, str], name: str, default: int, *, minimum: int = 1, maximum: int | None = None
) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name} must be at most {maximum}, got {value}")
    return value


def check_database_url(name: str, url: str) -> str:
    """`url` if it is a PostgreSQL URL the drivers can use, else a SettingsError naming `name`.

    The message never repeats the URL: it may hold a password.
    """
    try:
        parts = urlsplit(url)
        # libpq and asyncpg accept several hosts (host1:5432,host2:5433); each port must be
        # a number in 1-65535 (`.port` raises ValueError otherwise).
        ports = [urlsplit("//" + host).port for host in parts.netloc.rpartition("@")[2].split(",")]
    except ValueError:
        raise SettingsError(f"{name} is not a valid URL (check its host and port)") from None
    if parts.scheme not in ("postgres", "postgresql"):
        raise SettingsError(
            f"{name} must be a URL like postgresql://user:password@host:5432/database"
        )
    if 0 in ports:
        raise SettingsError(f"{name} has port 0")
    return url


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


@dataclass(frozen=True)
class Limits:
    """Request hardening limits, built into the schema once at start-up."""

    # Checked together in one pass before graphql-core validates a document (app/api/limits.py).
    # Depth counts object levels: a connection with its edges/node or nodes is one.
    max_depth: int = 10
    max_aliases: int = 30
    max_tokens: int = 2000
    # For requests without a token: graphql-core's parsing and validation cost tens of
    # microseconds per token, and signing in (~30) or GraphiQL's introspection query (~170)
    # need far fewer.
    max_anonymous_tokens: int = 250
    # Field selections once every fragment spread is expanded.
    max_fields: int = 1000
    # `__schema` / `__type` per document, and how deep `ofType` may nest (GraphiQL asks 9).
    max_introspection_roots: int = 3
    max_introspection_type_depth: int = 9
    # Work units graphql-core may spend comparing same-named fields (app/api/extensions.py).
    validation_budget: int = 2000
    default_page_size: int = 20
    max_page_size: int = 100
    max_body_bytes: int = 1_000_000
    # Without a token: signing in or GraphiQL's introspection request (~3 KB) fit easily.
    max_anonymous_body_bytes: int = 16_384
    # The most objects one operation's connections could return together (app/api/limits.py).
    max_nodes: int = 20_000
    statement_timeout_ms: int = 5000
    # Requests to /graphql without a token, per client address (an IPv6 address's /64): a
    # token bucket of `anonymous_burst` refilled at `anonymous_per_minute` (app/core/ratelimit.py).
    anonymous_burst: int = 60
    anonymous_per_minute: int = 60
    # How long a statement waits for a row or table lock another transaction holds.
    lock_timeout_ms: int = 2000
    # Fair admission (app/core/admission.py): operations of one tenant running at once in a
    # server process while it is alone, split between the tenants active within the last
    # second (0: no limit); how many more may wait for a turn, and for how long.
    tenant_concurrency: int = 2
    tenant_queue: int = 64
    tenant_queue_wait_ms: int = 10_000


@dataclass(frozen=True)
class AuthSettings:
    """Sessions, account tokens, MFA and sign-in throttling."""

    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    # A rotated refresh token presented again within this window is a retry, not reuse.
    refresh_reuse_grace_seconds: int = 10
    # Half-finished sign-ins (MFA challenge or forced enrolment).
    challenge_ttl_seconds: int = 300
    # Disabling MFA or regenerating recovery codes needs AAL 2 at most this old.
    fresh_auth_seconds: int = 600
    invitation_ttl_seconds: int = 7 * 24 * 3600
    password_reset_ttl_seconds: int = 3600
    email_verification_ttl_seconds: int = 24 * 3600
    # Failed attempts tolerated per window (docs/authentication.md, "Throttling"): per account
    # from one client network (and per user for second factors); from clients the account has
    # not signed in from recently also per account in all, per client network and per tenant.
    throttle_window_seconds: int = 900
    throttle_per_account: int = 10
    throttle_per_ip: int = 50
    throttle_per_tenant: int = 500
    throttle_per_account_total: int = 100
    # How long a client network the account proved itself from stays familiar.
    throttle_familiar_days: int = 30
    # Where links in mails point (invitation acceptance, password reset, verification).
    public_url: str = "http://127.0.0.1:8000"
    # SMTP server for production mail (smtp://user:pass@host:port); None: development mailer.
    smtp_url: str | None = None
    mail_from: str = "Tenantry <no-reply@localhost>"
    # AES-GCM keys for TOTP secrets; generated in data_dir if unset (development).
    mfa_keys_file: Path | None = None


@dataclass(frozen=True)
class BrowserSettings:
    """What browsers are told: which other origins' pages may call the API (CORS,
    app/api/cors.py) and the security headers of every response (app/api/headers.py)."""

    # Exact origins (scheme://host[:port]) allowed on every host, besides each tenant's own
    # on its subdomain; ("*",): any origin, refused with credentials.
    cors_origins: tuple[str, ...] = ()
    # Off: browsers send no cookies or HTTP authentication with cross-origin calls (bearer
    # tokens travel in the Authorization header, which needs no credentials mode).
    cors_credentials: bool = False
    # How long a browser may reuse a preflight's answer (Chromium caps it at 7200 s).
    cors_max_age_seconds: int = 600
    # Strict-Transport-Security on responses served over https; 0: not sent.
    hsts_max_age_seconds: int = 31_536_000

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BrowserSettings:
        credentials = _bool(env, "TENANTRY_CORS_CREDENTIALS", cls.cors_credentials)
        origins: list[str] = []
        for entry in env.get("TENANTRY_CORS_ORIGINS", "").replace(",", " ").split():
            if entry == "*" and not credentials:
                origins.append(entry)
                continue
            if entry == "*":
                raise SettingsError(
                    "TENANTRY_CORS_ORIGINS cannot be * with TENANTRY_CORS_CREDENTIALS on:"
                    " list the origins"
                )
            try:
                normalised = origin(entry)
            except OriginError as error:
                raise SettingsError(f"TENANTRY_CORS_ORIGINS: {entry!r} {error}") from None
            if normalised not in origins:
                origins.append(normalised)
        return cls(
            cors_origins=tuple(origins),
            cors_credentials=credentials,
            cors_max_age_seconds=_int(
                env, "TENANTRY_CORS_MAX_AGE", cls.cors_max_age_seconds, minimum=0
            ),
            hsts_max_age_seconds=_int(
                env, "TENANTRY_HSTS_MAX_AGE", cls.hsts_max_age_seconds, minimum=0
            ),
        )


@dataclass(frozen=True)
class TransportSettings:
    """GraphQL over HTTP beyond one document per request (app/api/documents.py, view.py and
    docs/clients.md): automatic persisted queries, trusted documents, batching."""

    # Apollo's automatic persisted queries: documents registered by their SHA-256 in the
    # store (Redis: shared by every process), per tenant at most `apq_max_entries` of at
    # most `apq_max_document_bytes`, each kept `apq_ttl_seconds` from its registration.
    apq: bool = True
    apq_ttl_seconds: int = 24 * 3600
    apq_max_entries: int = 1000
    apq_max_document_bytes: int = 16_384
    # A manifest of registered operations: when set, only they run (trusted documents).
    trusted_documents_file: Path | None = None
    # Operations one POST may carry as a JSON array; 0: batching off.
    max_batch_operations: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TransportSettings:
        trusted = env.get("TENANTRY_TRUSTED_DOCUMENTS") or None
        return cls(
            apq=_bool(env, "TENANTRY_APQ", cls.apq),
            apq_ttl_seconds=_int(env, "TENANTRY_APQ_TTL", cls.apq_ttl_seconds, minimum=60),
            apq_max_entries=_int(env, "TENANTRY_APQ_MAX_ENTRIES", cls.apq_max_entries),
            apq_max_document_bytes=_int(
                env, "TENANTRY_APQ_MAX_DOCUMENT_BYTES", cls.apq_max_document_bytes
            ),
            trusted_documents_file=Path(trusted) if trusted else None,
            max_batch_operations=_int(
                env, "TENANTRY_MAX_BATCH", cls.max_batch_operations, minimum=0, maximum=100
            ),
        )


@dataclass(frozen=True)
class ObservabilitySettings:
    """Logs, metrics and traces (app/core/logs.py, metrics.py, tracing.py and
    docs/observability.md)."""

    # json: one JSON object per line, for a log pipeline; text: readable lines.
    log_format: LogFormat = "text"
    log_level: str = "INFO"
    # A request slower than this gets a WARNING line naming its slowest statement; 0: never.
    slow_request_ms: int = 1000
    # GET /metrics answers `Authorization: Bearer <token>` only; without a token it is open
    # when `metrics_public` (the development default) and not served otherwise.
    metrics_token: str | None = None
    metrics_public: bool = True
    # Per-tenant and per-operation series: at most this many tenants and operation names per
    # process get their own label value, once they have made `metrics_min_requests`
    # requests there; all others count as `other` (a label set that cannot grow unbounded).
    metrics_tenants: int = 20
    metrics_operations: int = 50
    metrics_min_requests: int = 50
    # Where traces go: set by the standard OTEL_* variables; None: no tracing at all.
    traces_exporter: TracesExporter | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, dev: bool) -> ObservabilitySettings:
        log_format = env.get("TENANTRY_LOG_FORMAT", "") or ("text" if dev else "json")
        if log_format not in ("json", "text"):
            raise SettingsError(f"TENANTRY_LOG_FORMAT must be json or text, got {log_format!r}")
        level = (env.get("TENANTRY_LOG_LEVEL", "") or cls.log_level).upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise SettingsError(
                f"TENANTRY_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}"
            )
        token = env.get("TENANTRY_METRICS_TOKEN") or None
        # A bearer token is the only thing between the internet and every tenant's activity.
        if token is not None and len(token) < 16:
            raise SettingsError("TENANTRY_METRICS_TOKEN must be at least 16 characters")
        return cls(
            log_format="json" if log_format == "json" else "text",
            log_level=level,
            slow_request_ms=_int(env, "TENANTRY_SLOW_REQUEST_MS", cls.slow_request_ms, minimum=0),
            metrics_token=token,
            metrics_public=_bool(env, "TENANTRY_METRICS_PUBLIC", dev),
            metrics_tenants=_int(env, "TENANTRY_METRICS_TENANTS", cls.metrics_tenants, minimum=0),
            metrics_operations=_int(
                env, "TENANTRY_METRICS_OPERATIONS", cls.metrics_operations, minimum=0
            ),
            metrics_min_requests=_int(
                env, "TENANTRY_METRICS_MIN_REQUESTS", cls.metrics_min_requests
            ),
            traces_exporter=_traces_exporter(env),
        )


def _pooler(env: Mapping[str, str]) -> DatabasePooler:
    raw = env.get("TENANTRY_DATABASE_POOLER", "").strip().lower() or "none"
    if raw not in ("none", "transaction"):
        raise SettingsError(
            f"TENANTRY_DATABASE_POOLER must be none or transaction, got {raw!r}"
            " (a pooler in session mode needs none; statement mode cannot run transactions)"
        )
    return "transaction" if raw == "transaction" else "none"


def _traces_exporter(env: Mapping[str, str]) -> TracesExporter | None:
    """The exporter the standard OpenTelemetry variables ask for; None: tracing off."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if exporter == "none" or (not exporter and not endpoint):
        return None
    if exporter == "console":
        return "console"
    if exporter not in ("", "otlp"):
        raise SettingsError(f"OTEL_TRACES_EXPORTER must be otlp, console or none, got {exporter!r}")
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    # The gRPC exporter would bring grpcio; every collector also takes OTLP over HTTP (4318).
    if protocol != "http/protobuf":
        raise SettingsError(
            f"OTLP over {protocol} is not supported: set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"
            " (the collector's port 4318)"
        )
    return "otlp"


@dataclass(frozen=True)
class Settings:
    """Everything the server is configured with. Build with `Settings.from_env()`."""

    environment: Environment = "development"
    # None means "use the embedded PostgreSQL in data_dir".
    database_url: str | None = None
    migration_database_url: str | None = None
    redis_url: str | None = None
    data_dir: Path = field(default_factory=lambda: Path(platformdirs.user_data_dir("tenantry")))
    host: str = "127.0.0.1"
    port: int = 8000
    # Proxies whose X-Forwarded-For is believed (comma-separated addresses or "*"); None:
    # the peer address is the client's.
    forwarded_allow_ips: str | None = None
    jwt_issuer: str = "tenantry"
    jwt_audience: str = "tenantry-api"
    access_token_ttl_seconds: int = 900
    # Platform administrators' tokens: their own audience (never accepted as a tenant
    # user's), and no refresh token: a platform session ends with its access token.
    jwt_platform_audience: str = "tenantry-platform"
    platform_token_ttl_seconds: int = 1800
    # Break-glass impersonation tokens (docs/platform.md): short, never refreshed, and never
    # outliving the administrator's platform session.
    impersonation_token_ttl_seconds: int = 900
    # How long a deleted tenant can still be restored (then only purged).
    tenant_retention_days: int = 30
    # When set, `<slug>.<base_domain>` in the Host header names a tenant (app/api/middleware.py).
    base_domain: str | None = None
    # Self-service sign-up (`signUp` creates a tenant on the default plan): off unless
    # enabled, and at most this many attempts per client IP per hour.
    signup_enabled: bool = False
    signup_per_ip_per_hour: int = 5
    # A JSON Web Key Set file holding the private signing keys; generated in data_dir if unset.
    signing_keys_file: Path | None = None
    graphiql: bool = True
    introspection: bool = True
    pool_min_size: int = 1
    pool_max_size: int = 10
    # How long a request waits for a pooled connection before it is answered 503.
    pool_acquire_timeout_ms: int = 2000
    # Connections the requests of one tenant may hold at once; None: half the pool.
    pool_tenant_max_size: int | None = None
    # The budget of each readiness check (GET /readyz).
    ready_timeout_ms: int = 1000
    # "transaction": DATABASE_URL reaches PostgreSQL through a transaction pooler, so nothing
    # may live on a server connection beyond one transaction (no prepared statements).
    database_pooler: DatabasePooler = "none"
    # A streaming replica for query operations (docs/scale-out.md), and how long a query
    # waits for it to replay its tenant's newest commit before reading from the primary.
    read_database_url: str | None = None
    read_replica_wait_ms: int = 100
    # Redis is optional at run time (app/core/store.py): each call's budget, the failed calls
    # in a row that open the circuit breaker, and how often it then tries Redis again.
    redis_timeout_ms: int = 50
    redis_failures_to_open: int = 3
    redis_retry_ms: int = 1000
    limits: Limits = field(default_factory=Limits)
    auth: AuthSettings = field(default_factory=AuthSettings)
    browsers: BrowserSettings = field(default_factory=BrowserSettings)
    observability: ObservabilitySettings = field(default_factory=ObservabilitySettings)
    transport: TransportSettings = field(default_factory=TransportSettings)

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @property
    def keys_file(self) -> Path:
        return self.signing_keys_file or self.data_dir / "keys" / "signing-keys.json"

    @property
    def mfa_keys_path(self) -> Path:
        return self.auth.mfa_keys_file or self.data_dir / "keys" / "mfa-keys.json"

    def development_defaults(self) -> list[str]:
        """What a production server must not start with, one line each (none in development).

        Each is convenient in development and unsafe in production: keys anyone with the
        data directory has, the embedded database, or answering about the schema to anyone.
        """
        if self.environment != "production":
            return []
        problems = []
        if self.embedded:
            problems.append(
                "DATABASE_URL is not set: production never runs the embedded PostgreSQL"
            )
        for variable, given in (
            ("TENANTRY_SIGNING_KEYS_FILE", self.signing_keys_file),
            ("TENANTRY_MFA_KEYS_FILE", self.auth.mfa_keys_file),
        ):
            if given is None:
                problems.append(
                    f"{variable} is not set: production uses keys you provide, never the ones"
                    " development generates in the data directory"
                )
        if self.graphiql:
            problems.append("TENANTRY_GRAPHIQL is on: production serves no GraphiQL")
        if self.introspection:
            problems.append(
                "TENANTRY_INTROSPECTION is on: production answers no introspection"
                " (give clients schema.graphql)"
            )
        return problems

    def with_database(self, database_url: str, migration_database_url: str) -> Settings:
        return replace(
            self, database_url=database_url, migration_database_url=migration_database_url
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        environment = env.get("TENANTRY_ENV", "development")
        if environment not in ("development", "production"):
            raise SettingsError(
                f"TENANTRY_ENV must be development or production, got {environment!r}"
            )
        dev = environment == "development"
        database_url = env.get("DATABASE_URL") or None
        migration_url = env.get("MIGRATION_DATABASE_URL") or None
        read_url = env.get("TENANTRY_READ_DATABASE_URL") or None
        for name, url in (
            ("DATABASE_URL", database_url),
            ("MIGRATION_DATABASE_URL", migration_url),
            ("TENANTRY_READ_DATABASE_URL", read_url),
        ):
            if url is not None:
                check_database_url(name, url)
        for name, url in (
            ("MIGRATION_DATABASE_URL", migration_url),
            ("TENANTRY_READ_DATABASE_URL", read_url),
        ):
            if url and not database_url:
                raise SettingsError(f"{name} is set but DATABASE_URL is not")
        data_dir = env.get("TENANTRY_DATA_DIR")
        keys_file = env.get("TENANTRY_SIGNING_KEYS_FILE")
        limits = Limits(
            max_depth=_int(env, "TENANTRY_MAX_DEPTH", Limits.max_depth),
            max_aliases=_int(env, "TENANTRY_MAX_ALIASES", Limits.max_aliases),
            max_tokens=_int(env, "TENANTRY_MAX_TOKENS", Limits.max_tokens),
            max_anonymous_tokens=_int(
                env, "TENANTRY_MAX_ANONYMOUS_TOKENS", Limits.max_anonymous_tokens
            ),
            max_fields=_int(env, "TENANTRY_MAX_FIELDS", Limits.max_fields),
            default_page_size=_int(env, "TENANTRY_DEFAULT_PAGE_SIZE", Limits.default_page_size),
            max_page_size=_int(env, "TENANTRY_MAX_PAGE_SIZE", Limits.max_page_size),
            max_body_bytes=_int(env, "TENANTRY_MAX_BODY_BYTES", Limits.max_body_bytes),
            max_anonymous_body_bytes=_int(
                env, "TENANTRY_MAX_ANONYMOUS_BODY_BYTES", Limits.max_anonymous_body_bytes
            ),
            max_nodes=_int(env, "TENANTRY_MAX_NODES", Limits.max_nodes),
            statement_timeout_ms=_int(
                env, "TENANTRY_STATEMENT_TIMEOUT_MS", Limits.statement_timeout_ms
            ),
            anonymous_burst=_int(env, "TENANTRY_ANONYMOUS_BURST", Limits.anonymous_burst),
            anonymous_per_minute=_int(
                env, "TENANTRY_ANONYMOUS_PER_MINUTE", Limits.anonymous_per_minute
            ),
            lock_timeout_ms=_int(env, "TENANTRY_LOCK_TIMEOUT_MS", Limits.lock_timeout_ms),
            tenant_concurrency=_int(
                env, "TENANTRY_TENANT_CONCURRENCY", Limits.tenant_concurrency, minimum=0
            ),
            tenant_queue=_int(env, "TENANTRY_TENANT_QUEUE", Limits.tenant_queue, minimum=0),
            tenant_queue_wait_ms=_int(
                env, "TENANTRY_TENANT_QUEUE_WAIT_MS", Limits.tenant_queue_wait_ms
            ),
        )
        if limits.default_page_size > limits.max_page_size:
            raise SettingsError("TENANTRY_DEFAULT_PAGE_SIZE exceeds TENANTRY_MAX_PAGE_SIZE")
        defaults = cls()
        audience = env.get("TENANTRY_JWT_AUDIENCE", defaults.jwt_audience)
        platform_audience = env.get(
            "TENANTRY_JWT_PLATFORM_AUDIENCE", defaults.jwt_platform_audience
        )
        if platform_audience == audience:
            raise SettingsError(
                "TENANTRY_JWT_PLATFORM_AUDIENCE must differ from TENANTRY_JWT_AUDIENCE"
            )
        impersonation_ttl = _int(
            env,
            "TENANTRY_IMPERSONATION_TTL",
            defaults.impersonation_token_ttl_seconds,
            minimum=60,
        )
        # Acting as someone else is break-glass: a longer window would need a new reason.
        if impersonation_ttl > MAX_IMPERSONATION_TTL_SECONDS:
            raise SettingsError(
                f"TENANTRY_IMPERSONATION_TTL must be at most {MAX_IMPERSONATION_TTL_SECONDS},"
                f" got {impersonation_ttl}"
            )
        pool_max_size = _int(env, "TENANTRY_POOL_MAX_SIZE", defaults.pool_max_size)
        tenant_max = _int(env, "TENANTRY_POOL_TENANT_MAX_SIZE", 0, minimum=0) or None
        if tenant_max is not None and tenant_max > pool_max_size:
            raise SettingsError(
                f"TENANTRY_POOL_TENANT_MAX_SIZE ({tenant_max}) exceeds TENANTRY_POOL_MAX_SIZE"
                f" ({pool_max_size})"
            )
        mfa_keys = env.get("TENANTRY_MFA_KEYS_FILE")
        a = AuthSettings
        auth = AuthSettings(
            refresh_token_ttl_seconds=_int(
                env, "TENANTRY_REFRESH_TOKEN_TTL", a.refresh_token_ttl_seconds, minimum=60
            ),
            refresh_reuse_grace_seconds=_int(
                env, "TENANTRY_REFRESH_REUSE_GRACE", a.refresh_reuse_grace_seconds, minimum=0
            ),
            challenge_ttl_seconds=_int(
                env, "TENANTRY_CHALLENGE_TTL", a.challenge_ttl_seconds, minimum=30
            ),
            fresh_auth_seconds=_int(env, "TENANTRY_FRESH_AUTH", a.fresh_auth_seconds, minimum=30),
            invitation_ttl_seconds=_int(env, "TENANTRY_INVITATION_TTL", a.invitation_ttl_seconds),
            password_reset_ttl_seconds=_int(
                env, "TENANTRY_PASSWORD_RESET_TTL", a.password_reset_ttl_seconds
            ),
            email_verification_ttl_seconds=_int(
                env, "TENANTRY_EMAIL_VERIFICATION_TTL", a.email_verification_ttl_seconds
            ),
            throttle_window_seconds=_int(
                env, "TENANTRY_THROTTLE_WINDOW", a.throttle_window_seconds
            ),
            throttle_per_account=_int(env, "TENANTRY_THROTTLE_PER_ACCOUNT", a.throttle_per_account),
            throttle_per_ip=_int(env, "TENANTRY_THROTTLE_PER_IP", a.throttle_per_ip),
            throttle_per_tenant=_int(env, "TENANTRY_THROTTLE_PER_TENANT", a.throttle_per_tenant),
            throttle_per_account_total=_int(
                env, "TENANTRY_THROTTLE_PER_ACCOUNT_TOTAL", a.throttle_per_account_total
            ),
            throttle_familiar_days=_int(
                env, "TENANTRY_THROTTLE_FAMILIAR_DAYS", a.throttle_familiar_days, minimum=0
            ),
            public_url=env.get("TENANTRY_PUBLIC_URL", a.public_url).rstrip("/"),
            smtp_url=env.get("TENANTRY_SMTP_URL") or None,
            mail_from=env.get("TENANTRY_MAIL_FROM", a.mail_from),
            mfa_keys_file=Path(mfa_keys) if mfa_keys else None,
        )
        return cls(
            environment="development" if dev else "production",
            database_url=database_url,
            migration_database_url=migration_url or database_url,
            redis_url=env.get("REDIS_URL") or None,
            data_dir=Path(data_dir) if data_dir else defaults.data_dir,
            host=env.get("TENANTRY_HOST", defaults.host),
            port=_int(env, "TENANTRY_PORT", defaults.port, maximum=65535),
            forwarded_allow_ips=env.get("TENANTRY_FORWARDED_ALLOW_IPS") or None,
            jwt_issuer=env.get("TENANTRY_JWT_ISSUER", defaults.jwt_issuer),
            jwt_audience=audience,
            access_token_ttl_seconds=_int(env, "TENANTRY_ACCESS_TOKEN_TTL", 900, minimum=30),
            jwt_platform_audience=platform_audience,
            platform_token_ttl_seconds=_int(
                env,
                "TENANTRY_PLATFORM_TOKEN_TTL",
                defaults.platform_token_ttl_seconds,
                minimum=60,
            ),
            impersonation_token_ttl_seconds=impersonation_ttl,
            signing_keys_file=Path(keys_file) if keys_file else None,
            base_domain=(env.get("TENANTRY_BASE_DOMAIN") or "").strip(".").lower() or None,
            tenant_retention_days=_int(
                env, "TENANTRY_TENANT_RETENTION_DAYS", defaults.tenant_retention_days, minimum=0
            ),
            signup_enabled=_bool(env, "TENANTRY_SIGNUP", defaults.signup_enabled),
            signup_per_ip_per_hour=_int(
                env, "TENANTRY_SIGNUP_PER_IP_PER_HOUR", defaults.signup_per_ip_per_hour
            ),
            graphiql=_bool(env, "TENANTRY_GRAPHIQL", dev),
            introspection=_bool(env, "TENANTRY_INTROSPECTION", dev),
            pool_min_size=_int(env, "TENANTRY_POOL_MIN_SIZE", 1),
            pool_max_size=pool_max_size,
            pool_acquire_timeout_ms=_int(
                env, "TENANTRY_POOL_ACQUIRE_TIMEOUT_MS", defaults.pool_acquire_timeout_ms
            ),
            pool_tenant_max_size=tenant_max,
            ready_timeout_ms=_int(env, "TENANTRY_READY_TIMEOUT_MS", defaults.ready_timeout_ms),
            database_pooler=_pooler(env),
            read_database_url=read_url,
            read_replica_wait_ms=_int(
                env, "TENANTRY_READ_REPLICA_WAIT_MS", defaults.read_replica_wait_ms, minimum=0
            ),
            redis_timeout_ms=_int(env, "TENANTRY_REDIS_TIMEOUT_MS", defaults.redis_timeout_ms),
            redis_failures_to_open=_int(
                env, "TENANTRY_REDIS_FAILURES_TO_OPEN", defaults.redis_failures_to_open
            ),
            redis_retry_ms=_int(env, "TENANTRY_REDIS_RETRY_MS", defaults.redis_retry_ms),
            limits=limits,
            auth=auth,
            browsers=BrowserSettings.from_env(env),
            observability=ObservabilitySettings.from_env(env, dev=dev),
            transport=TransportSettings.from_env(env),
        )


@dataclass(frozen=True)
class RolePasswords:
    """The passwords `tenantry db bootstrap` sets for the two database roles (None: generate)."""

    owner: str | None
    app: str | None


def role_passwords(env: Mapping[str, str] | None = None) -> RolePasswords:
    """TENANTRY_OWNER_PASSWORD and TENANTRY_APP_PASSWORD, read only by `tenantry db bootstrap`
    (the server and migrations take theirs from DATABASE_URL and MIGRATION_DATABASE_URL)."""
    env = os.environ if env is None else env
    return RolePasswords(
        owner=env.get("TENANTRY_OWNER_PASSWORD") or None,
        app=env.get("TENANTRY_APP_PASSWORD") or None,
    )
