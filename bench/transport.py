"""What the GraphQL-over-HTTP choices cost over real HTTP, side by side in one run: the same
operation sent as a document, as an automatic persisted query's hash (registered once, then
looked up in the store and verified against its SHA-256 on every request), and answered in
application/graphql-response+json instead of application/json.

Against the bench's real server (`tenantry serve`, production settings; its store is the
environment's: Redis when `REDIS_URL` is set, else memory), the variants interleaved per
iteration so drift hits each alike. Run: `python -m bench.transport [--iterations 300]`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx

from ._env import Env, add_arguments, environment, log
from ._ops import OPS, op_rng
from ._report import Summary, ms, table

ITERATIONS = 300
WARMUP = 30

Payload = Callable[[int], bytes]


def _payload(name: str, env: Env, *, hashed: bool) -> Payload:
    op = OPS[name]
    tenant = env.measured
    rng = op_rng(env.seed, op)
    digest = hashlib.sha256(op.document.encode()).hexdigest()

    def make(i: int) -> bytes:
        body: dict[str, Any] = {}
        variables = op.variables(tenant, rng, i)
        if variables is not None:
            body["variables"] = variables
        if hashed:
            body["extensions"] = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
        else:
            body["query"] = op.document
        return json.dumps(body).encode()

    return make


async def measure(env: Env, *, iterations: int, warmup: int) -> str:
    name = "projects(first:20)"
    headers = {
        "content-type": "application/json",
        "authorization": f"Bearer {env.token(env.measured)}",
    }
    modern = {**headers, "accept": "application/graphql-response+json"}
    variants: dict[str, tuple[Payload, dict[str, str]]] = {
        "document, application/json": (_payload(name, env, hashed=False), headers),
        "APQ hash, application/json": (_payload(name, env, hashed=True), headers),
        "document, graphql-response+json": (_payload(name, env, hashed=False), modern),
    }
    samples: dict[str, list[float]] = {v: [] for v in variants}
    sizes: dict[str, int] = {}
    async with httpx.AsyncClient(base_url=env.base_url, timeout=30) as client:
        # Registered once, as Apollo's link does on its first miss.
        first = _payload(name, env, hashed=False)(0)
        registered = json.loads(first)
        registered["extensions"] = json.loads(_payload(name, env, hashed=True)(0))["extensions"]
        (await client.post("/graphql", json=registered, headers=headers)).raise_for_status()
        for i in range(warmup + iterations):
            for variant, (make, sent) in variants.items():
                body = make(i)
                t0 = time.perf_counter()
                response = await client.post("/graphql", content=body, headers=sent)
                elapsed = time.perf_counter() - t0
                if response.status_code != 200 or "errors" in response.json():
                    raise RuntimeError(f"{variant}: {response.status_code} {response.text[:300]}")
                if i >= warmup:
                    samples[variant].append(elapsed)
                sizes[variant] = len(body)
    summaries = {v: Summary.of(s) for v, s in samples.items()}
    base = statistics.median(samples["document, application/json"])
    rows = [
        [v, sizes[v], ms(s.p50), ms(s.p95), f"{statistics.median(samples[v]) / base:.3f}"]
        for v, s in summaries.items()
    ]
    return "\n".join(
        [
            f"### Transport: `{name}` over HTTP, ms per request",
            "",
            table(["variant", "request bytes", "p50", "p95", "p50 / document"], rows),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.transport", description=__doc__)
    add_arguments(parser)
    parser.add_argument("--iterations", type=int, default=ITERATIONS)
    parser.add_argument("--warmup", type=int, default=WARMUP)
    args = parser.parse_args()
    with environment(args.database_url, seed=args.seed) as env:
        log("measuring the transport variants …")
        report = asyncio.run(measure(env, iterations=args.iterations, warmup=args.warmup))
    print("\n".join(env.header()))
    print()
    print(report)


if __name__ == "__main__":
    main()
