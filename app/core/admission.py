"""Fair admission: how many operations of one tenant run at once in this process.

Rate limits bound a tenant's requests per minute, but a tenant flooding below its plan's rate
can still fill the server: with sixteen of its requests executing, a quiet tenant's request
shares the CPU with sixteen others (measured: 37x its latency alone, docs/benchmarks.md).
Here each tenant may run `per_tenant` operations at once; its further requests wait in its
own first-in, first-out queue (at most `queue` of them, at most `wait_seconds` each) and are
refused beyond that, while every other tenant's requests are admitted at once. A waiting
request costs no CPU, so a flood is slowed to the pace of its own share.

Per process: with several server processes a tenant may run `per_tenant` in each.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from app.core.counters import WorkCounter


class AdmissionRefused(Exception):
    """The tenant has `per_tenant` operations running and its queue is full, or this request
    waited its longest."""

    def __init__(self, *, waited: bool) -> None:
        super().__init__("waited too long" if waited else "queue full")
        self.waited = waited


@dataclass
class _Lane:
    running: int = 0
    waiting: deque[asyncio.Future[None]] = field(default_factory=deque)


@dataclass
class AdmissionStats:
    """Plain counters for metrics and tests."""

    admitted: WorkCounter = field(default_factory=WorkCounter)
    # Admitted after waiting in the tenant's queue.
    queued: WorkCounter = field(default_factory=WorkCounter)
    refused: WorkCounter = field(default_factory=WorkCounter)


class FairAdmission:
    """Per-tenant lanes of at most `per_tenant` running operations each."""

    def __init__(self, *, per_tenant: int, queue: int, wait_seconds: float) -> None:
        self.per_tenant = per_tenant
        self.queue = queue
        self.wait_seconds = wait_seconds
        self.stats = AdmissionStats()
        self._lanes: dict[Hashable, _Lane] = {}

    def running(self, tenant: Hashable) -> int:
        """How many of the tenant's operations hold a slot now."""
        lane = self._lanes.get(tenant)
        return 0 if lane is None else lane.running

    @asynccontextmanager
    async def slot(self, tenant: Hashable) -> AsyncIterator[None]:
        """Hold one of the tenant's slots for the block; AdmissionRefused when none comes."""
        await self._acquire(tenant)
        try:
            yield
        finally:
            self._release(tenant)

    async def _acquire(self, tenant: Hashable) -> None:
        lane = self._lanes.setdefault(tenant, _Lane())
        if lane.running < self.per_tenant and not lane.waiting:
            lane.running += 1
            self.stats.admitted.add()
            return
        if len(lane.waiting) >= self.queue:
            self._forget_if_idle(tenant, lane)
            self.stats.refused.add()
            raise AdmissionRefused(waited=False)
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        lane.waiting.append(turn)
        try:
            async with asyncio.timeout(self.wait_seconds):
                await turn
        except (TimeoutError, asyncio.CancelledError) as stopped:
            if turn.done() and not turn.cancelled():
                # The slot was handed over just as the wait ended: give it back.
                self._release(tenant)
            else:
                turn.cancel()
                lane.waiting.remove(turn)
                self._forget_if_idle(tenant, lane)
            if isinstance(stopped, TimeoutError):
                self.stats.refused.add()
                raise AdmissionRefused(waited=True) from None
            raise
        self.stats.admitted.add()
        self.stats.queued.add()

    def _release(self, tenant: Hashable) -> None:
        lane = self._lanes[tenant]
        # The slot goes straight to the next waiter, so nobody can overtake the queue.
        while lane.waiting:
            turn = lane.waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        lane.running -= 1
        self._forget_if_idle(tenant, lane)

    def _forget_if_idle(self, tenant: Hashable, lane: _Lane) -> None:
        # Lanes exist only while used: memory stays bounded by the tenants active now.
        if lane.running == 0 and not lane.waiting:
            self._lanes.pop(tenant, None)
