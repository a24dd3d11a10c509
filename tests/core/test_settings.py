"""Settings from the environment: defaults, overrides and clear refusals."""

from __future__ import annotations

import re

import pytest

from app.core.settings import Settings, SettingsError


def test_defaults_need_no_configuration() -> None:
    settings = Settings.from_env({})

    assert settings.embedded
    assert settings.forwarded_allow_ips is None
    assert settings.auth.throttle_per_account == 10
    assert settings.auth.refresh_reuse_grace_seconds == 10
    assert settings.mfa_keys_path == settings.data_dir / "keys" / "mfa-keys.json"


def test_auth_settings_are_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "TENANTRY_FORWARDED_ALLOW_IPS": "10.0.0.1,10.0.0.2",
            "TENANTRY_THROTTLE_PER_IP": "7",
            "TENANTRY_REFRESH_REUSE_GRACE": "0",
            "TENANTRY_PUBLIC_URL": "https://app.example.com/",
            "TENANTRY_MFA_KEYS_FILE": "/run/secrets/mfa.json",
        }
    )

    assert settings.forwarded_allow_ips == "10.0.0.1,10.0.0.2"
    assert settings.auth.throttle_per_ip == 7
    assert settings.auth.refresh_reuse_grace_seconds == 0
    assert settings.auth.public_url == "https://app.example.com"
    assert str(settings.mfa_keys_path) == "/run/secrets/mfa.json"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TENANTRY_THROTTLE_PER_ACCOUNT", "0"),
        ("TENANTRY_THROTTLE_WINDOW", "soon"),
        ("TENANTRY_THROTTLE_PER_ACCOUNT_TOTAL", "0"),
        ("TENANTRY_THROTTLE_FAMILIAR_DAYS", "-1"),
        ("TENANTRY_REFRESH_TOKEN_TTL", "5"),
        ("TENANTRY_CHALLENGE_TTL", "-1"),
        ("TENANTRY_IMPERSONATION_TTL", "59"),
        ("TENANTRY_IMPERSONATION_TTL", "901"),
        ("TENANTRY_DATABASE_POOLER", "statement"),
    ],
)
def test_bad_values_are_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_throttling_settings_keep_their_names_and_add_two() -> None:
    defaults = Settings.from_env({}).auth
    given = Settings.from_env(
        {
            "TENANTRY_THROTTLE_PER_ACCOUNT": "5",
            "TENANTRY_THROTTLE_PER_ACCOUNT_TOTAL": "40",
            "TENANTRY_THROTTLE_PER_TENANT": "900",
            "TENANTRY_THROTTLE_FAMILIAR_DAYS": "0",
        }
    ).auth

    assert (defaults.throttle_per_account_total, defaults.throttle_familiar_days) == (100, 30)
    assert (defaults.throttle_per_ip, defaults.throttle_per_tenant) == (50, 500)
    assert given.throttle_per_account == 5
    assert given.throttle_per_account_total == 40
    assert given.throttle_per_tenant == 900
    assert given.throttle_familiar_days == 0


def test_impersonation_tokens_are_short_by_default_and_may_be_shorter() -> None:
    assert Settings.from_env({}).impersonation_token_ttl_seconds == 900
    shorter = Settings.from_env({"TENANTRY_IMPERSONATION_TTL": "300"})
    assert shorter.impersonation_token_ttl_seconds == 300


def test_browsers_get_no_cors_and_a_year_of_hsts_by_default() -> None:
    browsers = Settings.from_env({}).browsers

    assert browsers.cors_origins == ()
    assert browsers.cors_credentials is False
    assert browsers.cors_max_age_seconds == 600
    assert browsers.hsts_max_age_seconds == 31_536_000


def test_cors_origins_are_read_normalised_and_deduplicated() -> None:
    browsers = Settings.from_env(
        {
            "TENANTRY_CORS_ORIGINS": "https://App.example.com:443, http://localhost:5173"
            " https://app.example.com",
            "TENANTRY_CORS_CREDENTIALS": "true",
            "TENANTRY_CORS_MAX_AGE": "0",
            "TENANTRY_HSTS_MAX_AGE": "0",
        }
    ).browsers

    assert browsers.cors_origins == ("https://app.example.com", "http://localhost:5173")
    assert browsers.cors_credentials is True
    assert browsers.cors_max_age_seconds == 0
    assert browsers.hsts_max_age_seconds == 0


def test_any_origin_is_only_allowed_without_credentials() -> None:
    assert Settings.from_env({"TENANTRY_CORS_ORIGINS": "*"}).browsers.cors_origins == ("*",)
    with pytest.raises(SettingsError, match="TENANTRY_CORS_CREDENTIALS"):
        Settings.from_env({"TENANTRY_CORS_ORIGINS": "*", "TENANTRY_CORS_CREDENTIALS": "on"})


@pytest.mark.parametrize(
    "entry", ["https://*.example.com", "https://app.example.com/", "null", "app.example.com"]
)
def test_a_cors_origin_that_is_not_one_origin_is_refused_by_name(entry: str) -> None:
    with pytest.raises(SettingsError, match=f"TENANTRY_CORS_ORIGINS: {re.escape(repr(entry))}"):
        Settings.from_env({"TENANTRY_CORS_ORIGINS": entry})


