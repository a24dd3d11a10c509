"""A circuit breaker: stop calling a dependency that is down or slow, and notice when it is back.

Closed, every call goes to the dependency; `failures_to_open` failures in a row open it (a
failed write opens it at once: see `Store`). Open, no call goes to the dependency, so no
request waits for it: callers serve from their fallback. Every `retry_seconds` one background
probe tries the dependency; when it answers, `on_recovery` runs (the store replays what it
wrote to its fallback) and only then does the breaker close, so nothing reads the dependency
before it has caught up.

One log line when it opens and one when it closes, with counts, never one per call.

Why not a library: purgatory's half-open state lets every concurrent caller through to the
dependency (a frozen Redis would stall each of them for the timeout), and it has no hook that
runs before the breaker closes; pybreaker's asyncio support goes through Tornado. What is
needed here is a counter, a clock and one task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

logger = logging.getLogger("tenantry.breaker")


@dataclass
class BreakerStats:
    """What the breaker did since the process started (for metrics and tests)."""

    # Times it opened, and closed again.
    opened: int = 0
    closed: int = 0
    # Calls that failed (timeouts included), and calls served by the fallback while open.
    failures: int = 0
    bypassed: int = 0
    # Probes while open that found the dependency still down.
    failed_probes: int = 0


class CircuitBreaker:
    """Whether to call the dependency now (`allows`), told how each call went."""

    def __init__(
        self,
        name: str,
        *,
        failures_to_open: int,
        retry_seconds: float,
        probe: Callable[[], Awaitable[object]],
        on_recovery: Callable[[], Awaitable[object]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.failures_to_open = failures_to_open
        self.retry_seconds = retry_seconds
        self._probe = probe
        self._on_recovery = on_recovery
        self._clock = clock
        self.stats = BreakerStats()
        self._failures_in_a_row = 0
        self._opened_at: float | None = None
        self._next_probe = 0.0
        self._bypassed_since_open = 0
        self._probing: asyncio.Task[None] | None = None

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    @property
    def probing(self) -> asyncio.Task[None] | None:
        """The probe in flight, if any (tests await it instead of waiting for time)."""
        return self._probing

    def allows(self) -> bool:
        """True: call the dependency. False: it is open; serve from the fallback (a probe
        starts in the background when one is due)."""
        if self._opened_at is None:
            return True
        self.stats.bypassed += 1
        self._bypassed_since_open += 1
        if self._probing is None and self._clock() >= self._next_probe:
            self._probing = asyncio.get_running_loop().create_task(self._try_recovery())
        return False

    def succeeded(self) -> None:
        self._failures_in_a_row = 0

    def failed(self, error: BaseException, *, open_now: bool = False) -> None:
        """A call failed; opens the breaker after `failures_to_open` in a row, or now."""
        self.stats.failures += 1
        self._failures_in_a_row += 1
        if self._opened_at is None and (
            open_now or self._failures_in_a_row >= self.failures_to_open
        ):
            self._open(error)

    def _open(self, error: BaseException) -> None:
        self._opened_at = self._clock()
        self._next_probe = self._opened_at + self.retry_seconds
        self._bypassed_since_open = 0
        self.stats.opened += 1
        logger.warning(
            "%s unavailable (%s after %d failed calls in a row): serving from process memory,"
            " retrying every %.1f s",
            self.name,
            type(error).__name__,
            self._failures_in_a_row,
            self.retry_seconds,
        )

    async def _try_recovery(self) -> None:
        try:
            await self._probe()
            await self._on_recovery()
        except Exception:  # the dependency is still down: try again later
            self.stats.failed_probes += 1
            self._next_probe = self._clock() + self.retry_seconds
        else:
            self._close()
        finally:
            self._probing = None

    def _close(self) -> None:
        assert self._opened_at is not None
        down_for = self._clock() - self._opened_at
        self.stats.closed += 1
        logger.warning(
            "%s available again after %.1f s: %d calls were served from process memory",
            self.name,
            down_for,
            self._bypassed_since_open,
        )
        self._opened_at = None
        self._failures_in_a_row = 0

    async def close(self) -> None:
        """Stop a probe in flight (at shutdown)."""
        task = self._probing
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
