"""Capturing what the server logs, through the formatter `tenantry serve` uses."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from app.core import logs
from app.core.settings import LogFormat


@dataclass
class Captured:
    """The lines written while capturing, as text and (JSON format) as objects."""

    stream: io.StringIO = field(default_factory=io.StringIO)

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    @property
    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.startswith("{")]

    def events(self, event: str, **matching: Any) -> list[dict[str, Any]]:
        return [
            line
            for line in self.lines
            if line.get("event") == event and all(line.get(k) == v for k, v in matching.items())
        ]


@contextmanager
def capture_logs(
    level: int = logging.INFO, *, logger: str = "", log_format: LogFormat = "json"
) -> Iterator[Captured]:
    """Every line of `logger` (all of them by default) at `level` and above, formatted as
    the server formats them; levels and handlers are restored afterwards."""
    captured = Captured()
    handler = logs.handler(log_format, captured.stream)
    target = logging.getLogger(logger)
    before = target.level
    target.addHandler(handler)
    target.setLevel(level)
    try:
        yield captured
    finally:
        target.removeHandler(handler)
        target.setLevel(before)
