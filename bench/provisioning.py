"""The provisioning benchmark: platform administrators creating tenants over HTTP.

200 `createTenant` calls one after another, then 200 from 8 concurrent clients, against the
bench server. Each provisions a full tenant in one transaction (tenant row, four system
roles, two audit entries, an idempotency key, and an owner invited by mail, which the
production server's development mailer writes to the tenant's outbox). Slugs come from the
seed. Reports tenants per second and client-measured latency.

`python -m bench.provisioning [--database-url URL]`; also part of `python -m bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx

from app.core.db import Database
from app.core.request_meta import RequestMeta
from app.mfa import crypto
from app.platform.permissions import PlatformPermission
from app.platform.service import create_admin

from ._env import Env, add_arguments, environment, log
from ._report import Summary, ms, table

TENANTS = 200
CLIENTS = 8
# The goal for one tenant on the CI machine (docs/benchmarks.md).
GOAL_P50_MS = 50.0

CREATE = """
mutation ($input: CreateTenantInput!) {
  createTenant(input: $input) { tenant { id } created errors { code message } }
}"""
SIGN_IN = """
mutation ($input: PlatformSignInInput!) {
  platformSignIn(input: $input) { accessToken errors { code message } }
}"""


@dataclass(frozen=True)
class Run:
    name: str
    clients: int
    tenants: int
    seconds: float
    latency: Summary

    @property
    def per_second(self) -> float:
        return self.tenants / self.seconds


@dataclass(frozen=True)
class ProvisioningReport:
    runs: list[Run]

    def markdown(self) -> str:
        rows = [
            [
                r.name,
                r.clients,
                r.tenants,
                f"{r.per_second:.1f}",
                ms(r.latency.p50),
                ms(r.latency.p95),
                ms(r.latency.p99),
                ms(r.latency.max),
            ]
            for r in self.runs
        ]
        return "\n".join(
            [
                "### Provisioning (createTenant over HTTP, owner invited by mail)",
                "",
                table(
                    ["Run", "Clients", "Tenants", "Tenants/s", "p50 ms", "p95", "p99", "max"],
                    rows,
                ),
                "",
                f"Goal: p50 under {GOAL_P50_MS:.0f} ms per tenant on the CI machine.",
            ]
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "runs": [
                {
                    "name": r.name,
                    "clients": r.clients,
                    "tenants": r.tenants,
                    "seconds": r.seconds,
                    "per_second": r.per_second,
                    "latency": r.latency.as_dict(),
                }
                for r in self.runs
            ]
        }


async def _admin_token(env: Env, client: httpx.AsyncClient) -> str:
    """A platform administrator holding tenant:create, signed in as a person would."""
    database = await Database.connect(
        env.app_url, min_size=1, max_size=1, statement_timeout_ms=5000
    )
    try:
        created = await create_admin(
            database,
            env.settings,
            RequestMeta.none(),
            email=f"bench-{env.seed}@platform.example",
            name="Bench",
            password=None,
            permissions=[PlatformPermission.TENANT_CREATE],
        )
    finally:
        await database.close()
    assert created.password is not None
    code = crypto.code_at_step(created.totp_secret, crypto.current_step())
    variables = {"email": created.admin.email, "password": created.password, "code": code}
    response = await client.post(
        "/graphql", json={"query": SIGN_IN, "variables": {"input": variables}}
    )
    body = response.json()
    payload = body["data"]["platformSignIn"]
    assert not payload["errors"], payload
    return str(payload["accessToken"])


async def _create(client: httpx.AsyncClient, token: str, slug: str) -> float:
    variables = {
        "input": {
            "slug": slug,
            "name": f"Bench {slug}",
            "plan": "team",
            "owner": {"email": f"owner@{slug}.example"},
            "idempotencyKey": slug,
        }
    }
    started = time.perf_counter()
    response = await client.post(
        "/graphql",
        json={"query": CREATE, "variables": variables},
        headers={"authorization": f"Bearer {token}"},
    )
    elapsed = time.perf_counter() - started
    payload = response.json()["data"]["createTenant"]
    if payload["errors"] or not payload["created"]:
        raise RuntimeError(f"createTenant failed: {payload}")
    return elapsed


async def _run(
    client: httpx.AsyncClient, token: str, slugs: list[str], *, name: str, clients: int
) -> Run:
    pending = list(slugs)
    samples: list[float] = []

    async def worker() -> None:
        while pending:
            samples.append(await _create(client, token, pending.pop(0)))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    seconds = time.perf_counter() - started
    return Run(name, clients, len(slugs), seconds, Summary.of(samples))


async def measure(
    env: Env, *, tenants: int = TENANTS, clients: int = CLIENTS
) -> ProvisioningReport:
    rng = random.Random(f"{env.seed}:provisioning")
    slugs = [f"p{rng.getrandbits(48):012x}" for _ in range(2 * tenants + 10)]
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=env.base_url, timeout=60, limits=limits) as client:
        token = await _admin_token(env, client)
        # Warm-up: the first calls pay for connections and the server's caches.
        await _run(client, token, slugs[:10], name="warm-up", clients=1)
        log(f"provisioning {tenants} tenants sequentially …")
        sequential = await _run(
            client, token, slugs[10 : 10 + tenants], name="sequential", clients=1
        )
        log(f"provisioning {tenants} tenants from {clients} clients …")
        concurrent = await _run(
            client, token, slugs[10 + tenants :], name="concurrent", clients=clients
        )
    return ProvisioningReport([sequential, concurrent])


def add_provisioning_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenants", type=int, default=TENANTS, help="tenants per run")
    parser.add_argument("--clients", type=int, default=CLIENTS, help="concurrent clients")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.provisioning", description=__doc__)
    add_arguments(parser)
    add_provisioning_arguments(parser)
    args = parser.parse_args()
    with environment(args.database_url, seed=args.seed) as env:
        report = asyncio.run(measure(env, tenants=args.tenants, clients=args.clients))
        print("\n".join(env.header()))
        print()
        print(report.markdown())
        if args.json:
            args.json.write_text(
                json.dumps({"env": env.describe(), "provisioning": report.as_dict()})
            )


if __name__ == "__main__":
    main()
