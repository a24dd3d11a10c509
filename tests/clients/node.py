"""Running the front-end tools of tests/clients/ (Node.js packages pinned by its
package-lock.json) from tests.

The packages are installed before the tests run (`.ci/run` does `npm ci` here), never by a
test: a missing or outdated node_modules fails in CI with the command that fixes it, and
skips elsewhere, as a missing Chromium does (tests/browser/chromium.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

CLIENTS = Path(__file__).parent
ROOT = CLIENTS.parents[1]
SCHEMA = ROOT / "schema.graphql"
NODE_MODULES = CLIENTS / "node_modules"
INSTALL = "npm ci --no-audit --no-fund --prefix tests/clients"
# A hung tool must not hang the suite; nothing here is close to it on a loaded machine.
TIMEOUT_SECONDS = 300


def _missing() -> str | None:
    """Why the pinned tools cannot run, or None."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node and npm not found: apt-get install -y nodejs npm"
    declared: dict[str, str] = json.loads((CLIENTS / "package.json").read_text())["dependencies"]
    for name, version in declared.items():
        installed = NODE_MODULES / name / "package.json"
        if not installed.exists():
            return f"{name} is not installed in tests/clients: run `{INSTALL}`"
        if json.loads(installed.read_text())["version"] != version:
            return f"tests/clients/node_modules is outdated ({name}): run `{INSTALL}`"
    return None


def require_node_modules() -> None:
    """Fail in CI (where .ci/run installs the tools), skip on a developer's machine."""
    reason = _missing()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def tool(name: str) -> str:
    """The path of an installed package's command (node_modules/.bin)."""
    return str(NODE_MODULES / ".bin" / name)


async def run(*command: str, cwd: Path = CLIENTS, stdin: str = "") -> str:
    """Run a command to completion without blocking the event loop (the live server runs on
    it), and return its standard output; a failure carries everything it printed."""
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin.encode()), TIMEOUT_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    stdout, stderr = out.decode(), err.decode()
    assert process.returncode == 0, f"{' '.join(command)} failed:\n{stdout}\n{stderr}"
    return stdout


async def node_json(script: str, payload: dict[str, Any]) -> Any:
    """Run a script of tests/clients with `payload` as JSON on stdin; its JSON output."""
    return json.loads(await run("node", str(CLIENTS / script), stdin=json.dumps(payload)))
