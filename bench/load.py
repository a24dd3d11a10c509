"""Load: closed-loop clients at several concurrency levels, and a noisy neighbour.

Each level runs `clients` workers that each send the next request of one seeded sequence
(the fixed op mix in `_ops.LOAD_MIX`, tenants drawn uniformly from all seeded tenants) as
soon as their previous response arrives. A level stops after `--requests` requests or
`--seconds`, whichever comes first; requests go only to the local server on 127.0.0.1.

Noisy neighbour: tenant B alone (1 client), then tenant A flooding with `--noisy-clients`
clients from a separate process while B repeats exactly the same sequence: once with A on
the unlimited plan (no limiter: the baseline), once with A on a plan whose requests per
minute the server enforces (429 beyond it, before any GraphQL).
Run: `python -m bench.load [--levels 1,4,16,32]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from app.core.db import Database
from app.tenants.plans import PLANS
from app.tenants.service import STATUS_TTL_SECONDS

from ._dataset import TenantData
from ._env import Env, add_arguments, environment, log
from ._loadgen import (
    LEVEL_HEADERS,
    FloodSpec,
    Level,
    closed_loop,
    flood_process,
    new_client,
    requests,
)
from ._ops import LOAD_MIX
from ._report import Summary, table

LEVELS = (1, 4, 16, 32)
REQUESTS_PER_LEVEL = 2000
SECONDS_PER_LEVEL = 20.0
NOISY_CLIENTS = 16
NOISY_REQUESTS = 200


@dataclass(frozen=True)
class Limited:
    """One limited round: A floods on `plan`; B's numbers and A's."""

    plan: str
    flooded: Level
    flood: Level


@dataclass(frozen=True)
class Noisy:
    """Tenant B's latency alone and while tenant A floods, first with A unlimited, then with
    A on plans whose requests per minute the server enforces; A's own numbers meanwhile."""

    alone: Level
    flooded: Level
    flood: Level
    limited: list[Limited]
    flood_clients: int


# The plans A floods on in the limited rounds: the paid plan with a limit, and the free one.
LIMITED_PLANS = ("team", "free")


async def _set_plan(env: Env, tenant: TenantData, plan: str) -> None:
    """Move a tenant to `plan` in the database, then wait until the server's cached copy of
    the tenant (status and plan, STATUS_TTL_SECONDS) has expired: the bench server keeps it
    in process memory, where nothing else could reach it."""
    database = await Database.connect(
        env.app_url, min_size=1, max_size=1, statement_timeout_ms=60_000
    )
    try:
        async with database.transaction(tenant.id) as session:
            await session.execute("UPDATE tenants SET plan = $1", plan)
    finally:
        await database.close()
    await asyncio.sleep(STATUS_TTL_SECONDS + 1)


async def _during_flood(
    env: Env, http: httpx.AsyncClient, *, clients: int, b_requests: int, max_seconds: float
) -> tuple[Level, Level]:
    """B's seeded sequence while A floods from a separate process: B's numbers and A's."""
    a, b = env.measured, env.neighbour
    context = multiprocessing.get_context("spawn")
    ready, stop, results = context.Event(), context.Event(), context.Queue()
    spec = FloodSpec(
        env.base_url,
        f"{env.seed}:noisy:A",
        a,
        env.token(a),
        clients,
        max_seconds + 30,
        env.watched,
    )
    process = context.Process(target=flood_process, args=(spec, ready, stop, results))
    process.start()
    try:
        if not await asyncio.to_thread(ready.wait, 60):
            raise RuntimeError("the flooding process did not start")
        await asyncio.sleep(1.0)  # let the flood reach its steady state
        flooded = await closed_loop(
            http,
            requests(f"{env.seed}:noisy:B", (b,), {b.slug: env.token(b)}),  # as when alone
            clients=1,
            max_requests=b_requests,
            max_seconds=max_seconds,
            watched=env.watched,
        )
        stop.set()
        flood_result: dict[str, Any] = await asyncio.to_thread(results.get, True, 60)
    finally:
        stop.set()
        await asyncio.to_thread(process.join, 10)
        if process.is_alive():
            process.terminate()
            process.join()
    flood_result["latency"] = Summary(**flood_result["latency"])
    return flooded, Level(**flood_result)


async def _noisy(env: Env, *, clients: int, b_requests: int, max_seconds: float) -> Noisy:
    b = env.neighbour
    async with new_client(env.base_url, 1) as http:
        log("load: noisy neighbour, B alone")
        alone = await closed_loop(
            http,
            requests(f"{env.seed}:noisy:B", (b,), {b.slug: env.token(b)}),
            clients=1,
            max_requests=b_requests,
            max_seconds=max_seconds,
            watched=env.watched,
        )
        log(f"load: noisy neighbour, B while A (unlimited) floods with {clients} clients")
        flooded, flood = await _during_flood(
            env, http, clients=clients, b_requests=b_requests, max_seconds=max_seconds
        )
        limited: list[Limited] = []
        for plan in LIMITED_PLANS:
            log(f"load: noisy neighbour, B while A ({plan} plan) floods")
            await _set_plan(env, env.measured, plan)
            try:
                limited.append(
                    Limited(
                        plan,
                        *await _during_flood(
                            env,
                            http,
                            clients=clients,
                            b_requests=b_requests,
                            max_seconds=max_seconds,
                        ),
                    )
                )
            finally:
                await _set_plan(env, env.measured, "enterprise")
    return Noisy(alone=alone, flooded=flooded, flood=flood, limited=limited, flood_clients=clients)


