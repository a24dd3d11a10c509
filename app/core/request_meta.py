"""Where a request came from: recorded with audit entries and sessions, used by throttling."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RequestMeta:
    # The peer address uvicorn reports; behind a proxy listed in
    # TENANTRY_FORWARDED_ALLOW_IPS, the client's address from X-Forwarded-For.
    ip: str | None
    user_agent: str
    request_id: str | None

    @classmethod
    def none(cls) -> RequestMeta:
        """For work that no request started (the CLI, background jobs)."""
        return cls(ip=None, user_agent="", request_id=None)
