"""Deployment tests share one private, password-authenticated PostgreSQL cluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.deploy.private_postgres import PrivateCluster, private_cluster


@pytest.fixture(scope="package")
def cluster() -> Iterator[PrivateCluster]:
    """Started once for tests/deploy/; every test bootstraps a database of its own in it."""
    with private_cluster("admin-secret") as running:
        yield running
