"""The in-process half of the latency comparison, run in a fresh child process.

A fresh process (spawned: the app, its schema and asyncpg, nothing else) has a heap like
the server's. The bench process also holds the dataset's ids and the HTTP client, and the
cyclic garbage collector's pauses grow with the heap, so measuring here would overstate the
executor. Every block also accounts its CPU, as the child sees it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import strawberry
from starlette.requests import Request
from starlette.responses import Response
from strawberry.types import ExecutionResult

from app.api.context import Context, Principal
from app.comments.models import COMMENTS, OLDEST_FIRST
from app.core.db import Database
from app.core.keys import KeyRing
from app.core.security import AccessClaims, TokenService
from app.core.settings import Settings
from app.core.store import Store
from app.core.tables import PageQuery, count_rows, fetch_by_ids, fetch_page
from app.platform.service import actor_for as platform_actor_for
from app.projects.models import PROJECTS, ProjectOrderField
from app.rbac.service import actor_for
from app.schema import build_schema
from app.tasks.models import TASKS, TaskOrderField
from app.users.models import USERS

from ._cpu import Usage, Watched
from ._dataset import TenantData
from ._ops import NESTED, OPS, Op, Variables, op_rng
from ._report import Summary


@dataclass(frozen=True)
class Spec:
    """What the child needs (picklable)."""

    app_url: str
    settings: Settings
    seed: int
    tenant: TenantData
    iterations: int
    warmup: int
    watched: Watched


@dataclass(frozen=True)
class Results:
    in_process: dict[str, Summary]
    # Cyclic garbage collection inside the nested in-process runs: mean pause per operation.
    gc_ms_per_op: float
    gc_full_collections: int
    frozen: Summary  # nested in-process again, with the start-up heap gc.freeze()d
    sql_only: Summary
    json_encode: Summary
    statements: int
    same_statements: bool
    rows: int
    blocks: dict[str, Usage]
    tracked_objects: int  # objects the collector tracks once the schema is built


class _Blocks:
    """Records the CPU use of each measured block."""

    def __init__(self, watched: Watched) -> None:
        self._watched = watched
        self.usage: dict[str, Usage] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        before, started = self._watched.sample(), time.perf_counter()
        yield
        seconds = time.perf_counter() - started
        self.usage[name] = Usage.between(before, self._watched.sample(), seconds)


class _GcPauses:
    """Total time spent in cyclic garbage collection while installed (gc.callbacks)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.full = 0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.full += info["generation"] == 2

    def __enter__(self) -> _GcPauses:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


@dataclass(frozen=True)
class _Runner:
    schema: strawberry.Schema
    settings: Settings
    tokens: TokenService
    database: Database
    tenant: TenantData
    store: Store

    @property
    def claims(self) -> AccessClaims:
        """A principal as the middleware builds it from a verified token."""
        return AccessClaims(
            user_id=self.tenant.user_ids[0],
            tenant_id=self.tenant.id,
            session_id=UUID(int=0),
            aal=1,
            amr=("pwd",),
            auth_time=0,
            token_id="bench",  # noqa: S106 (a token id, not a secret)
            expires_at=0,
        )


_SCOPE = {"type": "http", "method": "POST", "path": "/graphql", "headers": [], "query_string": b""}


async def _execute(run: _Runner, op: Op, variables: Variables) -> ExecutionResult:
    """What the server's view does per request, minus HTTP and JSON."""
    tenant = run.tenant
    context = Context(
        request=Request(dict(_SCOPE)),
        response=Response(),
        settings=run.settings,
        database=run.database,
        tokens=run.tokens,
        store=run.store,
        principal=Principal.of(run.claims),
        platform=None,
        session=run.database.session(tenant.id, readonly=True),
        authorize=actor_for,
        authorize_platform=platform_actor_for,
    )
    result = await run.schema.execute(op.document, variable_values=variables, context_value=context)
    if result.errors:
        raise RuntimeError(f"{op.name} in-process: {result.errors}")
    return result


async def _in_process(run: _Runner, op: Op, spec: Spec) -> Summary:
    rng = op_rng(spec.seed, op)
    samples: list[float] = []
    warmup, iterations = spec.warmup, spec.iterations
    for i in range(warmup + iterations):
        variables = op.variables(run.tenant, rng, i)
        t0 = time.perf_counter()
        await _execute(run, op, variables)
        if i >= warmup:
            samples.append(time.perf_counter() - t0)
    return Summary.of(samples)


def _unique(ids: Iterable[UUID | None]) -> list[UUID]:
    """First-seen order without duplicates or None: what a DataLoader batch holds."""
    return list(dict.fromkeys(i for i in ids if i is not None))


