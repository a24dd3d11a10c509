"""The per-request session check, side by side in one run: what every signed-in request pays
before anything runs (app/auth/revocation.py `request_access`).

- `store only`: one MGET of the two keys the check reads, nothing else. This is all the check
  cost when the store was the only record of revocations (forgotten on a restart).
- `Redis, cached`: the check with Redis, the session cached as live: the same one MGET.
- `Redis, miss`: the cached state deleted before each call (the first request of a session,
  or one per `LIVE_SECONDS`): the MGET, one read-only transaction reading the session's row,
  and the store write.
- `memory`: the check without Redis: a live session is never cached (another process may
  have revoked it), so every request reads its row.

No randomness: one tenant, one user, one session, `--iterations` calls of each after a
warm-up, interleaved round by round so drift hits every variant alike.

`python -m bench.revocation [--database-url ADMIN_URL] [--redis-url URL]`; without a
database URL an embedded PostgreSQL runs in a temp dir; without Redis (`--redis-url` or
REDIS_URL) the two Redis rows are skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

from app.auth import queries as auth_queries
from app.auth.revocation import request_access
from app.core import dbadmin, migrate
from app.core.db import Database
from app.core.store import Store, tenant_key
from app.tenants.service import access_key, create_tenant
from app.users.service import create_user

from ._report import Summary, ms, table

ITERATIONS = 2000
WARMUP = 200

Call = Callable[[], Awaitable[object]]


async def _seed(database: Database) -> tuple[UUID, UUID]:
    tenant = await create_tenant(
        database, slug=f"bench-{secrets.token_hex(4)}", name="Bench", plan="enterprise"
    )
    async with database.transaction(tenant.id) as session:
        user = await create_user(
            session, email="bench@bench.example", display_name="Bench", password=None
        )
        opened = await auth_queries.insert_session(
            session,
            user_id=user.id,
            aal=1,
            amr=("pwd",),
            user_agent="bench",
            ip=None,
            expires_at=datetime.now(UTC) + timedelta(days=1),
        )
    return tenant.id, opened.id


async def measure(app_url: str, redis_url: str | None, iterations: int) -> str:
    database = await Database.connect(app_url, min_size=1, max_size=2, statement_timeout_ms=5000)
    memory = Store.from_url(None)
    redis = Store.from_url(redis_url) if redis_url else None
    try:
        tenant_id, session_id = await _seed(database)
        keys = [access_key(tenant_id), tenant_key(tenant_id, "session", str(session_id))]

        async def redis_miss() -> object:
            assert redis is not None
            await redis.delete(keys[1])
            return await request_access(database, redis, tenant_id, session_id)

        variants: dict[str, Call] = {
            "store only (memory MGET)": lambda: memory.get_many(keys),
            "memory: the check without Redis": lambda: request_access(
                database, memory, tenant_id, session_id
            ),
        }
        if redis is not None:
            variants |= {
                "store only (Redis MGET)": lambda: redis.get_many(keys),
                "Redis, cached": lambda: request_access(database, redis, tenant_id, session_id),
                "Redis, miss": redis_miss,
            }
        for call in variants.values():
            for _ in range(WARMUP):
                await call()
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(iterations):
            for name, call in variants.items():
                started = time.perf_counter()
                await call()
                samples[name].append(time.perf_counter() - started)
    finally:
        await memory.close()
        if redis is not None:
            await redis.close()
        await database.close()
    summaries = {name: Summary.of(s) for name, s in samples.items()}
    base = summaries["store only (memory MGET)"].p50
    rows = [
        [name, s.n, ms(s.p50), ms(s.p95), ms(s.p99), f"{s.p50 / base:.1f}x"]
        for name, s in summaries.items()
    ]
    return "\n".join(
        [
            "### The per-request session check (`python -m bench.revocation`)",
            "",
            table(["variant", "calls", "p50 ms", "p95 ms", "p99 ms", "p50 vs memory MGET"], rows),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.revocation", description=__doc__)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--iterations", type=int, default=ITERATIONS)
    args = parser.parse_args()
    with ExitStack() as stack:
        if args.database_url:
            admin_url = args.database_url
        else:
            from app.core import embedded

            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tenantry-bench-")))
            server = embedded.start(tmp / "embedded", temporary=True)
            stack.callback(server.stop)
            admin_url = server.admin_url
        name = f"tenantry_bench_{secrets.token_hex(4)}"
        stack.callback(dbadmin.drop_database, admin_url, name)
        urls = dbadmin.bootstrap(admin_url, name)
        migrate.migrate(urls.owner)
        print(asyncio.run(measure(urls.app, args.redis_url, args.iterations)))


if __name__ == "__main__":
    main()
