"""The load generator: seeded request sequences, closed-loop workers, CPU accounting.

Its own module so the flooding child process (multiprocessing, spawn) imports it by name,
never through `__main__`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from multiprocessing.synchronize import Event as EventType
from typing import Any

import httpx

from ._cpu import Usage, Watched
from ._dataset import TenantData
from ._ops import LOAD_MIX, OPS, failed
from ._report import Summary, ms


@dataclass(frozen=True)
class Prepared:
    op: str
    body: bytes
    headers: dict[str, str]


def requests(
    seed: str, tenants: tuple[TenantData, ...], tokens: dict[str, str]
) -> Iterator[Prepared]:
    """An endless, seeded sequence of requests of the load mix."""
    rng = random.Random(seed)
    names, weights = list(LOAD_MIX), list(LOAD_MIX.values())
    i = 0
    while True:
        op = OPS[rng.choices(names, weights)[0]]
        tenant = rng.choice(tenants)
        headers = {"content-type": "application/json"}
        if op.authenticated:
            headers["authorization"] = f"Bearer {tokens[tenant.slug]}"
        yield Prepared(op.name, op.body(op.variables(tenant, rng, i)), headers)
        i += 1


@dataclass(frozen=True)
class Level:
    """One closed-loop run: counts, rate, client-measured latency, CPU use."""

    clients: int
    requests: int
    errors: int
    seconds: float
    per_second: float
    latency: Summary
    # CPU in % of one core: the server process, its database backends, this load
    # generator, and everything else on the machine (should be ~0 on an idle machine).
    server_cpu: float | None
    postgres_cpu: float | None
    generator_cpu: float
    other_cpu: float | None

    def row(self, label: str) -> list[str]:
        def pct(value: float | None) -> str:
            return "-" if value is None else f"{value:.0f}%"

        return [
            label,
            str(self.requests),
            str(self.errors),
            f"{self.seconds:.1f}",
            f"{self.per_second:.0f}",
            ms(self.latency.p50),
            ms(self.latency.p95),
            ms(self.latency.p99),
            ms(self.latency.mean),
            pct(self.server_cpu),
            pct(self.postgres_cpu),
            pct(self.generator_cpu),
            pct(self.other_cpu),
        ]


LEVEL_HEADERS = [
    "Clients",
    "requests",
    "errors",
    "seconds",
    "req/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "mean ms",
    "server CPU",
    "PostgreSQL CPU",
    "generator CPU",
    "other CPU",
]


async def closed_loop(
    client: httpx.AsyncClient,
    sequence: Iterator[Prepared],
    *,
    clients: int,
    max_requests: int,
    max_seconds: float,
    watched: Watched,
    stop: EventType | None = None,
) -> Level:
    """`clients` workers, each sending its next request when its last one is answered."""
    samples: list[float] = []
    errors = 0
    sent = 0
    deadline = time.perf_counter() + max_seconds

    async def worker() -> None:
        nonlocal errors, sent
        while sent < max_requests and time.perf_counter() < deadline:
            if stop is not None and stop.is_set():
                return
            sent += 1
            request = next(sequence)
            t0 = time.perf_counter()
            try:
                response = await client.post(
                    "/graphql", content=request.body, headers=request.headers
                )
                ok = response.status_code == 200 and not failed(response.content)
            except httpx.HTTPError:
                ok = False
            samples.append(time.perf_counter() - t0)
            errors += not ok

    before = watched.sample()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    seconds = time.perf_counter() - started
    after = watched.sample()
    usage = Usage.between(before, after, seconds)
    return Level(
        clients=clients,
        requests=len(samples),
        errors=errors,
        seconds=seconds,
        per_second=len(samples) / seconds,
        latency=Summary.of(samples),
        server_cpu=usage.server,
        postgres_cpu=usage.postgres,
        generator_cpu=usage.own,
        other_cpu=usage.other,
    )


def new_client(base_url: str, connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits)


@dataclass(frozen=True)
class FloodSpec:
    """What the flooding process needs (picklable)."""

    base_url: str
    seed: str
    tenant: TenantData
    token: str
    clients: int
    max_seconds: float
    watched: Watched


def flood_process(spec: FloodSpec, ready: EventType, stop: EventType, results: Any) -> None:
    async def flood() -> Level:
        sequence = requests(spec.seed, (spec.tenant,), {spec.tenant.slug: spec.token})
        async with new_client(spec.base_url, spec.clients) as http:
            # Open every connection before the measured window starts.
            await closed_loop(
                http,
                sequence,
                clients=spec.clients,
                max_requests=spec.clients * 2,
                max_seconds=30,
                watched=spec.watched,
            )
            ready.set()
            return await closed_loop(
                http,
                sequence,
                clients=spec.clients,
                max_requests=10**9,
                max_seconds=spec.max_seconds,
                watched=spec.watched,
                stop=stop,
            )

    results.put(asdict(asyncio.run(flood())))