async def project_page_sql(database: Database, tenant_id: UUID) -> int:
    """The statements the executor runs for the nested page, batched as its loaders batch
    them, through the same functions; no GraphQL. Returns the number of rows read."""
    async with database.transaction(tenant_id, readonly=True) as s:
        page = PageQuery(ordering=ProjectOrderField.CREATED_AT.value, first=20)
        projects = (await fetch_page(s, PROJECTS, page)).get(None, [])[:20]
        await count_rows(s, PROJECTS, ())
        parents = [r.model.id for r in projects]
        task_page = PageQuery(ordering=TaskOrderField.POSITION.value, first=10)
        tasks_by_project = await fetch_page(
            s, TASKS, task_page, partition="project_id", parents=parents
        )
        await count_rows(s, TASKS, (), partition="project_id", parents=parents)
        tasks = [r.model for p in parents for r in tasks_by_project.get(p, [])[:10]]
        # One users loader per operation: authors it already holds cost no statement.
        assignees = _unique(t.assignee_id for t in tasks)
        users = await fetch_by_ids(s, USERS, assignees) if assignees else {}
        comment_page = PageQuery(ordering=OLDEST_FIRST, first=3)
        comments = await fetch_page(
            s, COMMENTS, comment_page, partition="task_id", parents=[t.id for t in tasks]
        )
        shown = [r.model for t in tasks for r in comments.get(t.id, [])[:3]]
        authors = [a for a in _unique(c.author_id for c in shown) if a not in users]
        if authors:
            users |= await fetch_by_ids(s, USERS, authors)
    return len(projects) + len(tasks) + len(shown) + len(users)


async def _sql_only(run: _Runner, spec: Spec) -> Summary:
    samples: list[float] = []
    warmup = spec.warmup
    for i in range(warmup + spec.iterations):
        t0 = time.perf_counter()
        await project_page_sql(run.database, run.tenant.id)
        if i >= warmup:
            samples.append(time.perf_counter() - t0)
    return Summary.of(samples)


async def _same_statements(run: _Runner) -> tuple[int, bool, int, dict[str, Any]]:
    """Run the nested page once each way, recording every statement: are they the same?"""
    database = run.database
    executor: list[str] = []
    database.statement_listeners.append(executor.append)
    try:
        result = await _execute(run, NESTED, None)
    finally:
        database.statement_listeners.remove(executor.append)
    replica: list[str] = []
    database.statement_listeners.append(replica.append)
    try:
        rows = await project_page_sql(database, run.tenant.id)
    finally:
        database.statement_listeners.remove(replica.append)
    return len(replica), sorted(executor) == sorted(replica), rows, {"data": result.data}


async def _measure(spec: Spec) -> Results:
    block = _Blocks(spec.watched)
    settings = spec.settings
    tokens = TokenService.from_settings(KeyRing.from_file(settings.keys_file), settings)
    database = await Database.connect(
        spec.app_url,
        min_size=1,
        max_size=1,
        statement_timeout_ms=settings.limits.statement_timeout_ms,
    )
    try:
        schema = build_schema(settings.limits, introspection=settings.introspection)
        run = _Runner(schema, settings, tokens, database, spec.tenant, Store.from_url(None))
        tracked = len(gc.get_objects())
        in_process: dict[str, Summary] = {}
        nested_gc = _GcPauses()
        for op in OPS.values():
            if op.mutation:
                continue
            with block(f"{op.name} in-process"), _GcPauses() as pauses:
                in_process[op.name] = await _in_process(run, op, spec)
            if op is NESTED:
                nested_gc = pauses
        statements, same, rows, payload = await _same_statements(run)
        with block("nested SQL only"):
            sql_only = await _sql_only(run, spec)
        encode: list[float] = []
        with block("nested JSON encoding"):
            for _ in range(spec.iterations):
                t0 = time.perf_counter()
                json.dumps(payload, separators=(",", ":"))  # what Strawberry's view does
                encode.append(time.perf_counter() - t0)
        # Last: long-lived objects (schema, modules) leave the collector's view for good, as
        # a server could do once after start-up.
        gc.collect()
        gc.freeze()
        with block("nested in-process, gc.freeze()"):
            frozen = await _in_process(run, NESTED, spec)
    finally:
        await database.close()
    return Results(
        in_process=in_process,
        gc_ms_per_op=1000 * nested_gc.seconds / (spec.warmup + spec.iterations),
        gc_full_collections=nested_gc.full,
        frozen=frozen,
        sql_only=sql_only,
        json_encode=Summary.of(encode),
        statements=statements,
        same_statements=same,
        rows=rows,
        blocks=block.usage,
        tracked_objects=tracked,
    )


def run(spec: Spec) -> Results:
    """Entry point in the child process."""
    return asyncio.run(_measure(spec))
