"""Log lines: one JSON object per line for a log pipeline, or readable text for a person.

Configured once by `tenantry serve` (`configure`). Every line written while a request runs
carries its request id, trace and span ids, tenant and user (`RequestContext`). Secrets are
kept out by construction (no request body, variables, header or token is ever logged; see
docs/observability.md); `redact` is the last line of defence for what slips through in an
exception's text, e.g. a token in a URL or a connection string's password.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import IO, Any

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from app.core import telemetry
from app.core.settings import LogFormat, ObservabilitySettings

CONTEXT_FIELDS = ("request_id", "trace_id", "span_id", "tenant_id", "user_id", "admin_id")

# Shapes of secrets, replaced wherever they appear in a line: (a cheap test that the shape
# may be there, the shape, its replacement). Nearly no line holds one: the tests keep the
# cost of a clean line to a few substring searches.
_SECRETS: tuple[tuple[str | re.Pattern[str], re.Pattern[str], str], ...] = (
    # JSON Web Tokens: access, platform, impersonation and challenge tokens, external ID
    # tokens.
    (
        "eyJ",
        re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
        "[redacted-jwt]",
    ),
    # Opaque tokens `<kind>.<tenant hex>.<secret>` (refresh, invitation, reset, verification).
    (
        re.compile(r"\.[0-9a-f]{32}\."),
        re.compile(r"\b[a-z_]+\.[0-9a-f]{32}\.[A-Za-z0-9_-]{16,}"),
        "[redacted-token]",
    ),
    # The same, URL-encoded in a link, and any other secret-looking query parameter.
    (
        "=",
        re.compile(r"((?i:[?&](?:token|code|secret|password|recovery_?code))=)[^&\s\"'\\]+"),
        r"\1[redacted]",
    ),
    # A TOTP enrolment URI carries the shared secret.
    ("otpauth:", re.compile(r"otpauth://[^\s\"'\\]+"), "otpauth://[redacted]"),
    # Credentials in a URL (DATABASE_URL, REDIS_URL, TENANTRY_SMTP_URL in an error message).
    ("://", re.compile(r"(://[^:/@\s\"'\\]*:)[^@/\s\"'\\]+@"), r"\1[redacted]@"),
    (
        re.compile(r"(?i)bearer\s"),
        re.compile(r"((?i:bearer)\s+)[A-Za-z0-9._~+/=-]+"),
        r"\1[redacted]",
    ),
)


def redact(text: str) -> str:
    """`text` with anything shaped like a token, link secret or URL password replaced."""
    for hint, pattern, replacement in _SECRETS:
        if (hint in text) if isinstance(hint, str) else (hint.search(text) is not None):
            text = pattern.sub(replacement, text)
    return text


def context_fields() -> dict[str, str]:
    """The current request's ids (none outside a request)."""
    fields: dict[str, str] = {}
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        fields["trace_id"] = format(span.trace_id, "032x")
        fields["span_id"] = format(span.span_id, "016x")
    observation = telemetry.current()
    if observation is None:
        return fields
    if observation.request_id is not None:
        fields["request_id"] = observation.request_id
    if "trace_id" not in fields and observation.caller_trace_id is not None:
        fields["trace_id"] = observation.caller_trace_id
    identity = observation.identity()
    for name in ("tenant_id", "user_id", "admin_id"):
        value = getattr(identity, name)
        if value is not None:
            fields[name] = str(value)
    return fields


class RequestContext(logging.Filter):
    """Adds the current request's ids to every record that passes (a handler's filter, so
    records of every logger get them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in context_fields().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class JsonLines(JsonFormatter):
    """One JSON object per line: time, level, logger, message, the request's ids and the
    record's `extra` fields; exceptions as one `exc_info` string."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
            json_ensure_ascii=False,
        )

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        # The time first, as every log viewer shows it.
        return {"time": log_data.pop("time"), **log_data}

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class TextLines(logging.Formatter):
    """A readable line: time, level, logger, message, then the request's ids."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = " ".join(
            f"{name.removesuffix('_id')}={getattr(record, name)}"
            for name in ("request_id", "tenant_id", "user_id", "admin_id")
            if getattr(record, name, None)
        )
        if ids:
            first, newline, rest = line.partition("\n")
            line = f"{first} [{ids}]{newline}{rest}"
        return redact(line)


def handler(log_format: LogFormat, stream: IO[str] | None = None) -> logging.Handler:
    """A handler writing `log_format` lines to `stream` (stderr), with the request's ids."""
    out = logging.StreamHandler(stream or sys.stderr)
    out.setFormatter(JsonLines() if log_format == "json" else TextLines())
    out.addFilter(RequestContext())
    return out


def configure(settings: ObservabilitySettings, stream: IO[str] | None = None) -> None:
    """Send every log line of the process through one handler, at the configured level.

    uvicorn's loggers are made to propagate to it: `tenantry serve` starts uvicorn without
    a logging configuration of its own, and without its access log (ours replaces it).
    """
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler(settings.log_format, stream))
    root.setLevel(settings.log_level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
