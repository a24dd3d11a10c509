"""Requests without a token are limited per client address (a token bucket, app/core/ratelimit.py),
in Redis and in process memory: a burst, then 429 with Retry-After before anything runs.

Each test acts from fresh addresses (uvicorn believes X-Forwarded-For from 127.0.0.1), so the
buckets of other tests and runs never matter.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest

from app.api.middleware import client_network
from app.core.db import Database
from app.core.ratelimit import Rate, TokenBuckets
from app.core.settings import Settings
from app.core.store import Store, platform_key
from tests.app_fixtures import COST_1, SHARED_REDIS, GraphQL, Org, start_server, stop_server

BURST = 3
# One token a minute: no test here waits for one.
PER_MINUTE = 1
TYPENAME = {"query": "{ __typename }"}
SIGN_IN = {
    "query": "mutation ($input: SignInInput!) { signIn(input: $input) { accessToken } }",
    "variables": {"input": {"tenant": "nobody", "email": "a@b.example", "password": "pw"}},
}


def _redis_url(settings: Settings) -> str:
    if settings.redis_url is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but REDIS_URL is not set: the Redis tests must run in CI")
        pytest.skip("REDIS_URL is not set (CI sets it; see README)")
    return settings.redis_url


@pytest.fixture(params=["redis", "memory"], scope="module")
async def limited(
    request: pytest.FixtureRequest, app_settings: Settings, database: Database, gql: GraphQL
) -> AsyncIterator[httpx.AsyncClient]:
    """A server of its own with a small anonymous limit, on each store backend. (After the
    shared server, `gql`, which creates the key files.)"""
    redis_url = _redis_url(app_settings) if request.param == "redis" else None
    limits = replace(app_settings.limits, anonymous_burst=BURST, anonymous_per_minute=PER_MINUTE)
    settings = replace(app_settings, redis_url=redis_url, limits=limits)
    server, url = await start_server(settings, database)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield client
    finally:
        await stop_server(server)


def _address() -> dict[str, str]:
    octets = ".".join(str(secrets.randbelow(250)) for _ in range(3))
    return {"x-forwarded-for": f"10.{octets}"}


async def test_a_burst_then_429_before_anything_runs(
    limited: httpx.AsyncClient, statements: list[str]
) -> None:
    # given: the burst used up
    address = _address()
    for _ in range(BURST):
        response = await limited.post("/graphql", json=TYPENAME, headers=address)
        assert response.status_code == 200

    # when: a sign-in, which would look the tenant up
    statements.clear()
    refused = await limited.post("/graphql", json=SIGN_IN, headers=address)

    # then
    assert refused.status_code == 429
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 60 // PER_MINUTE
    assert refused.json() == {
        "errors": [
            {
                "message": "Too many requests without a token from this address; try again in"
                f" {retry_after} seconds",
                "extensions": {"code": "RATE_LIMITED", "retryAfterSeconds": retry_after},
            }
        ]
    }
    assert statements == []


async def test_other_addresses_signed_in_requests_and_health_checks_are_not_limited(
    limited: httpx.AsyncClient, org: Org
) -> None:
    # given
    address = _address()
    for _ in range(BURST):
        await limited.post("/graphql", json=TYPENAME, headers=address)
    assert (await limited.post("/graphql", json=TYPENAME, headers=address)).status_code == 429

    # when
    elsewhere = await limited.post("/graphql", json=TYPENAME, headers=_address())
    signed_in = await limited.post(
        "/graphql", json=TYPENAME, headers={**address, "authorization": f"Bearer {org.token}"}
    )
    health = await limited.get("/healthz", headers=address)

    # then
    assert elsewhere.status_code == 200
    assert signed_in.json() == {"data": {"__typename": "Query"}, "extensions": COST_1}
    assert health.status_code == 200


async def test_concurrent_requests_get_exactly_the_burst(limited: httpx.AsyncClient) -> None:
    # given
    address = _address()

    # when: 20 at once from one address
    responses = await asyncio.gather(
        *(limited.post("/graphql", json=TYPENAME, headers=address) for _ in range(20))
    )

    # then
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * BURST + [429] * (20 - BURST)


async def test_an_ipv6_client_is_limited_by_its_64(limited: httpx.AsyncClient) -> None:
    # given: the burst used from one address of a /64
    prefix = f"2001:db8:{secrets.randbelow(0xFFFF):x}:{secrets.randbelow(0xFFFF):x}"
    for _ in range(BURST):
        await limited.post("/graphql", json=TYPENAME, headers={"x-forwarded-for": f"{prefix}::1"})

    # when: another address of the same /64
    response = await limited.post(
        "/graphql", json=TYPENAME, headers={"x-forwarded-for": f"{prefix}:ffff::2"}
    )

    # then
    assert response.status_code == 429


@pytest.mark.parametrize(
    ("host", "network"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8::1", "2001:db8::/64"),
        ("2001:db8:0:0:ffff::2", "2001:db8::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        (None, "unknown"),
        ("not-an-address", "not-an-address"),
    ],
)
def test_client_network(host: str | None, network: str) -> None:
    assert client_network(host) == network


# --- The bucket itself ---------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_bucket_refills_at_its_rate() -> None:
    # given: 2 at once, 6 a minute (one every 10 s), on a clock the test moves
    clock = Clock()
    buckets = TokenBuckets(Store.from_url(None), clock=clock)
    key, rate = platform_key("test", secrets.token_hex(4)), Rate(burst=2, per_minute=6)

    # when / then
    assert [(await buckets.take(key, rate)).allowed for _ in range(3)] == [True, True, False]
    assert (await buckets.take(key, rate)).retry_after == 10
    clock.now += 9.5
    assert (await buckets.take(key, rate)).retry_after == 1
    clock.now += 0.5
    assert (await buckets.take(key, rate)).allowed
    # A minute later the bucket is full again, never fuller than its burst.
    clock.now += 600
    takes = [await buckets.take(key, rate) for _ in range(3)]
    assert [t.allowed for t in takes] == [True, True, False]
    assert [t.remaining for t in takes] == [1, 0, 0]


async def test_memory_keeps_a_bounded_number_of_buckets() -> None:
    # given
    buckets = TokenBuckets(Store.from_url(None), clock=Clock(), max_memory_buckets=10)
    rate = Rate(burst=1, per_minute=1)
    first = platform_key("test", "first")
    assert (await buckets.take(first, rate)).allowed
    assert not (await buckets.take(first, rate)).allowed

    # when: ten other keys later
    for i in range(10):
        await buckets.take(platform_key("test", str(i)), rate)

    # then: the oldest bucket was dropped (found again, it is full as a new one would be)
    assert len(buckets._memory) == 10
    assert (await buckets.take(first, rate)).allowed


async def test_redis_buckets_are_shared_by_every_server_process(app_settings: Settings) -> None:
    # given: two processes' buckets on one Redis
    url = _redis_url(app_settings)
    one, two = Store.from_url(url, SHARED_REDIS), Store.from_url(url, SHARED_REDIS)
    try:
        key, rate = platform_key("test", secrets.token_hex(4)), Rate(burst=3, per_minute=1)

        # when
        takes = [await TokenBuckets(store).take(key, rate) for store in (one, two, one, two)]

        # then
        assert [t.allowed for t in takes] == [True, True, True, False]
        assert [t.remaining for t in takes[:3]] == [2, 1, 0]
        assert 1 <= takes[3].retry_after <= 60
    finally:
        await one.close()
        await two.close()


async def test_answers_carry_the_address_buckets_ratelimit_fields(
    limited: httpx.AsyncClient,
) -> None:
    address = _address()

    first = await limited.post("/graphql", json=TYPENAME, headers=address)
    for _ in range(BURST - 1):
        await limited.post("/graphql", json=TYPENAME, headers=address)
    refused = await limited.post("/graphql", json=TYPENAME, headers=address)

    # a burst of 3 refilled at 1 a minute: 180 s to refill, the next token within 60 s
    assert first.headers["ratelimit-policy"] == f'"address";q={BURST};w={BURST * 60}'
    assert first.headers["ratelimit"] == f'"address";r={BURST - 1};t=60'
    retry_after = refused.headers["retry-after"]
    assert refused.headers["ratelimit"] == f'"address";r=0;t={retry_after}'
