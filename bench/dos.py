"""The worst anonymous request: adversarial documents at every limit, against the real server.

A fixed set of documents, each at one of the request limits (just accepted) or just over it
(refused), is sent without a token, one request at a time, `--repeat` times each after one
warm-up. Every copy is made unique by leading spaces (not a token), so neither the parser's
nor the validator's cache can answer it: each request costs what an attacker's would. Per
document the report gives the answer (HTTP status and `extensions.code`), the client-measured
time (p50, p99, max: the server's time plus one loopback round trip) and the server process's
CPU per request (from /proc, over the whole batch). The same set runs against the bench's
production server and against a development server on the same database (introspection on,
the one place the full introspection is answered).

signIn is measured beside them for reference: it is the most expensive anonymous request by
design (one Argon2id verification, whether or not the account exists), and is bounded by the
sign-in throttles, not by these limits.

Last, in-process: what the static analysis (app/api/limits.py) adds to each request of the
latency benchmark's operations, which are otherwise answered from the validation cache.

`python -m bench.dos [--database-url URL] [--repeat 50]`; also part of `python -m bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx
from graphql import FieldNode, get_introspection_query, get_operation_ast, parse, print_ast

from app.api.limits import DocumentLimits
from app.core.settings import Limits
from app.schema import build_schema

from ._env import Env, add_arguments, environment, extra_server, log
from ._ops import OPS, SIGN_IN
from ._report import Summary, ms, table

REPEAT = 50
LIMITS = Limits()  # the bench servers run with the defaults (but the per-address rate)


@dataclass(frozen=True)
class Doc:
    name: str
    query: str
    variables: dict[str, Any] | None = None


def _chain(n: int, fan_out: int, body: str) -> str:
    parts = [f"fragment F0 on Query {{ {body} }}"]
    for i in range(1, n):
        parts.append(f"fragment F{i} on Query {{ {' '.join([f'...F{i - 1}'] * fan_out)} }}")
    return " ".join(parts)


def _depth(levels: int) -> str:
    inner = "id"
    for level in reversed(range(levels)):
        if level == 0:
            inner = f"projects(first: 1) {{ nodes {{ {inner} }} }}"
        elif level % 2:
            inner = f"tasks(first: 1) {{ nodes {{ {inner} }} }}"
        else:
            inner = f"project {{ {inner} }}"
    return f"{{ {inner} }}"


def _full_introspection_twice() -> str:
    """GraphiQL's selection of `__schema` under two aliases: twice the full schema."""
    parsed = parse(get_introspection_query(descriptions=True))
    operation = get_operation_ast(parsed)
    assert operation is not None
    root = operation.selection_set.selections[0]
    assert isinstance(root, FieldNode)
    assert root.selection_set is not None
    selection = print_ast(root.selection_set)
    fragments = " ".join(print_ast(d) for d in parsed.definitions if d is not operation)
    return f"{{ a: __schema {selection} b: __schema {selection} }} {fragments}"


