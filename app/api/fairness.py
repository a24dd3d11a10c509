"""Fair sharing between tenants: request limits, the cost budget, fair admission, and the
`RateLimit` / `RateLimit-Policy` response fields.

Every signed-in request takes, in one atomic step (one script in Redis, app/core/ratelimit.py),
a token from its tenant's bucket and one from its user's, both sized by the tenant's plan
(app/tenants/plans.py): a minute's worth at once, refilled at the plan's rate. Then it waits
for one of its tenant's slots in this process (app/core/admission.py) so a flooding tenant
cannot crowd the others off the CPU. Once its document is analysed, the operation's static
cost is taken from the tenant's cost budget (`CostBudget`, a schema extension) and reported in
the response's `extensions.cost`.

Every signed-in response carries the RateLimit and RateLimit-Policy fields
(app/api/ratelimit_fields.py) for the tenant's and the user's buckets and the tenant's share
of this process:

    RateLimit-Policy: "tenant";q=1200;w=60, "user";q=300;w=60,
                      "concurrency";q=2;qu="concurrent-requests"
    RateLimit: "tenant";r=1187;t=1, "user";r=296;t=1, "concurrency";r=1

(one line each on the wire). The cost budget is reported in `extensions.cost` rather than in
these fields: its unit is not one of the draft's registered quota units.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from graphql import GraphQLError
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import SchemaExtension

from app.api import ratelimit_fields
from app.api.context import Context, Principal
from app.api.middleware import _send_json
from app.core.admission import AdmissionRefused, FairAdmission
from app.core.counters import WorkCounter
from app.core.errors import QuotaExceeded
from app.core.ratelimit import Bucket, PlanRates, Take, TokenBuckets
from app.core.settings import Settings
from app.core.store import tenant_key


@dataclass(frozen=True)
class Policy:
    """One limit a request counts against: its name in the RateLimit fields, the plan's name
    for it in errors (as the plan's GraphQL fields name it), and its bucket."""

    name: str
    limit: str
    bucket: Bucket


def request_policies(rates: PlanRates, principal: Principal) -> list[Policy]:
    """The buckets a signed-in request takes one token from (none on an unlimited plan)."""
    tenant_id = principal.tenant_id
    policies = []
    if rates.tenant is not None:
        key = tenant_key(tenant_id, "rate", "requests")
        policies.append(Policy("tenant", "requestsPerMinute", Bucket(key, rates.tenant)))
    if rates.user is not None:
        key = tenant_key(tenant_id, "rate", "user", str(principal.user_id))
        policies.append(Policy("user", "userRequestsPerMinute", Bucket(key, rates.user)))
    return policies


def cost_policy(rates: PlanRates, tenant_id: UUID) -> Policy | None:
    """The tenant's cost budget, or None on a plan without one."""
    if rates.cost is None:
        return None
    return Policy(
        "cost", "costPerMinute", Bucket(tenant_key(tenant_id, "rate", "cost"), rates.cost)
    )


def policy_field(policies: Sequence[Policy], concurrency: int | None) -> list[str]:
    """The RateLimit-Policy items: each bucket's burst and refill window, and the tenant's
    share of this process."""
    items = [ratelimit_fields.policy_item(p.name, p.bucket.rate) for p in policies]
    if concurrency is not None:
        items.append(ratelimit_fields.concurrency_policy_item(concurrency))
    return items


def limit_field(
    policies: Sequence[Policy], takes: Sequence[Take], free_slots: int | None = None
) -> list[str]:
    """The RateLimit items: what is left of each bucket and when it grows again."""
    items = [
        ratelimit_fields.limit_item(p.name, p.bucket.rate, t)
        for p, t in zip(policies, takes, strict=True)
    ]
    if free_slots is not None:
        items.append(ratelimit_fields.concurrency_limit_item(free_slots))
    return items


class RateExceeded(QuotaExceeded):
    """A plan's rate is used up: answered 429 with Retry-After."""

    def __init__(self, policy: Policy, retry_after: int) -> None:
        rate = policy.bucket.rate
        what = {
            "tenant": "requests",
            "user": "requests per user",
            "cost": "query cost (extensions.cost)",
        }[policy.name]
        super().__init__(
            f"This organisation's plan allows {rate.per_minute} {what} per minute"
            f" ({policy.limit}); try again in {retry_after} seconds",
            limit=policy.limit,
            maximum=rate.per_minute,
        )
        self.retry_after = retry_after

    def details(self) -> dict[str, object]:
        return {**super().details(), "retryAfterSeconds": self.retry_after}


@dataclass
class LimitStats:
    """Plain counters of refusals, for metrics and tests (fair admission has its own)."""

    # 429s for a plan's request rates (tenant or user), and for the cost budget.
    requests_refused: WorkCounter = field(default_factory=WorkCounter)
    cost_refused: WorkCounter = field(default_factory=WorkCounter)


@dataclass
class FairSharing:
    """The server's buckets and fair admission, with counts of what they refused: built once
    in create_app, kept on the app's state for metrics, and in each signed-in request's
    state for CostBudget."""

    buckets: TokenBuckets
    admission: FairAdmission | None
    stats: LimitStats = field(default_factory=LimitStats)

    @classmethod
    def of(cls, settings: Settings, buckets: TokenBuckets) -> FairSharing:
        """With the settings' fair admission (TENANTRY_TENANT_CONCURRENCY=0: none)."""
        limits = settings.limits
        admission = None
        if limits.tenant_concurrency > 0:
            admission = FairAdmission(
                per_tenant=limits.tenant_concurrency,
                queue=limits.tenant_queue,
                wait_seconds=limits.tenant_queue_wait_ms / 1000,
            )
        return cls(buckets, admission)


class TenantLimitMiddleware:
    """Applies a signed-in request's plan rates and its tenant's fair share of this process,
    and adds the RateLimit fields to its response. Runs after AuthenticationMiddleware, which
    leaves the plan's rates in the request state; other requests pass untouched (requests
    without a token have their per-address limit, AnonymousRateLimitMiddleware)."""

    def __init__(self, app: ASGIApp, *, sharing: FairSharing) -> None:
        self.app = app
        self.sharing = sharing
        self.buckets = sharing.buckets
        self.admission = sharing.admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.get("state", {}) if scope["type"] == "http" else {}
        principal: Principal | None = state.get("principal")
        rates: PlanRates | None = state.get("plan_rates")
        if principal is None or rates is None:
            await self.app(scope, receive, send)
            return
        # For the cost budget, charged once the document is analysed (CostBudget).
        state["fair_sharing"] = self.sharing
        policies = request_policies(rates, principal)
        takes = await self.buckets.take_all([p.bucket for p in policies]) if policies else []
        concurrency = None if self.admission is None else self.admission.per_tenant
        policy = policy_field(policies, concurrency)
        refused = [(p, t) for p, t in zip(policies, takes, strict=True) if not t.allowed]
        if refused:
            self.sharing.stats.requests_refused.add()
            failed, take = max(refused, key=lambda pair: pair[1].retry_after)
            error = RateExceeded(failed, take.retry_after)
            await _send_json(
                send,
                429,
                error.code,
                error.message,
                [
                    (b"retry-after", str(error.retry_after).encode()),
                    *ratelimit_fields.fields(policy, limit_field(policies, takes)),
                ],
                error.details(),
            )
            return

        async def with_fields(message: Message) -> None:
            if message["type"] == "http.response.start":
                free = None
                if self.admission is not None:
                    running = self.admission.running(principal.tenant_id)
                    free = max(0, self.admission.share() - running)
                ratelimit_fields.add_fields(message, policy, limit_field(policies, takes, free))
            await send(message)

        if self.admission is None:
            await self.app(scope, receive, with_fields)
            return
        try:
            async with self.admission.slot(principal.tenant_id):
                await self.app(scope, receive, with_fields)
        except AdmissionRefused:
            await _send_json(
                send,
                429,
                "RATE_LIMITED",
                "This organisation already runs its share of operations on this server and has"
                " more waiting; try again in 1 second",
                [
                    (b"retry-after", b"1"),
                    *ratelimit_fields.fields(policy, limit_field(policies, takes, 0)),
                ],
                {
                    "limit": "concurrentOperations",
                    "maximum": self.admission.per_tenant,
                    "retryAfterSeconds": 1,
                },
            )


class CostBudget(SchemaExtension):
    """Charges the operation's static cost to its tenant's budget before it runs, and reports
    it in the response's `extensions.cost`: `requested`, and on a plan with a budget its
    `perMinute` and what `remaining` after this operation. An operation the budget cannot
    pay for now is refused (429, Retry-After) without running; one costing more than a whole
    minute's budget can never run and says so."""

    def __init__(self) -> None:
        self.report: dict[str, int] | None = None

    async def on_validate(self) -> AsyncIterator[None]:
        execution = self.execution_context
        context = execution.context
        if isinstance(context, Context) and context.cost is not None:
            self.report = {"requested": context.cost}
            if not execution.pre_execution_errors:
                refusal = await self._charge(context, context.cost)
                if refusal is not None:
                    execution.pre_execution_errors = [
                        GraphQLError(refusal.message, original_error=refusal)
                    ]
        yield

    async def _charge(self, context: Context, cost: int) -> QuotaExceeded | None:
        state = context.request.state
        rates: PlanRates | None = getattr(state, "plan_rates", None)
        sharing: FairSharing | None = getattr(state, "fair_sharing", None)
        if context.principal is None or rates is None or sharing is None:
            return None
        policy = cost_policy(rates, context.principal.tenant_id)
        if policy is None:
            return None
        rate = policy.bucket.rate
        assert self.report is not None
        self.report["perMinute"] = rate.per_minute
        if cost > rate.burst:
            sharing.stats.cost_refused.add()
            return QuotaExceeded(
                f"This operation costs {cost}, more than this organisation's plan allows in a"
                f" minute ({rate.per_minute}, costPerMinute): ask for smaller pages (`first`)",
                limit=policy.limit,
                maximum=rate.per_minute,
            )
        [take] = await sharing.buckets.take_all([policy.bucket], amount=cost)
        self.report["remaining"] = take.remaining
        if take.allowed:
            return None
        sharing.stats.cost_refused.add()
        context.response.status_code = 429
        context.response.headers["retry-after"] = str(take.retry_after)
        return RateExceeded(policy, take.retry_after)

    def get_results(self) -> dict[str, Any]:
        return {} if self.report is None else {"cost": self.report}
