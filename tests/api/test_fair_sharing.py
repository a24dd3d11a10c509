"""Fair sharing: a tenant's and a user's request rates (token buckets sized by the plan), the
RateLimit and RateLimit-Policy fields, and the cost budget reported in `extensions.cost`.

Every test uses a fresh tenant, so the buckets of other tests never matter. A bucket refills
while a test runs: counts are bounded by what it can have refilled meanwhile, never timed.
"""

from __future__ import annotations

import re
import time

import httpx

from app.core.db import Database
from app.core.security import TokenService
from app.tenants.plans import PLANS
from tests.app_fixtures import GraphQL, Org, new_org

FREE = PLANS["free"]
PING = "{ viewer { id } }"
# 1 + 90 projects + 90 x 99 tasks: two fit in the free plan's 20 000 a minute, three do not.
COSTLY = "{ projects(first: 90) { nodes { tasks(first: 99) { nodes { id } } } } }"
COSTLY_COST = 1 + 90 + 90 * 99
_ITEM = re.compile(r'"(\w+)"((?:;[\w-]+=(?:\d+|"[\w-]+"))*)')


def fields(value: str) -> dict[str, dict[str, str]]:
    """A RateLimit or RateLimit-Policy field as {policy: {parameter: value}} (a List of
    Strings with parameters, RFC 9651)."""
    parsed = {}
    for item in value.split(","):
        match = _ITEM.fullmatch(item.strip())
        assert match is not None, f"not a policy item: {item!r}"
        parameters = [p.split("=", 1) for p in match.group(2).split(";") if p]
        parsed[match.group(1)] = {k: v.strip('"') for k, v in parameters}
    return parsed


async def _until_refused(
    gql: GraphQL, tokens: list[str], most: int
) -> tuple[int, httpx.Response, float]:
    """Requests in turn from `tokens` until one is refused: how many passed, the refusal,
    and the seconds it took (what the buckets could refill meanwhile)."""
    started = time.monotonic()
    for n in range(most):
        response = await gql.post(PING, token=tokens[n % len(tokens)])
        if response.status_code != 200:
            return n, response, time.monotonic() - started
    raise AssertionError(f"{most} requests and none refused")


async def test_a_tenant_gets_its_plans_minute_at_once_then_429(
    gql: GraphQL, database: Database, tokens: TokenService, other_org: Org
) -> None:
    # given a free tenant whose requests come from three users (each within their own rate)
    org = await new_org(database, tokens, members=3, plan="free")
    limit = FREE.requests_per_minute
    assert limit is not None

    # when its users send requests until one is refused
    passed, refused, seconds = await _until_refused(gql, [m.token for m in org.members], 2 * limit)

    # then the burst was the plan's minute (plus what refilled meanwhile, 2 a second)
    assert limit <= passed <= limit + 1 + seconds * limit / 60
    assert refused.status_code == 429
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 1 + 60 // limit
    [error] = refused.json()["errors"]
    assert error["extensions"] == {
        "code": "QUOTA_EXCEEDED",
        "limit": "requestsPerMinute",
        "maximum": limit,
        "retryAfterSeconds": retry_after,
    }
    assert f"allows {limit} requests per minute" in error["message"]
    policy = fields(refused.headers["ratelimit-policy"])
    assert policy["tenant"] == {"q": str(limit), "w": "60"}
    assert fields(refused.headers["ratelimit"])["tenant"] == {"r": "0", "t": str(retry_after)}
    # another tenant is not held back
    assert (await gql.post(PING, token=other_org.token)).status_code == 200


