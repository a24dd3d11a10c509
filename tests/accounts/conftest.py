"""Fixtures of the account tests: a real SMTP server on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller

from tests.accounts.support import Inbox
from tests.app_fixtures import free_port


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    """An aiosmtpd server (in a thread of its own) keeping what it receives; its port."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()
