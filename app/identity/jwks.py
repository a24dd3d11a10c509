"""The public keys of external identity providers, fetched from their JWKS URLs.

One cache per process, keyed by URL: a JWKS is public data of its URL, not of a tenant.
Keys are kept for `ttl_seconds`; a token naming a kid the cache lacks triggers a refetch
(the provider rotated its keys), at most once per `min_refetch_seconds` per URL, so
tokens with made-up kids cannot make the server hammer a provider. Fetches have a
timeout, a size cap, no redirects, and in production only https to public addresses.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, JWKRegistry, OKPKey, RSAKey

from app.core.validation import json_value

logger = logging.getLogger("tenantry.identity")

PublicKey = RSAKey | ECKey | OKPKey
_PUBLIC_MEMBERS = {"kty", "kid", "use", "alg", "n", "e", "crv", "x", "y"}
_MIN_RSA_BITS = 2048
_MAX_KEYS = 100


class JwksUnavailable(Exception):
    """The provider's key set could not be fetched or used."""


@dataclass
class _Entry:
    keys: dict[str, PublicKey] = field(default_factory=dict)
    # The only key of a set without kids (tokens without a kid may use it).
    sole: PublicKey | None = None
    fetched_at: float | None = None
    attempted_at: float | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def check_url(url: str, *, allow_insecure: bool) -> str | None:
    """Why `url` cannot be a JWKS URL, or None. Development also allows http and loopback."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in (("https", "http") if allow_insecure else ("https",)):
        return "must be an https URL"
    if not host or parts.username or parts.password:
        return "must name a host and no credentials"
    if not allow_insecure:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return None
        if not address.is_global:
            return "must not point at a private or local address"
    return None


class JwksCache:
    def __init__(
        self,
        *,
        allow_insecure: bool = False,
        ttl_seconds: float = 600,
        min_refetch_seconds: float = 30,
        timeout_seconds: float = 5,
        max_bytes: int = 256 * 1024,
        max_urls: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.allow_insecure = allow_insecure
        self.ttl_seconds = ttl_seconds
        self.min_refetch_seconds = min_refetch_seconds
        self.timeout_seconds = timeout_seconds
        self.max_bytes = max_bytes
        self.max_urls = max_urls
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        # How many HTTP fetches were made (tests and metrics).
        self.fetches = 0

    async def key(self, url: str, kid: str | None) -> PublicKey | None:
        """The provider's key `kid` (or its only key when the token names none)."""
        entry = self._entry(url)
        async with entry.lock:
            now = self._clock()
            if entry.fetched_at is None or now - entry.fetched_at >= self.ttl_seconds:
                await self._refresh(url, entry, now)
            found = _pick(entry, kid)
            if found is None and self._may_refetch(entry, now):
                # An unknown kid: the provider may have rotated since the last fetch.
                await self._refresh(url, entry, now)
                found = _pick(entry, kid)
            return found

    def _entry(self, url: str) -> _Entry:
        entry = self._entries.get(url)
        if entry is None:
            if len(self._entries) >= self.max_urls:
                # Forget the least recently fetched URL (providers are few; this is a bound).
                oldest = min(self._entries, key=lambda u: self._entries[u].attempted_at or 0)
                del self._entries[oldest]
            entry = self._entries[url] = _Entry()
        return entry

    def _may_refetch(self, entry: _Entry, now: float) -> bool:
        return entry.attempted_at is None or now - entry.attempted_at >= self.min_refetch_seconds

    async def _refresh(self, url: str, entry: _Entry, now: float) -> None:
        if entry.attempted_at is not None and not self._may_refetch(entry, now):
            return  # a failed or recent attempt: keep what we have until the interval passes
        entry.attempted_at = now
        try:
            keys = await self._fetch(url)
        except JwksUnavailable as exc:
            # Keep serving the keys we had: a provider outage should not sign everyone out.
            logger.warning("JWKS %s unavailable: %s", url, exc)
            return
        entry.keys = {str(k.kid): k for k in keys if k.kid}
        entry.sole = keys[0] if len(keys) == 1 else None
        entry.fetched_at = now

    async def _fetch(self, url: str) -> list[PublicKey]:
        problem = check_url(url, allow_insecure=self.allow_insecure)
        if problem is None and not self.allow_insecure:
            problem = await _resolves_publicly(url)
        if problem is not None:
            raise JwksUnavailable(f"URL {problem}")
        self.fetches += 1
        try:
            async with (
                httpx.AsyncClient(timeout=self.timeout_seconds, follow_redirects=False) as client,
                client.stream("GET", url, headers={"accept": "application/json"}) as response,
            ):
                if response.status_code != 200:
                    raise JwksUnavailable(f"HTTP {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body.extend(chunk)
                    if len(body) > self.max_bytes:
                        raise JwksUnavailable("response too large")
        except httpx.HTTPError as exc:
            raise JwksUnavailable(f"{type(exc).__name__}: {exc}") from None
        try:
            document = json_value(bytes(body))
        except ValueError:
            raise JwksUnavailable("not JSON") from None
        keys = _public_keys(document)
        if not keys:
            raise JwksUnavailable("no usable signing keys")
        return keys


def _pick(entry: _Entry, kid: str | None) -> PublicKey | None:
    return entry.sole if kid is None else entry.keys.get(kid)


def _public_keys(document: object) -> list[PublicKey]:
    """The usable signature keys of a JWKS document, public members only."""
    raw = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(raw, list):
        return []
    keys: list[PublicKey] = []
    for item in raw[:_MAX_KEYS]:
        if not isinstance(item, dict) or item.get("use", "sig") != "sig":
            continue
        if item.get("kty") not in ("RSA", "EC", "OKP"):
            continue  # never symmetric ("oct") keys: an HMAC secret in a JWKS is public
        public: dict[str, Any] = {k: v for k, v in item.items() if k in _PUBLIC_MEMBERS}
        try:
            with warnings.catch_warnings():
                # joserfc warns about short RSA keys; they are refused just below.
                warnings.simplefilter("ignore", SecurityWarning)
                key = JWKRegistry.import_key(public)
        except (JoseError, ValueError, TypeError, KeyError):
            continue
        if isinstance(key, RSAKey) and key.raw_value.key_size < _MIN_RSA_BITS:
            continue
        if isinstance(key, RSAKey | ECKey | OKPKey):
            keys.append(key)
    return keys


async def _resolves_publicly(url: str) -> str | None:
    host = urlsplit(url).hostname or ""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None)
    except OSError:
        return "host does not resolve"
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            return "must not resolve to a private or local address"
    return None