async def test_one_user_cannot_spend_their_colleagues_share(
    gql: GraphQL, database: Database, tokens: TokenService
) -> None:
    org = await new_org(database, tokens, members=2, plan="free")
    per_user = FREE.user_requests_per_minute
    assert per_user is not None
    busy, colleague = org.members

    passed, refused, seconds = await _until_refused(gql, [busy.token], 2 * per_user)

    assert per_user <= passed <= per_user + 1 + seconds * per_user / 60
    assert refused.status_code == 429
    assert refused.json()["errors"][0]["extensions"]["limit"] == "userRequestsPerMinute"
    # nothing was taken from the tenant's bucket by the refused request, and the colleague
    # still has their own
    allowed = await gql.post(PING, token=colleague.token)
    assert allowed.status_code == 200
    left = fields(allowed.headers["ratelimit"])
    assert int(left["tenant"]["r"]) >= FREE.requests_per_minute - passed - 1  # type: ignore[operator]
    assert int(left["user"]["r"]) == per_user - 1


async def test_every_signed_in_response_carries_the_fields(
    gql: GraphQL, database: Database, tokens: TokenService, org: Org
) -> None:
    free = await new_org(database, tokens, members=1, plan="free")

    limited = await gql.post(PING, token=free.token)
    unlimited = await gql.post(PING, token=org.token)
    anonymous = await gql.post("{ __typename }")

    assert fields(limited.headers["ratelimit-policy"]) == {
        "tenant": {"q": "120", "w": "60"},
        "user": {"q": "60", "w": "60"},
        "concurrency": {"q": "2", "qu": "concurrent-requests"},
    }
    left = fields(limited.headers["ratelimit"])
    assert left["tenant"] == {"r": "119", "t": "1"}
    assert left["user"] == {"r": "59", "t": "1"}
    # this request held one of its tenant's slots while the response started: one of two
    # left, or none when another tenant was active within the last second (a share of one)
    assert left["concurrency"] in ({"r": "1"}, {"r": "0"})
    # an unlimited plan has no buckets, only its share of the server
    assert fields(unlimited.headers["ratelimit-policy"]) == {
        "concurrency": {"q": "2", "qu": "concurrent-requests"}
    }
    # a request without a token counts against its address's bucket only
    assert fields(anonymous.headers["ratelimit-policy"]).keys() == {"address"}


async def test_each_response_reports_its_cost(gql: GraphQL, org: Org) -> None:
    body = await gql(COSTLY, token=org.token)
    cheap = await gql(PING, token=org.token)

    assert body["extensions"]["cost"] == {"requested": COSTLY_COST}
    assert cheap["extensions"]["cost"] == {"requested": 1}


async def test_the_cost_budget_refuses_what_it_cannot_pay_for_without_running_it(
    gql: GraphQL, database: Database, tokens: TokenService, statements: list[str]
) -> None:
    # given a free tenant (20 000 a minute) that spent two costly queries' worth
    org = await new_org(database, tokens, members=1, plan="free")
    budget = FREE.cost_per_minute
    assert budget is not None
    first = await gql(COSTLY, token=org.token)
    second = await gql(COSTLY, token=org.token)

    # when a third comes
    statements.clear()
    refused = await gql.post(COSTLY, token=org.token)

    # then it is refused before running, and says when the budget will have room
    assert first["extensions"]["cost"] == {
        "requested": COSTLY_COST,
        "perMinute": budget,
        "remaining": budget - COSTLY_COST,
    }
    assert "errors" not in second
    assert refused.status_code == 429
    body = refused.json()
    assert "data" not in body or body["data"] is None
    [error] = body["errors"]
    retry_after = int(refused.headers["retry-after"])
    assert error["extensions"] == {
        "code": "QUOTA_EXCEEDED",
        "limit": "costPerMinute",
        "maximum": budget,
        "retryAfterSeconds": retry_after,
    }
    # what is missing, at the budget's rate (333 a second), give or take the refill meanwhile
    missing = COSTLY_COST - (budget - 2 * COSTLY_COST)
    assert retry_after <= 1 + missing * 60 // budget
    assert body["extensions"]["cost"]["requested"] == COSTLY_COST
    assert not any("tasks" in s for s in statements)
    # a cheap query still fits
    assert "errors" not in await gql(PING, token=org.token)
