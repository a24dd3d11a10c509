"""Failed sign-in throttling per account, per client IP and per tenant.

Failures are counted in fixed windows in the store (Redis when configured, so every
server process shares the counts). Each attempt is checked before any password work, so
aliases or batched operations cannot buy extra guesses: every signIn field counts. Keys
hash the email, so the store never holds addresses.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from app.core.errors import DomainError
from app.core.request_meta import RequestMeta
from app.core.settings import AuthSettings
from app.core.store import Store, StoreKey, platform_key


class TooManyAttempts(DomainError):
    code = "TOO_MANY_ATTEMPTS"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many failed attempts; try again in {retry_after} seconds")
        self.retry_after = retry_after


@dataclass(frozen=True)
class _Limit:
    key: StoreKey
    limit: int


def _limits(settings: AuthSettings, slug: str, email: str, meta: RequestMeta) -> list[_Limit]:
    # Keyed by the slug as typed (normalised), so unknown tenants are throttled like known
    # ones and the counts reveal nothing about which exist.
    account = hashlib.sha256(f"{slug}\x00{email}".encode()).hexdigest()[:32]
    limits = [
        _Limit(platform_key("signin-failures", "account", account), settings.throttle_per_account),
        _Limit(platform_key("signin-failures", "tenant", slug), settings.throttle_per_tenant),
    ]
    if meta.ip is not None:
        limits.append(
            _Limit(platform_key("signin-failures", "ip", meta.ip), settings.throttle_per_ip)
        )
    return limits


class SignInThrottle:
    def __init__(self, store: Store, settings: AuthSettings) -> None:
        self._store = store
        self._settings = settings

    def _for(self, slug: str, email: str, meta: RequestMeta) -> list[_Limit]:
        return _limits(self._settings, slug.strip().lower(), email.strip().lower(), meta)

    async def check(self, slug: str, email: str, meta: RequestMeta) -> None:
        """Raise TooManyAttempts when any of the three counts is used up."""
        window = self._settings.throttle_window_seconds
        retry_after = 0
        for limit in self._for(slug, email, meta):
            counted = await self._store.count(limit.key, window_seconds=window)
            if counted.count >= limit.limit:
                retry_after = max(retry_after, counted.resets_in)
        if retry_after:
            raise TooManyAttempts(retry_after)

    async def failed(self, slug: str, email: str, meta: RequestMeta) -> None:
        window = self._settings.throttle_window_seconds
        for limit in self._for(slug, email, meta):
            await self._store.hit(limit.key, window_seconds=window)
