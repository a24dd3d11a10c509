"""GET /metrics: the series after a workload, the bound on client-chosen label values, and
who may scrape."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import Receive, Scope, Send

from app.api.middleware import _send_json
from app.api.observability import ObservabilityMiddleware, Telemetry
from app.core.db import Database
from app.core.metrics import CACHES, OTHER, TopLabels
from app.core.security import TokenService
from app.core.settings import ObservabilitySettings, Settings
from tests.app_fixtures import PASSWORD, GraphQL, new_org, start_server, stop_server
from tests.auth.helpers import sign_in

SEATS = 2
MIN_REQUESTS = 3
BOARD = "query Board { projects(first: 2) { nodes { name } } }"
INVALID = 'mutation Bad { createProject(input: {name: " "}) { errors { code } } }'
SIGN_UP = """
mutation SignUp($input: SignUpInput!) { signUp(input: $input) { tenantId errors { code } } }
"""

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
async def metered(
    app_settings: Settings, database: Database
) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    """A server of its own (its own registry): few seats, a low election count, sign-up on,
    and a per-account sign-in limit of 2 failures."""
    settings = replace(
        app_settings,
        signup_enabled=True,
        signup_per_ip_per_hour=1_000_000,
        auth=replace(app_settings.auth, throttle_per_account=2),
        observability=ObservabilitySettings(
            metrics_tenants=SEATS, metrics_operations=SEATS, metrics_min_requests=MIN_REQUESTS
        ),
    )
    server, url = await start_server(settings, database)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield client, settings
    finally:
        await stop_server(server)


def scrape(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def series(samples: Samples, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample `name` whose labels include `labels`."""
    return [
        (dict(found), value)
        for (sample, found), value in samples.items()
        if sample == name and set(labels.items()) <= found
    ]


def value(samples: Samples, name: str, **labels: str) -> float:
    return sum(v for _, v in series(samples, name, **labels))


async def test_a_scrape_after_a_workload_has_every_series(
    metered: tuple[httpx.AsyncClient, Settings], database: Database, tokens: TokenService
) -> None:
    http, _ = metered
    gql = GraphQL(http)
    busy, busier, *quiet = [await new_org(database, tokens, password=PASSWORD) for _ in range(5)]
    for org, times in ((busier, 6), (busy, 4), *((org, 2) for org in quiet)):
        for _ in range(times):
            await gql.data(BOARD, token=org.token)
    # Operation names a client made up: counted, never a label of their own.
    for _ in range(3):
        await gql(f"query Junk{secrets.token_hex(4)} {{ viewer {{ email }} }}", token=busy.token)
    await gql(INVALID, token=busy.token)
    refused = await gql(BOARD, token="not-a-token")
    assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    member = busier.members[0]
    assert (await sign_in(gql, busier.slug, member.email, PASSWORD))["accessToken"]
    for _ in range(2):
        assert (await sign_in(gql, busier.slug, member.email, "wrong password"))["errors"]
    throttled = await sign_in(gql, busier.slug, member.email, "wrong password")
    assert throttled["errors"][0]["code"] == "TOO_MANY_ATTEMPTS"
    slug = f"m-{secrets.token_hex(5)}"
    signed_up = await gql.data(
        SIGN_UP,
        {
            "input": {
                "organizationName": "Metered",
                "slug": slug,
                "email": f"owner@{slug}.example",
                "password": PASSWORD,
            }
        },
    )
    assert signed_up["signUp"]["errors"] == []

    response = await http.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = scrape(response.text)
    operations = "tenantry_graphql_operation_duration_seconds_count"
    graphql_posts = value(
        samples, "tenantry_http_request_duration_seconds_count", route="/graphql", method="POST"
    )
    assert graphql_posts == 6 + 4 + 2 * 3 + 3 + 1 + 1 + 4 + 1
    # Operation names: the first two to be seen MIN_REQUESTS times got the seats (Board,
    # then SignIn), counted under their name from then on; everything else, the names a
    # client made up included, is `other`. No operation is lost.
    names = {labels["operation"] for labels, _ in series(samples, operations)}
    assert names == {"Board", "SignIn", OTHER}
    # Every operation, the refused token's too (refused before it executed).
    assert value(samples, operations) == graphql_posts
    board = value(samples, operations, operation="Board", type="query", outcome="OK")
    assert board == 16 - (MIN_REQUESTS - 1)
    # Tenants: the two busiest got seats (from their MIN_REQUESTS-th request on); everyone
    # else, and their requests before that, counted as `other`. No request is lost.
    tenant_requests = series(samples, "tenantry_tenant_requests_total")
    tenants = {labels["tenant"] for labels, _ in tenant_requests}
    assert tenants == {str(busier.id), str(busy.id), OTHER}
    assert value(samples, "tenantry_tenant_requests_total", tenant=str(busier.id)) == (
        6 - MIN_REQUESTS + 1
    )
    assert value(samples, "tenantry_tenant_requests_total", tenant=str(busy.id), outcome="error")
    assert value(samples, "tenantry_tenant_database_seconds_total", tenant=str(busy.id)) > 0
    assert value(samples, "tenantry_errors_total", code="INVALID") == 1
    assert value(samples, "tenantry_errors_total", code="UNAUTHENTICATED") == 1
    limited = "tenantry_rate_limited_requests_total"
    assert value(samples, limited, code="TOO_MANY_ATTEMPTS") == 1
    sign_ins = "tenantry_sign_ins_total"
    assert value(samples, sign_ins, method="password", outcome="success") == 1
    assert value(samples, sign_ins, method="password", outcome="failure") == 2
    assert value(samples, "tenantry_tenant_provisioning_seconds_count") == 1
    for cache in CACHES:
        for result in ("hit", "miss"):
            assert series(samples, "tenantry_cache_requests_total", cache=cache, result=result)
    assert value(samples, "tenantry_cache_requests_total", cache="tenant_access", result="hit")
    assert value(samples, "tenantry_cache_requests_total", cache="permissions", result="miss")
    assert value(samples, "tenantry_db_statement_duration_seconds_count", verb="select") > 0
    assert value(samples, "tenantry_db_pool_connections", state="max") == 4
    assert value(samples, "tenantry_db_pool_waiting") == 0
    # 16 boards, 3 junk viewers, the refused token's board.
    assert value(samples, "tenantry_graphql_operation_sql_statements_count", type="query") == 20
    assert value(samples, "process_cpu_seconds_total") > 0


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.integers(0, 40).map(str), max_size=300))
def test_no_sequence_of_values_gets_more_than_the_seats(
    values: list[str], examples_run: list[int]
) -> None:
    examples_run.append(1)
    labels = TopLabels(3, min_count=2, capacity=8)
    seen = {labels.label(v) for v in values}

    assert len(labels.elected) <= 3
    assert seen <= labels.elected | {OTHER}
    assert len(labels._counts) <= 8


