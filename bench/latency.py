"""Latency: one client, sequential keep-alive requests, per named operation.

For every operation: p50/p95/p99/mean over `--iterations` requests after `--warmup`, the
sequential request rate and the response size. Then the nested project page three ways,
side by side:

1. HTTP + GraphQL: the real server process, measured by the client;
2. GraphQL in-process: `schema.execute` on the same schema, with no HTTP, no JSON, no token;
3. SQL only: the same statements (checked: identical text, same count) through the app's own
   `fetch_page` / `count_rows` / `fetch_by_ids`, in one `Database.transaction`, no GraphQL.

(2) - (3) is what the executor costs (resolvers, DataLoaders, type mapping); (1) - (2) is
HTTP, JSON and authentication. (2) also reports its garbage-collection pauses, and is run
once more with the start-up heap `gc.freeze()`d, to show what that one call would change.
Run: `python -m bench.latency [--iterations 300]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from typing import Any

import httpx

from . import _inprocess
from ._cpu import Usage
from ._dataset import TenantData
from ._env import Env, add_arguments, environment, log
from ._ops import NESTED, OPS, Op, failed, op_rng
from ._report import Summary, ms, table

ITERATIONS = 300
WARMUP = 20


@dataclass(frozen=True)
class OpLatency:
    name: str
    http: Summary
    per_second: float
    response_bytes: int
    in_process: Summary | None


@dataclass(frozen=True)
class Breakdown:
    """The nested page: HTTP total vs in-process executor vs SQL only."""

    http: Summary
    in_process: Summary
    # Cyclic garbage collection inside the in-process runs: mean pause time per operation.
    gc_ms_per_op: float
    gc_full_collections: int
    frozen: Summary  # in-process again, with the start-up heap gc.freeze()d
    sql_only: Summary
    json_encode: Summary
    statements: int
    same_statements: bool
    rows: int
    tracked_objects: int


@dataclass(frozen=True)
class LatencyReport:
    iterations: int
    warmup: int
    ops: list[OpLatency]
    nested: Breakdown
    # CPU per measured block (an operation over HTTP, in-process, ...), to show contention.
    blocks: dict[str, Usage]

    def busiest(self) -> tuple[str, float] | None:
        """The block in which other processes used the most CPU."""
        others = [(name, u.other) for name, u in self.blocks.items() if u.other is not None]
        return max(others, key=lambda item: item[1]) if others else None

    def markdown(self) -> str:
        rows = [
            [
                f"`{o.name}`",
                ms(o.http.p50),
                ms(o.http.p95),
                ms(o.http.p99),
                ms(o.http.mean),
                f"{o.per_second:.0f}",
                f"{o.response_bytes:,}",
                ms(o.in_process.p50) if o.in_process else "-",
            ]
            for o in self.ops
        ]
        b = self.nested
        base = b.http.p50

        def layer(name: str, s: Summary) -> list[str]:
            share = f"{100 * s.p50 / base:.0f}%"
            return [name, ms(s.p50), ms(s.p95), ms(s.p99), ms(s.mean), share]

        executor = b.in_process.p50 - b.sql_only.p50
        transport = b.http.p50 - b.in_process.p50
        busiest = self.busiest()
        contention = (
            "unknown"
            if busiest is None
            else f"at most {busiest[1]:.0f}% of one core (during `{busiest[0]}`)"
        )
        server = [u.server for u in self.blocks.values() if u.server is not None]
        return "\n".join(
            [
                f"### Latency: one client, sequential, keep-alive ({self.iterations} requests "
                f"per operation after {self.warmup} warm-up)",
                "",
                f"Other processes' CPU during any measured block: {contention}. "
                f"Server process CPU while it was measured: up to "
                f"{max(server, default=0):.0f}% of one core.",
                "",
                table(
                    [
                        "Operation",
                        "p50 ms",
                        "p95 ms",
                        "p99 ms",
                        "mean ms",
                        "req/s",
                        "response bytes",
                        "in-process p50 ms",
                    ],
                    rows,
                ),
                "",
                "`in-process`: the same document through `schema.execute` in the bench process "
                "(no HTTP, no JSON, no token check).",
                "",
                f"### Where the time goes: `{NESTED.name}` (20 projects x 10 tasks x 3 comments, "
                f"{b.rows} rows, {b.statements} SQL statements)",
                "",
                table(
                    ["Layer", "p50 ms", "p95 ms", "p99 ms", "mean ms", "share of HTTP p50"],
                    [
                        layer("HTTP + GraphQL total (server process)", b.http),
                        layer("GraphQL execute in-process (no HTTP/JSON)", b.in_process),
                        [
                            "- of which garbage-collection pauses",
                            "-",
                            "-",
                            "-",
                            ms(b.gc_ms_per_op),
                            f"{b.gc_full_collections} full collections",
                        ],
                        layer("GraphQL execute in-process, heap `gc.freeze()`d", b.frozen),
                        layer(f"SQL only (same {b.statements} statements, asyncpg)", b.sql_only),
                        layer("JSON encoding of the response (alone)", b.json_encode),
                    ],
                ),
                "",
                f"- Executor overhead (in-process - SQL only): {ms(executor)} ms at p50, "
                f"{100 * executor / base:.0f}% of the HTTP total.",
                f"- HTTP + JSON + auth (HTTP total - in-process): {ms(transport)} ms at p50, "
                f"{100 * transport / base:.0f}%.",
                f"- SQL statements: {b.statements} per operation, "
                + (
                    "identical to the ones the executor ran."
                    if b.same_statements
                    else "NOT identical to the executor's: the SQL-only replica is out of date."
                ),
            ]
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "iterations": self.iterations,
            "warmup": self.warmup,
            "ops": [asdict(o) for o in self.ops],
            "nested": asdict(self.nested),
            "blocks": {name: asdict(u) for name, u in self.blocks.items()},
        }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def _headers(env: Env, op: Op, tenant: TenantData) -> dict[str, str]:
    headers = {"content-type": "application/json"}
    if op.authenticated:
        headers["authorization"] = f"Bearer {env.token(tenant)}"
    return headers


async def _over_http(
    client: httpx.AsyncClient, env: Env, op: Op, *, iterations: int, warmup: int
) -> OpLatency:
    tenant = env.measured
    rng = op_rng(env.seed, op)
    headers = _headers(env, op, tenant)
    samples: list[float] = []
    sizes: list[int] = []
    started = time.perf_counter()
    for i in range(warmup + iterations):
        body = op.body(op.variables(tenant, rng, i))
        if i == warmup:
            started = time.perf_counter()
        t0 = time.perf_counter()
        response = await client.post("/graphql", content=body, headers=headers)
        elapsed = time.perf_counter() - t0
        if response.status_code != 200 or (failed(response.content) and not op.refused):
            raise RuntimeError(f"{op.name}: {response.status_code} {response.text[:500]}")
        if i == 0:
            op.check(response.json()["data"], tenant)
        if i >= warmup:
            samples.append(elapsed)
            sizes.append(len(response.content))
    wall = time.perf_counter() - started
    return OpLatency(
        name=op.name,
        http=Summary.of(samples),
        per_second=iterations / wall,
        response_bytes=int(statistics.median(sizes)),
        in_process=None,
    )


async def measure(env: Env, *, iterations: int = ITERATIONS, warmup: int = WARMUP) -> LatencyReport:
    blocks: dict[str, Usage] = {}
    http: dict[str, OpLatency] = {}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=env.base_url, timeout=30, limits=limits) as client:
        for op in OPS.values():
            log(f"latency: {op.name} over HTTP")
            before, started = env.watched.sample(), time.perf_counter()
            http[op.name] = await _over_http(client, env, op, iterations=iterations, warmup=warmup)
            seconds = time.perf_counter() - started
            blocks[f"{op.name} over HTTP"] = Usage.between(before, env.watched.sample(), seconds)

    log("latency: in-process and SQL only, in a fresh process")
    spec = _inprocess.Spec(
        app_url=env.app_url,
        settings=env.settings,
        seed=env.seed,
        tenant=env.measured,
        iterations=iterations,
        warmup=warmup,
        watched=env.watched,
    )
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        child = await asyncio.get_running_loop().run_in_executor(pool, _inprocess.run, spec)
    breakdown = Breakdown(
        http=http[NESTED.name].http,
        in_process=child.in_process[NESTED.name],
        gc_ms_per_op=child.gc_ms_per_op,
        gc_full_collections=child.gc_full_collections,
        frozen=child.frozen,
        sql_only=child.sql_only,
        json_encode=child.json_encode,
        statements=child.statements,
        same_statements=child.same_statements,
        rows=child.rows,
        tracked_objects=child.tracked_objects,
    )
    ops = [replace(r, in_process=child.in_process.get(r.name)) for r in http.values()]
    return LatencyReport(
        iterations=iterations,
        warmup=warmup,
        ops=ops,
        nested=breakdown,
        blocks=blocks | child.blocks,
    )


def add_latency_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--iterations", type=int, default=ITERATIONS, help="per operation")
    parser.add_argument("--warmup", type=int, default=WARMUP, help="per operation, not measured")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__)
    add_arguments(parser)
    add_latency_arguments(parser)
    args = parser.parse_args()
    with environment(args.database_url, seed=args.seed) as env:
        report = asyncio.run(measure(env, iterations=args.iterations, warmup=args.warmup))
        print("\n".join(env.header()))
        print()
        print(report.markdown())
        if args.json:
            args.json.write_text(json.dumps({"env": env.describe(), "latency": report.as_dict()}))


if __name__ == "__main__":
    main()
