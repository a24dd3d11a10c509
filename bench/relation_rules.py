"""What enforcing the read rule on every relation costs: the nested page in-process, with the
rules and without them, side by side in one run.

The nested page (20 projects x 10 tasks x 3 comments, with assignees and authors) resolves
about a thousand guarded relations per operation (`Project.tasks`, `Task.assignee`,
`Task.comments`, `Comment.author`). Two schemas are built from the same code: the real one,
and one whose relation fields are built without their `RuleExtension` (the only difference).
Both run the same operation for the same user of the same seeded tenant, interleaved, with
the cyclic garbage collector paused around each execution (its pauses are the largest noise
at this size, and the same for both), measuring this process's CPU time: the executor's
work, not the database's. Run: `python -m bench.relation_rules [--iterations 200]`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager

import strawberry
from strawberry.types.base import get_object_definition

from app.api.permissions import RuleExtension
from app.api.relations import relation_of
from app.comments.types import Comment
from app.core.db import Database
from app.core.store import Store
from app.projects.types import Project
from app.schema import build_schema
from app.tasks.types import Task
from app.users.types import User

from ._env import Env, add_arguments, environment, log
from ._inprocess import _execute, _Runner
from ._ops import NESTED
from ._report import Summary, ms, table

ITERATIONS = 200
WARMUP = 20


@contextmanager
def _relations_without_rules() -> Iterator[None]:
    """Build schemas inside this block without the relations' rule extensions."""
    saved = []
    for graphql_type in (Project, Task, Comment, User):
        for field in get_object_definition(graphql_type, strict=True).fields:
            if relation_of(field) is not None:
                saved.append((field, list(field.extensions)))
                field.extensions = [e for e in field.extensions if not isinstance(e, RuleExtension)]
    try:
        yield
    finally:
        for field, extensions in saved:
            field.extensions = extensions


def _guarded(data: object) -> int:
    """Relation values in a nested page result (objects and connections under a relation)."""
    if isinstance(data, list):
        return sum(_guarded(d) for d in data)
    if not isinstance(data, dict):
        return 0
    relations = {"tasks", "assignee", "comments", "author"}
    return sum((k in relations) + _guarded(v) for k, v in data.items())


async def measure(env: Env, *, iterations: int, warmup: int) -> str:
    settings = env.settings
    with_rules = build_schema(settings.limits, introspection=settings.introspection)
    with _relations_without_rules():
        without: strawberry.Schema = build_schema(
            settings.limits, introspection=settings.introspection
        )
    database = await Database.connect(
        env.app_url,
        min_size=1,
        max_size=1,
        statement_timeout_ms=settings.limits.statement_timeout_ms,
    )
    store = Store.from_url(None)
    tenant = env.tenants[0]
    runs = {
        "rules": _Runner(with_rules, settings, env.tokens, database, tenant, store),
        "no rules": _Runner(without, settings, env.tokens, database, tenant, store),
    }
    samples: dict[str, list[float]] = {name: [] for name in runs}
    guarded = 0
    try:
        for i in range(warmup + iterations):
            for name, run in runs.items():
                gc.collect()
                gc.disable()
                try:
                    started = time.process_time()
                    result = await _execute(run, NESTED, None)
                    spent = time.process_time() - started
                finally:
                    gc.enable()
                if i >= warmup:
                    samples[name].append(spent)
                guarded = _guarded(result.data)
    finally:
        await database.close()
    summaries = {name: Summary.of(s) for name, s in samples.items()}
    ratio = statistics.median(samples["rules"]) / statistics.median(samples["no rules"])
    extra = (summaries["rules"].p50 - summaries["no rules"].p50) / guarded * 1000
    rows = [[name, ms(s.p50), ms(s.p95), ms(s.mean), s.n] for name, s in summaries.items()]
    return "\n".join(
        [
            "### Relation rules: the nested page in-process, CPU ms per operation",
            "",
            table(["schema", "p50", "p95", "mean", "n"], rows),
            "",
            f"- {guarded} guarded relations resolved per operation",
            f"- with rules / without (p50): {ratio:.3f}; {extra:.1f} µs per guarded relation",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.relation_rules", description=__doc__)
    add_arguments(parser)
    parser.add_argument("--iterations", type=int, default=ITERATIONS)
    parser.add_argument("--warmup", type=int, default=WARMUP)
    args = parser.parse_args()
    with environment(args.database_url, seed=args.seed) as env:
        log("measuring the nested page with and without relation rules …")
        report = asyncio.run(measure(env, iterations=args.iterations, warmup=args.warmup))
    print("\n".join(env.header()))
    print()
    print(report)


if __name__ == "__main__":
    main()
