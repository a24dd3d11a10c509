"""Fixtures of the catalog tests (test_catalog.py, test_distribution.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.conftest import TestDatabase


@pytest.fixture(scope="module")
async def catalog(test_db: TestDatabase) -> AsyncIterator[asyncpg.Connection]:
    """The owner role on the test database: it only reads the catalog."""
    conn = await asyncpg.connect(test_db.urls.owner)
    try:
        yield conn
    finally:
        await conn.close()
