"""Deployment tests share one private, password-authenticated PostgreSQL cluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pg_cluster import PrivateCluster, private_cluster


@pytest.fixture(scope="package")
def cluster() -> Iterator[PrivateCluster]:
    """Started once for tests/deploy/; every test bootstraps a database of its own in it."""
    with private_cluster(password="admin-secret", bootstrap=False) as running:
        yield running