def test_a_heavy_value_is_elected_through_a_flood_of_others() -> None:
    labels = TopLabels(1, min_count=50, capacity=16)
    for i in range(1000):
        labels.label(f"noise-{i}")
        labels.label("heavy")

    assert labels.elected == {"heavy"}


async def nothing(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("/metrics never reaches the app")


async def get_metrics(settings: ObservabilitySettings, method: str = "GET", **headers: str) -> Any:
    app = ObservabilityMiddleware(nothing, telemetry=Telemetry(settings))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        return await client.request(method, "/metrics", headers=headers)


TOKEN = "a-metrics-token-of-32-characters"


async def test_with_a_token_only_its_bearer_may_scrape() -> None:
    settings = ObservabilitySettings(metrics_token=TOKEN, metrics_public=True)

    missing = await get_metrics(settings)
    wrong = await get_metrics(settings, authorization=f"Bearer {TOKEN[:-1]}x")
    right = await get_metrics(settings, authorization=f"Bearer {TOKEN}")

    assert (missing.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
    assert missing.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "# TYPE tenantry_errors_total counter" in right.text


async def test_without_a_token_metrics_are_public_only_where_asked() -> None:
    closed = await get_metrics(ObservabilitySettings(metrics_public=False))
    opened = await get_metrics(ObservabilitySettings(metrics_public=True))
    posted = await get_metrics(ObservabilitySettings(metrics_public=True), "POST")

    assert closed.status_code == 404
    assert closed.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert opened.status_code == 200
    assert posted.status_code == 405


async def test_openmetrics_is_served_when_asked() -> None:
    response = await get_metrics(
        ObservabilitySettings(), accept="application/openmetrics-text; version=1.0.0"
    )
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


async def over_the_plan(scope: Scope, receive: Receive, send: Send) -> None:
    """What the authentication middleware answers a tenant over its requests per minute."""
    await _send_json(send, 429, "QUOTA_EXCEEDED", "Over the plan", [(b"retry-after", b"7")])


async def test_a_429_counts_as_rate_limited_with_its_code() -> None:
    observing = Telemetry(ObservabilitySettings())
    app = ObservabilityMiddleware(over_the_plan, telemetry=observing)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        response = await client.post("/graphql", json={"query": "{ viewer { email } }"})
        samples = scrape((await client.get("/metrics")).text)

    assert response.status_code == 429
    assert value(samples, "tenantry_rate_limited_requests_total", code="QUOTA_EXCEEDED") == 1
    assert value(samples, "tenantry_errors_total", code="QUOTA_EXCEEDED") == 1
    assert value(samples, "tenantry_http_request_duration_seconds_count", status="429") == 1
