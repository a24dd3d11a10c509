"""Load: closed-loop clients at several concurrency levels, and a noisy neighbour.

Each level runs `clients` workers that each send the next request of one seeded sequence
(the fixed op mix in `_ops.LOAD_MIX`, tenants drawn uniformly from all seeded tenants) as
soon as their previous response arrives. A level stops after `--requests` requests or
`--seconds`, whichever comes first; requests go only to the local server on 127.0.0.1.

Noisy neighbour, side by side in one run: two server processes on the bench database, one
without fair admission (TENANTRY_TENANT_CONCURRENCY=0: any number of a tenant's operations
run at once, the behaviour before it) and one with the default (2 for a tenant alone, 1 each
while another is active). On each, tenant
B (1 client) alone, then while tenant A floods with `--noisy-clients` clients from a separate
process, with A on each plan in turn: `enterprise` (unlimited), `team` and `free` (their
request rates and cost budgets answer 429 beyond them, before any GraphQL). B replays exactly
the same sequence every time; what matters is B's p50 under the flood over its p50 alone.
Run: `python -m bench.load [--levels 1,4,16,32] [--noisy-only]`.
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

from ._cpu import Watched
from ._dataset import TenantData
from ._env import Env, add_arguments, environment, extra_server, log
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
class Round:
    """A floods on `plan`: B's numbers and A's."""

    plan: str
    flooded: Level
    flood: Level


@dataclass(frozen=True)
class NoisyServer:
    """One server process: B alone, then B while A floods on each plan."""

    label: str
    alone: Level
    rounds: list[Round]

    def ratio(self, round_: Round) -> float:
        return round_.flooded.latency.p50 / self.alone.latency.p50


@dataclass(frozen=True)
class Noisy:
    servers: list[NoisyServer]
    flood_clients: int


# The plans A floods on: unlimited, then the paid plan with limits, then the free one.
FLOOD_PLANS = ("enterprise", "team", "free")
# The two servers compared: fair admission off (the behaviour before it), then the default.
SERVERS: tuple[tuple[str, dict[str, str]], ...] = (
    ("fair admission off", {"TENANTRY_TENANT_CONCURRENCY": "0"}),
    ("fair admission on (default: 2 alone, shared between active tenants)", {}),
)


async def _set_plan(env: Env, tenant: TenantData, plan: str) -> None:
    """Move a tenant to `plan` in the database, then wait until the servers' cached copy of
    the tenant (status and plan, STATUS_TTL_SECONDS) has expired: the bench servers keep it
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
    env: Env,
    http: httpx.AsyncClient,
    base_url: str,
    watched: Watched,
    *,
    clients: int,
    b_requests: int,
    max_seconds: float,
) -> tuple[Level, Level]:
    """B's seeded sequence while A floods from a separate process: B's numbers and A's."""
    a = env.measured
    context = multiprocessing.get_context("spawn")
    ready, stop, results = context.Event(), context.Event(), context.Queue()
    spec = FloodSpec(
        base_url, f"{env.seed}:noisy:A", a, env.token(a), clients, max_seconds + 30, watched
    )
    process = context.Process(target=flood_process, args=(spec, ready, stop, results))
    process.start()
    try:
        if not await asyncio.to_thread(ready.wait, 60):
            raise RuntimeError("the flooding process did not start")
        await asyncio.sleep(1.0)  # let the flood reach its steady state
        flooded = await _b_sequence(env, http, watched, b_requests, max_seconds)
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


async def _b_sequence(
    env: Env, http: httpx.AsyncClient, watched: Watched, b_requests: int, max_seconds: float
) -> Level:
    b = env.neighbour
    return await closed_loop(
        http,
        requests(f"{env.seed}:noisy:B", (b,), {b.slug: env.token(b)}),  # the same each time
        clients=1,
        max_requests=b_requests,
        max_seconds=max_seconds,
        watched=watched,
    )


