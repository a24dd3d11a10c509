"""Fixtures of the fault tests: a private PostgreSQL cluster the tests may stop and restart,
and the real server (uvicorn in this event loop, as tests/app_fixtures.py runs it) on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from app.core.db import Database
from app.core.security import TokenService
from app.core.settings import Settings
from tests.app_fixtures import GraphQL, Org, new_org, start_server, stop_server
from tests.pg_cluster import PrivateCluster, private_cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    with private_cluster() as made:
        yield made


@pytest.fixture(scope="module")
async def cluster_db(cluster: PrivateCluster) -> AsyncIterator[Database]:
    assert cluster.urls is not None
    db = await Database.connect(cluster.urls.app, min_size=1, max_size=4, statement_timeout_ms=5000)
    try:
        yield db
    finally:
        await db.close()


@pytest.fixture(scope="module")
def cluster_settings(app_settings: Settings, cluster: PrivateCluster) -> Settings:
    assert cluster.urls is not None
    return app_settings.with_database(cluster.urls.app, cluster.urls.owner)


@pytest.fixture(scope="module")
async def cluster_url(cluster_settings: Settings, cluster_db: Database) -> AsyncIterator[str]:
    server, url = await start_server(cluster_settings, cluster_db)
    try:
        yield url
    finally:
        await stop_server(server)


@pytest.fixture
async def cluster_http(cluster_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=cluster_url, timeout=30) as client:
        yield client


@pytest.fixture
def cluster_gql(cluster_http: httpx.AsyncClient) -> GraphQL:
    return GraphQL(cluster_http)


@pytest.fixture
async def cluster_org(cluster_db: Database, tokens: TokenService) -> Org:
    return await new_org(cluster_db, tokens, members=1)