def documents() -> list[Doc]:
    """Each limit's worst documents an anonymous client can send, fixed (no randomness)."""
    tokens = LIMITS.max_anonymous_tokens
    # Fragments chained one by one, a variable used at the end: graphql-core's variable
    # rules walk the chain per operation; ~8 tokens a fragment.
    chain_length = (tokens - 24) // 8
    many_fragments = f"query($v: Int) {{ ...F{chain_length - 1} }} " + _chain(
        chain_length, 1, "projects(first: $v) { totalCount }"
    )
    nesting = (tokens - 4) // 3
    body_room = LIMITS.max_anonymous_body_bytes - 200
    return [
        Doc("baseline: { __typename }", "{ __typename }"),
        Doc(
            "probe: 25 fragments, each spreading the last twice (2^24 fields)",
            f"{{ ...F24 }} {_chain(25, 2, '__typename')}",
        ),
        Doc(
            "the probe's shape in 20 fragments (2^19 fields)",
            f"{{ ...F19 }} {_chain(20, 2, '__typename')}",
        ),
        Doc(
            "fields at the limit (1000 once expanded)",
            "{ ...F9 ...F8 ...F7 ...F6 ...F5 ...F3 } " + _chain(10, 2, "__typename"),
        ),
        Doc(
            "fields over the limit: 8^6 through 7 fragments",
            f"{{ ...F6 }} {_chain(7, 8, '__typename')}",
        ),
        Doc("depth at the limit (10 object levels)", _depth(LIMITS.max_depth)),
        Doc("depth over the limit (11)", _depth(LIMITS.max_depth + 1)),
        Doc(
            "aliases at the limit (30)",
            "{ "
            + " ".join(f"a{i}: viewer {{ id email }}" for i in range(LIMITS.max_aliases))
            + " }",
        ),
        Doc(
            "cost over the limit: first 100, three deep, from variable defaults",
            "query($f: Int = 100) { projects(first: $f) { nodes { tasks(first: $f) { nodes {"
            " comments(first: $f) { totalCount } } } } } }",
        ),
        Doc("tokens at the limit: a chain of fragments using a variable", many_fragments),
        Doc(
            "tokens at the limit: inline fragments nested",
            "{ " + "... { " * nesting + "__typename" + " }" * nesting + " }",
        ),
        Doc(
            "tokens at the limit: one field repeated (validation budget)",
            "{ " + "viewer { id email } " * ((tokens - 2) // 5) + "}",
        ),
        Doc("tokens over the limit", "{ " + "__typename " * tokens + "}"),
        Doc(
            "body at the limit: one string literal",
            '{ __type(name: "' + "a" * body_room + '") { name } }',
        ),
        Doc("body at the limit: a comment", "{ __typename } #" + "a" * body_room),
        Doc(
            "body at the limit: a list variable to coerce",
            "query($s: [TaskStatus!]) { tasks(filter: {status: $s}) { totalCount } }",
            {"s": ["TODO"] * (body_room // 8)},
        ),
        Doc("full introspection (GraphiQL's query)", get_introspection_query(descriptions=True)),
        Doc("full introspection twice, under aliases", _full_introspection_twice()),
        Doc(
            "introspection cycle: types' fields' types' fields",
            "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }",
        ),
        Doc(
            "introspection: ofType 10 deep",
            '{ __type(name: "Query") { ' + "ofType { " * 10 + "name" + " }" * 10 + " } }",
        ),
    ]


@dataclass(frozen=True)
class Result:
    name: str
    answer: str
    request_bytes: int
    response_bytes: int
    client: Summary
    server_cpu_ms: float | None


@dataclass(frozen=True)
class ServerRun:
    server: str
    results: list[Result]
    sign_in: Result

    def worst(self) -> Result:
        return max(self.results, key=lambda r: r.client.max)

    def worst_p99(self) -> Result:
        return max(self.results, key=lambda r: r.client.p99)

    def worst_cpu(self) -> Result | None:
        measured = [r for r in self.results if r.server_cpu_ms is not None]
        return max(measured, key=lambda r: r.server_cpu_ms or 0.0) if measured else None


@dataclass(frozen=True)
class Overhead:
    """In-process: the static analysis of one request's document, in microseconds."""

    name: str
    fields: int
    median_us: float


@dataclass(frozen=True)
class DosReport:
    repeat: int
    runs: list[ServerRun]
    overhead: list[Overhead]

    def markdown(self) -> str:
        lines = [
            "### The worst anonymous request: adversarial documents at every limit "
            f"({self.repeat} unique copies each, sequential, no token)",
            "",
        ]
        for run in self.runs:
            worst, worst_p99, worst_cpu = run.worst(), run.worst_p99(), run.worst_cpu()
            cpu = (
                ""
                if worst_cpu is None or worst_cpu.server_cpu_ms is None
                else f" The most server CPU per request: {ms(worst_cpu.server_cpu_ms)} ms"
                f" (`{worst_cpu.name}`)."
            )
            lines += [
                f"**{run.server}**: the worst anonymous request took {ms(worst.client.max)} ms"
                f" (`{worst.name}`); the worst p99 was {ms(worst_p99.client.p99)} ms"
                f" (`{worst_p99.name}`).{cpu} For reference, signIn (one Argon2id by design):"
                f" p50 {ms(run.sign_in.client.p50)} ms, max {ms(run.sign_in.client.max)} ms,"
                f" {ms(run.sign_in.server_cpu_ms or 0.0)} ms of server CPU.",
                "",
                table(
                    [
                        "document",
                        "answer",
                        "request B",
                        "response B",
                        "p50 ms",
                        "p99 ms",
                        "max ms",
                        "server CPU ms/req",
                    ],
                    [
                        [
                            r.name,
                            r.answer,
                            f"{r.request_bytes:,}",
                            f"{r.response_bytes:,}",
                            ms(r.client.p50),
                            ms(r.client.p99),
                            ms(r.client.max),
                            "-" if r.server_cpu_ms is None else ms(r.server_cpu_ms),
                        ]
                        for r in [*run.results, run.sign_in]
                    ],
                ),
                "",
            ]
        lines += [
            "Static analysis per request, in-process (the latency benchmark's operations):",
            "",
            table(
                ["operation", "fields", "analysis µs (median)"],
                [[f"`{o.name}`", o.fields, f"{o.median_us:.0f}"] for o in self.overhead],
            ),
        ]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _answer(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code}"
    errors = body.get("errors") or []
    codes = sorted({e.get("extensions", {}).get("code", "?") for e in errors})
    data = body.get("data")
    shown = " ".join(codes) if codes else "data"
    if codes and data:
        shown = "data + " + shown
    return f"{response.status_code} {shown}"


async def _measure(
    client: httpx.AsyncClient, env: Env, doc: Doc, repeat: int, *, pid: int
) -> Result:
    def payload(i: int) -> bytes:
        # Leading spaces: a different text (parse cache) and different locations (validation
        # cache) for every copy, at no token's cost.
        body: dict[str, Any] = {"query": " " * i + doc.query}
        if doc.variables is not None:
            body["variables"] = doc.variables
        return json.dumps(body).encode()

    headers = {"content-type": "application/json"}
    warm = await client.post("/graphql", content=payload(0), headers=headers)
    seconds: list[float] = []
    before = env.watched_pid(pid).sample()
    for i in range(1, repeat + 1):
        content = payload(i)
        started = time.perf_counter()
        response = await client.post("/graphql", content=content, headers=headers)
        seconds.append(time.perf_counter() - started)
    after = env.watched_pid(pid).sample()
    cpu = None
    if before.server is not None and after.server is not None:
        cpu = 1000 * (after.server - before.server) / repeat
    return Result(
        doc.name,
        _answer(warm),
        len(payload(0)),
        len(response.content),
        Summary.of(seconds),
        cpu,
    )


async def _run_server(env: Env, base_url: str, pid: int, server: str, repeat: int) -> ServerRun:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    results: list[Result] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as client:
        for doc in documents():
            log(f"dos ({server}): {doc.name}")
            results.append(await _measure(client, env, doc, repeat, pid=pid))
        tenant = env.measured
        sign_in = Doc(
            "signIn, unknown account (reference)",
            SIGN_IN,
            {"input": {"tenant": tenant.slug, "email": "nobody@example.com", "password": "x"}},
        )
        reference = await _measure(client, env, sign_in, repeat, pid=pid)
    return ServerRun(server, results, reference)


def _overhead() -> list[Overhead]:
    schema = build_schema(LIMITS)._schema
    checker = DocumentLimits.of(LIMITS, schema)
    rows = []
    for op in OPS.values():
        document = parse(op.document)
        operation = get_operation_ast(document)
        samples = []
        for _ in range(2000):
            started = time.perf_counter()
            checker.refusal(checker.analyse(document, operation, None))
            samples.append(time.perf_counter() - started)
        fields = checker.analyse(document, operation, None).fields
        rows.append(Overhead(op.name, fields, 1e6 * statistics.median(samples)))
    return rows


async def measure(env: Env, *, repeat: int = REPEAT) -> DosReport:
    runs = [await _run_server(env, env.base_url, env.server_pid, "production", repeat)]
    with extra_server(env, TENANTRY_ENV="development", TENANTRY_INTROSPECTION="true") as (
        url,
        pid,
    ):
        runs.append(await _run_server(env, url, pid, "development (introspection on)", repeat))
    log("dos: static analysis in-process")
    return DosReport(repeat, runs, _overhead())


def add_dos_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repeat", type=int, default=REPEAT, help="unique copies of each adversarial document"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dos", description=__doc__)
    add_arguments(parser)
    add_dos_arguments(parser)
    args = parser.parse_args()
    with environment(args.database_url, seed=args.seed) as env:
        report = asyncio.run(measure(env, repeat=args.repeat))
        print("\n".join(env.header()))
        print()
        print(report.markdown())
        if args.json:
            args.json.write_text(
                json.dumps({"env": env.describe(), "dos": report.as_dict()}, indent=2)
            )


if __name__ == "__main__":
    main()