async def _noisy_on(
    env: Env,
    label: str,
    base_url: str,
    watched: Watched,
    *,
    clients: int,
    b_requests: int,
    max_seconds: float,
) -> NoisyServer:
    async with new_client(base_url, 1) as http:
        log(f"load: noisy neighbour ({label}), B alone")
        alone = await _b_sequence(env, http, watched, b_requests, max_seconds)
        rounds: list[Round] = []
        for plan in FLOOD_PLANS:
            log(f"load: noisy neighbour ({label}), B while A ({plan}) floods with {clients}")
            await _set_plan(env, env.measured, plan)
            try:
                flooded, flood = await _during_flood(
                    env,
                    http,
                    base_url,
                    watched,
                    clients=clients,
                    b_requests=b_requests,
                    max_seconds=max_seconds,
                )
            finally:
                await _set_plan(env, env.measured, "enterprise")
            rounds.append(Round(plan, flooded, flood))
    return NoisyServer(label, alone, rounds)


async def _noisy(env: Env, *, clients: int, b_requests: int, max_seconds: float) -> Noisy:
    servers: list[NoisyServer] = []
    for label, overrides in SERVERS:
        with extra_server(env, **overrides) as (base_url, pid):
            servers.append(
                await _noisy_on(
                    env,
                    label,
                    base_url,
                    env.watched_pid(pid),
                    clients=clients,
                    b_requests=b_requests,
                    max_seconds=max_seconds,
                )
            )
    return Noisy(servers=servers, flood_clients=clients)


def _plan_limits(plan: str) -> str:
    p = PLANS[plan]
    if p.requests_per_minute is None:
        return "unlimited"
    return (
        f"{p.requests_per_minute}/min, {p.user_requests_per_minute}/min per user,"
        f" cost {p.cost_per_minute}/min"
    )


@dataclass(frozen=True)
class LoadReport:
    levels: list[Level]
    noisy: Noisy
    max_requests: int
    max_seconds: float

    def markdown(self) -> str:
        mix = ", ".join(f"`{name}` {weight}%" for name, weight in LOAD_MIX.items())
        lines = []
        if self.levels:
            lines += [
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
            ]
        n = self.noisy
        noisy_headers = ["Scenario", *LEVEL_HEADERS[1:]]
        lines += [
            f"### Noisy neighbour: tenant B (1 client) alone, then while tenant A floods "
            f"with {n.flood_clients} clients",
            "",
            "Two server processes on the same database, one after the other: "
            + " and ".join(f"`{s.label}`" for s in n.servers)
            + ". On each, B alone, then B while A floods on each plan ("
            + "; ".join(f"`{plan}`: {_plan_limits(plan)}" for plan in FLOOD_PLANS)
            + "). B replays the same seeded sequence every time; A runs in a separate process "
            "(its CPU is B's `other` and the flood row's `generator`); A's `errors` are its "
            "429s.",
            "",
            "| A floods on | " + " | ".join(f"B's p50 ratio, {s.label}" for s in n.servers) + " |",
            "| --- |" + " ---: |" * len(n.servers),
            *(
                f"| `{plan}` | "
                + " | ".join(f"{s.ratio(s.rounds[k]):.2f}x" for s in n.servers)
                + " |"
                for k, plan in enumerate(FLOOD_PLANS)
            ),
            "",
        ]
        for server in n.servers:
            lines += [
                f"#### {server.label}",
                "",
                table(
                    noisy_headers,
                    [
                        server.alone.row("B alone"),
                        *(
                            row
                            for r in server.rounds
                            for row in (
                                r.flooded.row(f"B while A floods (A on {r.plan})"),
                                r.flood.row(f"A, the flood ({n.flood_clients} clients, {r.plan})"),
                            )
                        ),
                    ],
                ),
                "",
            ]
        return "\n".join(lines)

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
    if levels:
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
    parser.add_argument(
        "--noisy-only", action="store_true", help="only the noisy-neighbour comparison"
    )


def run(env: Env, args: argparse.Namespace) -> LoadReport:
    return asyncio.run(
        measure(
            env,
            levels=() if getattr(args, "noisy_only", False) else args.levels,
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
