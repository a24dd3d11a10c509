"""The provider-key cache against a real HTTP JWKS: what it accepts, fetches and refuses."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator

import pytest
from joserfc.errors import SecurityWarning
from joserfc.jwk import OctKey, RSAKey

from app.identity.jwks import JwksCache, check_url
from tests.identity.support import FakeIdp, new_key


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def idp() -> Iterator[FakeIdp]:
    provider = FakeIdp()
    try:
        yield provider
    finally:
        provider.close()


@pytest.mark.parametrize(
    ("url", "insecure", "problem"),
    [
        ("https://login.example.com/keys", False, None),
        ("https://93.184.216.34/keys", False, None),
        ("http://login.example.com/keys", False, "must be an https URL"),
        ("https://127.0.0.1/keys", False, "must not point at a private or local address"),
        ("https://10.0.0.8/keys", False, "must not point at a private or local address"),
        ("https://169.254.169.254/latest", False, "must not point at a private or local address"),
        ("https://[::1]/keys", False, "must not point at a private or local address"),
        ("https://u:p@login.example.com/keys", False, "must name a host and no credentials"),
        ("file:///etc/passwd", True, "must be an https URL"),
        ("http://127.0.0.1:8080/keys", True, None),
        ("https://[bad/keys", False, "is not a valid URL"),
    ],
)
def test_check_url(url: str, insecure: bool, problem: str | None) -> None:
    assert check_url(url, allow_insecure=insecure) == problem


async def test_production_cache_never_fetches_from_loopback(idp: FakeIdp) -> None:
    # given a key published on a loopback address
    key = new_key()
    idp.published = [key]
    cache = JwksCache(allow_insecure=False)

    # when
    found = await cache.key(idp.jwks_url, str(key.kid))

    # then
    assert found is None
    assert idp.requests == 0


async def test_keys_are_cached_until_the_ttl(idp: FakeIdp) -> None:
    # given
    key = new_key("ES256")
    idp.published = [key]
    clock = Clock()
    cache = JwksCache(allow_insecure=True, ttl_seconds=600, clock=clock)

    # when
    first = await cache.key(idp.jwks_url, str(key.kid))
    second = await cache.key(idp.jwks_url, str(key.kid))
    clock.now = 600
    third = await cache.key(idp.jwks_url, str(key.kid))

    # then
    assert first is not None
    assert second is not None
    assert third is not None
    assert first.as_dict() == key.as_dict(private=False)
    assert idp.requests == 2


async def test_a_token_without_kid_may_use_the_only_key(idp: FakeIdp) -> None:
    # given
    only = new_key()
    cache = JwksCache(allow_insecure=True)
    idp.published = [only]

    # then
    assert await cache.key(idp.jwks_url, None) is not None

    # but not when there are several keys
    idp.published = [only, new_key()]
    other = JwksCache(allow_insecure=True)
    assert await other.key(idp.jwks_url, None) is None


async def test_unusable_keys_are_skipped(idp: FakeIdp) -> None:
    # given a JWKS with a symmetric key, an encryption key, a short RSA key and a good one
    good = new_key("RS256", kid="good")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        short = RSAKey.generate_key(1024, parameters={"kid": "short"}, private=True)
    oct_key = OctKey.generate_key(256, parameters={"kid": "oct"}, private=True)
    enc = new_key("RS256", kid="enc")
    document = {
        "keys": [
            oct_key.as_dict(private=True),
            {**enc.as_dict(private=False), "use": "enc"},
            short.as_dict(private=False),
            {"kty": "EC", "kid": "broken", "crv": "P-256", "x": "AA", "y": "AA"},
            # private members are ignored, never kept
            good.as_dict(private=True),
        ]
    }
    idp.response = (200, {"content-type": "application/json"}, json.dumps(document).encode())
    cache = JwksCache(allow_insecure=True)

    # when
    found = {kid: await cache.key(idp.jwks_url, kid) for kid in ("oct", "enc", "short", "good")}

    # then
    assert [kid for kid, key in found.items() if key is not None] == ["good"]
    kept = found["good"]
    assert kept is not None
    assert not kept.is_private


@pytest.mark.parametrize(
    "response",
    [
        (500, {}, b"{}"),
        (302, {"location": "http://127.0.0.1:1/jwks"}, b""),
        (200, {}, b"not json"),
        (200, {}, b'{"keys": "nope"}'),
        (200, {}, b" " * 300_000),
        # Deeper than the JSON parser can recurse (it raised RecursionError).
        (200, {}, b'{"keys": ' + b"[" * 100_000),
    ],
    ids=["error", "redirect", "not-json", "not-a-set", "too-large", "nested-too-deep"],
)
async def test_bad_responses_give_no_key_and_keep_the_old_ones(
    idp: FakeIdp, response: tuple[int, dict[str, str], bytes]
) -> None:
    # given keys fetched earlier
    key = new_key()
    idp.published = [key]
    clock = Clock()
    cache = JwksCache(allow_insecure=True, ttl_seconds=10, min_refetch_seconds=5, clock=clock)
    assert await cache.key(idp.jwks_url, str(key.kid)) is not None

    # when the provider starts answering badly after the TTL
    idp.response = response
    clock.now = 10
    still = await cache.key(idp.jwks_url, str(key.kid))
    unknown = await cache.key(idp.jwks_url, "unknown")

    # then the known key survives the outage; failed attempts are rate-limited too
    assert still is not None
    assert unknown is None
    assert idp.requests == 2
