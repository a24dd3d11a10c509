"""The benchmark environment: a throwaway database, the seeded dataset, the real server.

`environment()` bootstraps `tenantry_bench_<hex>` with an ADMIN URL (`--database-url`, else
env DATABASE_URL, else an embedded PostgreSQL in a temp dir), migrates it, seeds it, and
starts `tenantry serve` as a separate process on 127.0.0.1 with default settings
(production mode, pool 1-10). The load generator is this process; the server is another,
so neither one's GIL slows the other. Everything is stopped and dropped on exit, Ctrl-C
included.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg

from app.core import dbadmin, migrate
from app.core.keys import KeyRing
from app.core.security import TokenService
from app.core.settings import Settings
from app.mfa.crypto import load_or_create_mfa_keys

from . import _dataset
from ._cpu import Watched, background_busy
from ._dataset import TenantData

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"  # the only address the benchmarks ever send requests to
_SERVER_START_SECONDS = 60


def log(message: str) -> None:
    """Progress goes to stderr; stdout carries only the report."""
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Machine:
    cores: int
    cpu: str
    python: str
    postgres: str
    database: str
    platform: str
    packages: dict[str, str]

    def lines(self) -> list[str]:
        versions = ", ".join(f"{k} {v}" for k, v in self.packages.items())
        return [
            f"- Machine: {self.cores} cores (`nproc`), {self.cpu}; {self.platform}",
            f"- Python {self.python}; {versions}",
            f"- PostgreSQL {self.postgres} ({self.database})",
        ]


@dataclass(frozen=True)
class Env:
    """A running, seeded server and what the benchmarks need to talk to it."""

    base_url: str
    seed: int
    tenants: tuple[TenantData, ...]
    # The server's role on the bench database: for the in-process and SQL-only comparisons.
    app_url: str
    settings: Settings
    tokens: TokenService
    machine: Machine
    access_tokens: dict[str, str] = field(default_factory=dict)

    server_pid: int = 0
    database: str = ""
    # % of all cores other processes used just before the run (the server idle, bench asleep).
    background_cpu: float | None = None

    @property
    def watched(self) -> Watched:
        return Watched(self.server_pid, self.database)

    def watched_pid(self, pid: int) -> Watched:
        """Another server process on the bench database (`extra_server`)."""
        return Watched(pid, self.database)

    @property
    def measured(self) -> TenantData:
        return self.tenants[0]

    @property
    def neighbour(self) -> TenantData:
        return self.tenants[1]

    def header(self) -> list[str]:
        """The setup, as markdown bullet points."""
        return [
            f"- Seed: {self.seed} (dataset and every operation sequence)",
            f"- Dataset: {_dataset.describe()}",
            *self.machine.lines(),
            f"- Server: `tenantry serve` in its own process: one uvicorn worker ({_loop()}), "
            "TENANTRY_ENV=production, sign-in throttling per IP and tenant and the per-address "
            "limit of requests without a token off, every other setting at its default "
            "(pool 1-10)",
            "- Client: httpx in the bench process (another process), 127.0.0.1, keep-alive",
            f"- Background CPU just before the run: {_busy(self.background_cpu)}"
            + (f" {_BUSY_WARNING}" if _too_busy(self.background_cpu) else ""),
        ]

    def describe(self) -> dict[str, object]:
        return {
            "seed": self.seed,
            "dataset": _dataset.describe(),
            "machine": asdict(self.machine),
            "server": _loop(),
            "background_cpu": self.background_cpu,
        }

    def token(self, tenant: TenantData) -> str:
        """An access token of the tenant's first user, minted with the server's own keys."""
        if tenant.slug not in self.access_tokens:
            issued = self.tokens.issue_access_token(
                user_id=tenant.user_ids[0],
                tenant_id=tenant.id,
                session_id=tenant.session_id,  # seeded open: no sign-in
                aal=1,
                amr=("pwd",),
                auth_time=int(time.time()),
            )
            self.access_tokens[tenant.slug] = issued.token
        return self.access_tokens[tenant.slug]


_BUSY_LIMIT = 10.0
_BUSY_WARNING = "**(not idle: other processes competed for the CPUs; numbers are pessimistic)**"


def _busy(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.0f}% of all cores"


def _too_busy(value: float | None) -> bool:
    return value is not None and value > _BUSY_LIMIT


def _loop() -> str:
    """What uvicorn's "auto" picks in this environment (the server shares our venv)."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio loop"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"{loop}, {http}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL") or None,
        help="ADMIN URL of a PostgreSQL server on which a throwaway database is created "
        "(default: env DATABASE_URL, else an embedded PostgreSQL in a temp dir)",
    )
    parser.add_argument("--seed", type=int, default=_dataset.SEED, help="dataset and op seed")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(parts.password, "***", 1)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _server_env(urls: dbadmin.DatabaseUrls, keys_file: Path, data_dir: Path) -> dict[str, str]:
    """The caller's environment minus every Tenantry setting: the server runs with defaults."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TENANTRY_")
        and k not in ("DATABASE_URL", "MIGRATION_DATABASE_URL", "REDIS_URL")
    }
    env |= {
        "DATABASE_URL": urls.app,
        "MIGRATION_DATABASE_URL": urls.owner,
        "TENANTRY_ENV": "production",
        "TENANTRY_SIGNING_KEYS_FILE": str(keys_file),
        # Production refuses to start on generated keys: the file `seeded()` created.
        "TENANTRY_MFA_KEYS_FILE": str(data_dir / "keys" / "mfa-keys.json"),
        "TENANTRY_DATA_DIR": str(data_dir),
        # Every bench request comes from 127.0.0.1, and the unknown-account sign-ins are
        # failures by design: without this the throttle would measure itself.
        "TENANTRY_THROTTLE_PER_IP": "1000000000",
        "TENANTRY_THROTTLE_PER_TENANT": "1000000000",
        # Likewise the per-address limit of requests without a token (sign-ins, the
        # anonymous documents of bench/dos.py).
        "TENANTRY_ANONYMOUS_BURST": "1000000000",
        "TENANTRY_ANONYMOUS_PER_MINUTE": "1000000000",
    }
    return env


def _spawn_server(env: dict[str, str], log_file: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    with log_file.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 (our own interpreter, fixed arguments)
            [sys.executable, "-m", "app.cli", "serve", "--host", HOST, "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            # Its own session: Ctrl-C reaches only the bench, which then stops the server.
            start_new_session=True,
        )
    return process, f"http://{HOST}:{port}"


def _wait_ready(process: subprocess.Popen[bytes], base_url: str, log_file: Path) -> None:
    deadline = time.monotonic() + _SERVER_START_SECONDS
    while True:
        if process.poll() is not None:
            tail = log_file.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the server exited with {process.returncode}:\n{tail}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not become ready in {_SERVER_START_SECONDS}s")
        time.sleep(0.1)


def _stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def extra_server(env: Env, **overrides: str) -> Iterator[tuple[str, int]]:
    """Another server process on the bench database, its settings changed by `overrides`
    (environment variables): its URL and pid, until the block exits."""
    assert env.settings.database_url is not None
    assert env.settings.migration_database_url is not None
    urls = dbadmin.DatabaseUrls(env.settings.database_url, env.settings.migration_database_url)
    server_env = _server_env(urls, env.settings.keys_file, env.settings.data_dir) | overrides
    log_file = env.settings.data_dir.parent / f"server-{secrets.token_hex(3)}.log"
    process, base_url = _spawn_server(server_env, log_file)
    try:
        _wait_ready(process, base_url, log_file)
        yield base_url, process.pid
    finally:
        _stop_server(process)


def _vacuum_analyze(owner_url: str) -> None:
    """Fresh statistics and visibility maps, so plans are the steady-state ones."""
    with psycopg.connect(owner_url, autocommit=True) as conn:
        for table in ("tenants", "users", "projects", "tasks", "comments"):
            conn.execute(f"VACUUM (ANALYZE) {table}".encode())


def _machine(admin_url: str, database: str) -> Machine:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    packages = {}
    for name in ("strawberry-graphql", "starlette", "uvicorn", "asyncpg", "httpx"):
        packages[name] = metadata.version(name)
    return Machine(
        cores=os.cpu_count() or 0,
        cpu=cpu,
        python=platform.python_version(),
        postgres=str(row[0]) if row else "?",
        database=database,
        platform=platform.platform(terse=True),
        packages=packages,
    )


@contextmanager
def environment(database_url: str | None, *, seed: int) -> Iterator[Env]:
    """A seeded database and a running server, both gone when the block exits."""
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tenantry-bench-")))
        if database_url:
            admin_url = database_url
            where = f"throwaway database on {_redacted(admin_url)}"
        else:
            from app.core import embedded

            log("starting an embedded PostgreSQL in a temp dir …")
            server = embedded.start(tmp / "embedded", temporary=True)
            stack.callback(server.stop)
            admin_url = server.admin_url
            where = "embedded PostgreSQL, temp dir"
        name = f"tenantry_bench_{secrets.token_hex(4)}"
        log(f"database {name} ({where})")
        # Registered first: a half-finished bootstrap is dropped too (DROP … IF EXISTS).
        stack.callback(dbadmin.drop_database, admin_url, name)
        urls = dbadmin.bootstrap(admin_url, name)
        migrate.migrate(urls.owner)

        started = time.perf_counter()
        tenants = asyncio.run(_dataset.insert(urls.app, _dataset.generate(seed)))
        _vacuum_analyze(urls.owner)
        log(f"seeded with seed {seed} in {time.perf_counter() - started:.1f}s")

        keys_file = tmp / "signing-keys.json"
        settings = Settings(
            environment="production",
            database_url=urls.app,
            migration_database_url=urls.owner,
            data_dir=tmp / "data",
            signing_keys_file=keys_file,
            graphiql=False,
            introspection=False,
        )
        tokens = TokenService(
            KeyRing.from_file(keys_file, create=True),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl_seconds=3600,
        )
        # Production refuses to start without its MFA key file: provide one, as an operator would.
        load_or_create_mfa_keys(settings.mfa_keys_path, create=True)
        server_log = tmp / "server.log"
        process, base_url = _spawn_server(
            _server_env(urls, keys_file, settings.data_dir), server_log
        )
        stack.callback(_stop_server, process)
        _wait_ready(process, base_url, server_log)
        log(f"server pid {process.pid} on {base_url}")
        background = background_busy()
        log(f"background CPU: {_busy(background)}")
        if _too_busy(background):
            log(f"WARNING: the machine is busy {_BUSY_WARNING}")
        yield Env(
            base_url=base_url,
            seed=seed,
            tenants=tuple(tenants),
            app_url=urls.app,
            settings=settings,
            tokens=tokens,
            machine=_machine(admin_url, where),
            server_pid=process.pid,
            database=name,
            background_cpu=background,
        )
