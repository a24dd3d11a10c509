"""`tenantry serve` as an operator runs it: a process of its own, configured only by `env`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.app_fixtures import free_port


@dataclass
class Served:
    base: str
    # What the process has printed so far (all of it once it has stopped).
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "".join(self.lines)


def operator_env(data_dir: Path, env: dict[str, str]) -> dict[str, str]:
    """This process's environment without any Tenantry or database setting, plus `env`."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "MIGRATION_DATABASE_URL", "REDIS_URL", "PGPASSWORD")
        and not k.startswith("TENANTRY_")
    }
    return {**clean, "TENANTRY_DATA_DIR": str(data_dir), **env}


@contextmanager
def serving(data_dir: Path, env: dict[str, str], *args: str) -> Iterator[Served]:
    """`tenantry serve ARGS` until /readyz answers 200; stopped with SIGTERM afterwards."""
    port = free_port()
    served = Served(f"http://127.0.0.1:{port}")
    process = subprocess.Popen(  # noqa: S603 (our own CLI)
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), *args],
        env=operator_env(data_dir, env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    # Read as it comes, so a test can look at what was printed while the server runs.
    reader = threading.Thread(target=served.lines.extend, args=(process.stdout,), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                reader.join(timeout=30)
                pytest.fail(f"not ready:\n{served.output}")
            try:
                if httpx.get(f"{served.base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        reader.join(timeout=30)
        process.stdout.close()
