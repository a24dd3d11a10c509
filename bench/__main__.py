"""Both benchmarks against one environment, printed as one markdown report.

`python -m bench [--database-url URL] [--json FILE]`; see `--help` for the knobs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from . import dos, latency, load, provisioning
from ._env import add_arguments, environment, log


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    add_arguments(parser)
    latency.add_latency_arguments(parser)
    dos.add_dos_arguments(parser)
    load.add_load_arguments(parser)
    provisioning.add_provisioning_arguments(parser)
    args = parser.parse_args()
    started = time.perf_counter()
    with environment(args.database_url, seed=args.seed) as env:
        latency_report = asyncio.run(
            latency.measure(env, iterations=args.iterations, warmup=args.warmup)
        )
        dos_report = asyncio.run(dos.measure(env, repeat=args.repeat))
        load_report = load.run(env, args)
        # Last: it adds tenants, which the other two must not see.
        provisioning_report = asyncio.run(
            provisioning.measure(env, tenants=args.tenants, clients=args.clients)
        )
        elapsed = time.perf_counter() - started
        print("## Tenantry benchmarks\n")
        print("\n".join([*env.header(), f"- Total bench run time: {elapsed:.0f} s"]))
        print()
        print(latency_report.markdown())
        print()
        print(dos_report.markdown())
        print()
        print(load_report.markdown())
        print()
        print(provisioning_report.markdown())
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "env": env.describe(),
                        "latency": latency_report.as_dict(),
                        "dos": dos_report.as_dict(),
                        "load": load_report.as_dict(),
                        "provisioning": provisioning_report.as_dict(),
                    },
                    indent=2,
                )
            )
    log(f"done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