@dataclass(frozen=True)
class LoadReport:
    levels: list[Level]
    noisy: Noisy
    max_requests: int
    max_seconds: float

    def markdown(self) -> str:
        mix = ", ".join(f"`{name}` {weight}%" for name, weight in LOAD_MIX.items())
        n = self.noisy
        noisy_headers = ["Scenario", *LEVEL_HEADERS[1:]]
        b_p50 = n.flooded.latency.p50 / n.alone.latency.p50
        b_p99 = n.flooded.latency.p99 / n.alone.latency.p99
        limits = ", ".join(
            f"`{lim.plan}` {PLANS[lim.plan].requests_per_minute}/min" for lim in n.limited
        )
        return "\n".join(
            [
                "### Throughput: closed-loop clients, fixed op mix",
                "",
                f"Mix: {mix}; tenants drawn uniformly from all seeded tenants. Each level: "
                f"{self.max_requests} requests or {self.max_seconds:.0f} s, whichever first. "
                f"CPU columns in % of one core ({os.cpu_count()} cores = "
                f"{100 * (os.cpu_count() or 1)}%): the server process, the bench database's "
                "PostgreSQL backends, this load generator, and everything else on the machine "
                "(other processes, hypervisor steal: about 0 when nothing else runs).",
                "",
                table(LEVEL_HEADERS, [lv.row(str(lv.clients)) for lv in self.levels]),
                "",
                f"### Noisy neighbour: tenant B (1 client) alone, then while tenant A floods "
                f"with {n.flood_clients} clients",
                "",
                "B replays the same seeded sequence each time; A runs in a separate process "
                "(its CPU is B's `other` and the flood row's `generator`). First A is on the "
                "unlimited plan, then on plans whose requests per minute the server enforces "
                f"({limits}): A's requests beyond them are answered 429 before any GraphQL "
                "runs (the flood's `errors`); the count restarts each clock minute.",
                "",
                table(
                    noisy_headers,
                    [
                        n.alone.row("B alone"),
                        n.flooded.row("B while A floods (A unlimited)"),
                        n.flood.row(f"A, the flood ({n.flood_clients} clients, unlimited)"),
                        *(
                            row
                            for lim in n.limited
                            for row in (
                                lim.flooded.row(f"B while A floods (A on {lim.plan})"),
                                lim.flood.row(
                                    f"A, the flood ({n.flood_clients} clients, {lim.plan})"
                                ),
                            )
                        ),
                    ],
                ),
                "",
                f"- A unlimited: B's p50 is {b_p50:.1f}x and its p99 {b_p99:.1f}x what it is "
                "alone.",
                *(
                    f"- A on `{lim.plan}`: B's p50 is "
                    f"{lim.flooded.latency.p50 / n.alone.latency.p50:.1f}x and its p99 "
                    f"{lim.flooded.latency.p99 / n.alone.latency.p99:.1f}x what it is alone."
                    for lim in n.limited
                ),
            ]
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def measure(
    env: Env,
    *,
    levels: tuple[int, ...] = LEVELS,
    max_requests: int = REQUESTS_PER_LEVEL,
    max_seconds: float = SECONDS_PER_LEVEL,
    noisy_clients: int = NOISY_CLIENTS,
    noisy_requests: int = NOISY_REQUESTS,
) -> LoadReport:
    tokens = {t.slug: env.token(t) for t in env.tenants}
    results: list[Level] = []
    async with new_client(env.base_url, max(levels)) as http:
        log(f"load: warm-up at {max(levels)} clients")
        await closed_loop(
            http,
            requests(f"{env.seed}:load:warmup", env.tenants, tokens),
            clients=max(levels),
            max_requests=max(200, 4 * max(levels)),
            max_seconds=max_seconds,
            watched=env.watched,
        )
        for clients in levels:
            log(f"load: {clients} clients")
            results.append(
                await closed_loop(
                    http,
                    requests(f"{env.seed}:load:{clients}", env.tenants, tokens),
                    clients=clients,
                    max_requests=max_requests,
                    max_seconds=max_seconds,
                    watched=env.watched,
                )
            )
    noisy = await _noisy(
        env, clients=noisy_clients, b_requests=noisy_requests, max_seconds=max_seconds
    )
    return LoadReport(
        levels=results, noisy=noisy, max_requests=max_requests, max_seconds=max_seconds
    )


def add_load_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--levels",
        type=lambda v: tuple(int(x) for x in v.split(",")),
        default=LEVELS,
        help="concurrency levels, comma-separated (default 1,4,16,32)",
    )
    parser.add_argument(
        "--requests", type=int, default=REQUESTS_PER_LEVEL, help="max requests per level"
    )
    parser.add_argument(
        "--seconds", type=float, default=SECONDS_PER_LEVEL, help="max seconds per level"
    )
    parser.add_argument("--noisy-clients", type=int, default=NOISY_CLIENTS)
    parser.add_argument("--noisy-requests", type=int, default=NOISY_REQUESTS)


def run(env: Env, args: argparse.Namespace) -> LoadReport:
    return asyncio.run(
        measure(
            env,
            levels=args.levels,
            max_requests=args.requests,
            max_seconds=args.seconds,
            noisy_clients=args.noisy_clients,
            noisy_requests=args.noisy_requests,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    add_arguments(parser)
    add_load_arguments(parser)
    args = parser.parse_args()
    with environment(args.database_url, seed=args.seed) as env:
        report = run(env, args)
        print("\n".join(env.header()))
        print()
        print(report.markdown())
        if args.json:
            args.json.write_text(json.dumps({"env": env.describe(), "load": report.as_dict()}))


if __name__ == "__main__":
    main()