def test_request_limits_are_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "TENANTRY_MAX_FIELDS": "500",
            "TENANTRY_MAX_ANONYMOUS_TOKENS": "300",
            "TENANTRY_MAX_ANONYMOUS_BODY_BYTES": "4096",
            "TENANTRY_ANONYMOUS_BURST": "20",
            "TENANTRY_ANONYMOUS_PER_MINUTE": "30",
        }
    )

    limits = settings.limits
    assert (limits.max_fields, limits.max_anonymous_tokens) == (500, 300)
    assert limits.max_anonymous_body_bytes == 4096
    assert (limits.anonymous_burst, limits.anonymous_per_minute) == (20, 30)
    defaults = Settings.from_env({}).limits
    assert (defaults.anonymous_burst, defaults.anonymous_per_minute) == (60, 60)


def test_logs_are_text_in_development_and_json_in_production() -> None:
    development = Settings.from_env({}).observability
    production = Settings.from_env({"TENANTRY_ENV": "production"}).observability

    assert (development.log_format, production.log_format) == ("text", "json")
    assert Settings.from_env({"TENANTRY_LOG_FORMAT": "json"}).observability.log_format == "json"
    # /metrics: open in development, not served in production unless asked for.
    assert (development.metrics_public, production.metrics_public) == (True, False)


def test_tracing_is_off_unless_the_otel_variables_name_an_exporter() -> None:
    def exporter(env: dict[str, str]) -> str | None:
        return Settings.from_env(env).observability.traces_exporter

    assert exporter({}) is None
    assert exporter({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}) == "otlp"
    assert exporter({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}) == "otlp"
    assert exporter({"OTEL_TRACES_EXPORTER": "console"}) == "console"
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    assert exporter({**endpoint, "OTEL_TRACES_EXPORTER": "none"}) is None
    assert exporter({**endpoint, "OTEL_SDK_DISABLED": "true"}) is None


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"TENANTRY_LOG_FORMAT": "xml"}, "TENANTRY_LOG_FORMAT"),
        ({"TENANTRY_LOG_LEVEL": "loud"}, "TENANTRY_LOG_LEVEL"),
        ({"TENANTRY_METRICS_TOKEN": "short"}, "TENANTRY_METRICS_TOKEN"),
        ({"TENANTRY_METRICS_TENANTS": "-1"}, "TENANTRY_METRICS_TENANTS"),
        ({"TENANTRY_SLOW_REQUEST_MS": "soon"}, "TENANTRY_SLOW_REQUEST_MS"),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
    ],
)
def test_bad_observability_settings_are_refused_by_name(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


def test_a_transaction_pooler_is_named_explicitly() -> None:
    assert Settings.from_env({}).database_pooler == "none"
    given = Settings.from_env({"TENANTRY_DATABASE_POOLER": "Transaction"})
    assert given.database_pooler == "transaction"


def test_a_read_replica_is_named_with_its_wait() -> None:
    defaults = Settings.from_env({})
    assert defaults.read_database_url is None
    assert defaults.read_replica_wait_ms == 100
    given = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://tenantry_app:pw@primary.internal/tenantry",
            "TENANTRY_READ_DATABASE_URL": "postgresql://tenantry_app:pw@replica.internal/tenantry",
            "TENANTRY_READ_REPLICA_WAIT_MS": "0",
        }
    )
    assert given.read_database_url == "postgresql://tenantry_app:pw@replica.internal/tenantry"
    assert given.read_replica_wait_ms == 0


@pytest.mark.parametrize(
    "env",
    [
        {"TENANTRY_READ_DATABASE_URL": "postgresql://tenantry_app@replica/tenantry"},
        {"DATABASE_URL": "postgresql://a@b/c", "TENANTRY_READ_DATABASE_URL": "mysql://replica"},
        {"DATABASE_URL": "postgresql://a@b/c", "TENANTRY_READ_REPLICA_WAIT_MS": "-1"},
    ],
)
def test_a_read_replica_setting_that_cannot_work_is_refused_by_name(env: dict[str, str]) -> None:
    named = next(k for k in env if k != "DATABASE_URL")
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


def test_redis_calls_get_tens_of_milliseconds_by_default_and_are_configurable() -> None:
    defaults = Settings.from_env({})
    configured = Settings.from_env(
        {
            "TENANTRY_REDIS_TIMEOUT_MS": "20",
            "TENANTRY_REDIS_FAILURES_TO_OPEN": "5",
            "TENANTRY_REDIS_RETRY_MS": "250",
        }
    )

    assert (defaults.redis_timeout_ms, defaults.redis_failures_to_open) == (50, 3)
    assert defaults.redis_retry_ms == 1000
    assert (configured.redis_timeout_ms, configured.redis_failures_to_open) == (20, 5)
    assert configured.redis_retry_ms == 250
    with pytest.raises(SettingsError, match="TENANTRY_REDIS_TIMEOUT_MS"):
        Settings.from_env({"TENANTRY_REDIS_TIMEOUT_MS": "0"})
