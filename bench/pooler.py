"""PgBouncer in transaction mode: throughput through it, side by side with a direct server.

Three `tenantry serve` processes on the same seeded database, each loaded in turn with the
same seeded op mix (`_ops.LOAD_MIX`, tenants drawn from all seeded ones) by `--clients`
closed-loop clients:

- `direct`: connected to PostgreSQL as usual (asyncpg's statement cache on);
- `direct, no statement cache`: `TENANTRY_DATABASE_POOLER=transaction` without a pooler,
  so the cost of the cache being off shows apart from the extra hop;
- `through PgBouncer`: `DATABASE_URL` names a PgBouncer (Debian's package) in transaction
  mode started on a free port, `default_pool_size` as large as the server's pool, so the
  pooler adds its hop without queueing anything.

Rounds alternate the three (A, B, C, A, B, C, ...) so a busy moment of the machine hits each
alike; the report gives every round and each configuration's best, as a ratio to direct.
PgBouncer's own CPU is not in the server or PostgreSQL columns (it shows in "other").
Run: `python -m bench.pooler [--clients 16] [--rounds 2]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass

from tests.pgbouncer import find_pgbouncer, pgbouncer

from ._env import Env, add_arguments, environment, extra_server, log
from ._loadgen import LEVEL_HEADERS, Level, closed_loop, new_client, requests
from ._ops import LOAD_MIX
from ._report import table

CLIENTS = 16
ROUNDS = 2
REQUESTS_PER_ROUND = 1500
SECONDS_PER_ROUND = 20.0
# The server's pool (TENANTRY_POOL_MAX_SIZE, default 10): PgBouncer never makes it wait.
POOL_SIZE = 10
PASSWORD = "bench-pooler"  # noqa: S105 (PgBouncer on loopback, for this run only)

CONFIGURATIONS = ("direct", "direct, no statement cache", "through PgBouncer")


@dataclass(frozen=True)
class Round:
    configuration: str
    level: Level


@dataclass(frozen=True)
class PoolerReport:
    rounds: list[Round]
    clients: int

    def best(self, configuration: str) -> Level:
        return max(
            (r.level for r in self.rounds if r.configuration == configuration),
            key=lambda level: level.per_second,
        )

    def markdown(self) -> str:
        direct = self.best("direct").per_second
        best = [
            [*self.best(c).row(c), f"{self.best(c).per_second / direct:.2f}x"]
            for c in CONFIGURATIONS
        ]
        mix = ", ".join(f"`{name}` {weight}%" for name, weight in LOAD_MIX.items())
        return "\n".join(
            [
                "### PgBouncer in transaction mode",
                "",
                f"{self.clients} closed-loop clients, mix: {mix}. Each configuration's best "
                "round, and its throughput as a ratio to the direct server's:",
                "",
                table(["Configuration", *LEVEL_HEADERS[1:], "vs direct"], best),
                "",
                "Every round, in the order run:",
                "",
                table(
                    ["Configuration", *LEVEL_HEADERS[1:]],
                    [r.level.row(r.configuration) for r in self.rounds],
                ),
            ]
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "clients": self.clients,
            "rounds": [{"configuration": r.configuration, **asdict(r.level)} for r in self.rounds],
        }


@contextmanager
def servers(env: Env, binary: str) -> Iterator[dict[str, tuple[str, int]]]:
    """The three configurations' base URLs and server pids."""
    with ExitStack() as stack:
        bouncer = stack.enter_context(
            pgbouncer(env.app_url, {"tenantry_app": PASSWORD}, pool_size=POOL_SIZE, binary=binary)
        )
        log(f"PgBouncer {binary} on port {bouncer.port}")
        uncached = stack.enter_context(extra_server(env, TENANTRY_DATABASE_POOLER="transaction"))
        pooled = stack.enter_context(
            extra_server(
                env,
                DATABASE_URL=bouncer.url("tenantry_app"),
                TENANTRY_DATABASE_POOLER="transaction",
            )
        )
        yield {
            "direct": (env.base_url, env.server_pid),
            "direct, no statement cache": uncached,
            "through PgBouncer": pooled,
        }


async def measure(
    env: Env,
    where: dict[str, tuple[str, int]],
    *,
    clients: int,
    rounds: int,
    max_requests: int,
    max_seconds: float,
) -> PoolerReport:
    tokens = {tenant.slug: env.token(tenant) for tenant in env.tenants}
    done: list[Round] = []
    for number in range(rounds):
        for configuration in CONFIGURATIONS:
            base_url, pid = where[configuration]
            log(f"pooler: round {number + 1}, {configuration}")
            async with new_client(base_url, clients) as http:
                # The same sequence for each configuration of a round.
                sequence = requests(f"{env.seed}:pooler:{number}", env.tenants, tokens)
                await closed_loop(  # warm up: connections, caches, the server's pool
                    http,
                    sequence,
                    clients=clients,
                    max_requests=clients * 4,
                    max_seconds=30,
                    watched=env.watched_pid(pid),
                )
                level = await closed_loop(
                    http,
                    sequence,
                    clients=clients,
                    max_requests=max_requests,
                    max_seconds=max_seconds,
                    watched=env.watched_pid(pid),
                )
            if level.errors:
                # Counted in the report (a busy machine can time out a request or two).
                log(f"WARNING: {configuration}: {level.errors} requests failed")
            done.append(Round(configuration, level))
    return PoolerReport(done, clients)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pooler", description=__doc__)
    add_arguments(parser)
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--requests", type=int, default=REQUESTS_PER_ROUND)
    parser.add_argument("--seconds", type=float, default=SECONDS_PER_ROUND)
    args = parser.parse_args()
    binary = find_pgbouncer()
    if binary is None:
        sys.exit("pgbouncer is not installed: apt-get install pgbouncer")
    with environment(args.database_url, seed=args.seed) as env, servers(env, binary) as where:
        report = asyncio.run(
            measure(
                env,
                where,
                clients=args.clients,
                rounds=args.rounds,
                max_requests=args.requests,
                max_seconds=args.seconds,
            )
        )
        print("\n".join(env.header()))
        print()
        print(report.markdown())
        if args.json:
            args.json.write_text(json.dumps({"env": env.describe(), "pooler": report.as_dict()}))


if __name__ == "__main__":
    main()
