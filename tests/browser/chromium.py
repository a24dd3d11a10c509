"""Headless Chromium for browser tests: Debian's /usr/bin/chromium driven by Playwright.

Playwright's own browser builds are never downloaded (`playwright install` needs hosts we do
not reach); .ci/run installs Debian's chromium package instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")

# Root in CI containers needs --no-sandbox; the rest stops Chromium phoning home, so that any
# request a test sees comes from the page under test.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def require_chromium() -> None:
    """Skip when Chromium is missing on a developer's machine; fail in CI, where it must be."""
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} not found: apt-get install -y chromium"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@contextmanager
def chromium() -> Iterator[Browser]:
    """A fresh headless Chromium, closed on exit. Uses Playwright's sync API: call it from a
    thread with no running asyncio loop (see test_graphiql.py)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS)
        )
        try:
            yield browser
        finally:
            browser.close()
