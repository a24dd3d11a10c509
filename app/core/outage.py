"""One log line when a dependency starts failing, and one when it answers again.

During an outage every request fails the same way; a traceback (or even a line) per request
buried the log (10.6 MiB in a 15 s database outage) and said nothing the first line had not.
An `OutageLog` writes the first failure with its reason, counts the rest, and when the
dependency works again writes how long it was out and how many requests failed meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class OutageState:
    """An outage in progress: since when (monotonic seconds) and how many requests failed."""

    since: float
    failures: int


class OutageLog:
    """The outage state of one dependency (`name`, e.g. "database"), logged on `logger`."""

    def __init__(
        self,
        name: str,
        logger: logging.Logger,
        *,
        clock: Callable[[], float] = time.monotonic,
        meanwhile: str = "requests failed meanwhile",
    ) -> None:
        self.name = name
        # What became of the requests that met the outage, for the closing line.
        self.meanwhile = meanwhile
        self._logger = logger
        self._clock = clock
        self._since: float | None = None
        self._failures = 0

    @property
    def current(self) -> OutageState | None:
        """The outage in progress, or None while the dependency works."""
        return None if self._since is None else OutageState(self._since, self._failures)

    def failed(self, reason: str) -> None:
        """A request failed because the dependency did; logs only the first of an outage."""
        self._failures += 1
        if self._since is None:
            self._since = self._clock()
            self._logger.error("%s unavailable: %s", self.name, reason)

    def recovered(self) -> None:
        """The dependency answered; ends the outage in progress (if any) with its summary."""
        if self._since is None:
            return
        duration = self._clock() - self._since
        failures, self._since, self._failures = self._failures, None, 0
        self._logger.warning(
            "%s available again after %.1f s; %d %s",
            self.name,
            duration,
            failures,
            self.meanwhile,
        )
