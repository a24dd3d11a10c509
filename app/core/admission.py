"""Fair admission: how many operations of one tenant run at once in this process.

Rate limits bound a tenant's requests per minute, but a tenant flooding below its plan's rate
can still fill the server: with sixteen of its requests executing, a quiet tenant's request
shares the CPU with sixteen others (measured: 15-37x its latency alone, docs/benchmarks.md).

Each tenant may run `per_tenant` operations at once while it is the only one active, and its
fair share when others are: `per_tenant` divided by the tenants active within the last
`active_seconds` (at least one). Its further requests wait in its own first-in, first-out
queue (at most `queue` of them, at most `wait_seconds` each) and are refused beyond that,
while a tenant under its share is admitted at once. A waiting request costs no CPU, so a
flood is slowed to the pace of its share, and a lone tenant keeps the whole of it. A tenant
counts as active for `active_seconds` after its last request: a quiet tenant sending one
request after another (each a few milliseconds apart) keeps the flood at its share between
them.

Per process: with several server processes a tenant may run its share in each.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Hashable
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
    """Per-tenant lanes of at most their fair share of `per_tenant` running operations."""

    def __init__(
        self,
        *,
        per_tenant: int,
        queue: int,
        wait_seconds: float,
        active_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_tenant = per_tenant
        self.queue = queue
        self.wait_seconds = wait_seconds
        self.active_seconds = active_seconds
        self._clock = clock
        self.stats = AdmissionStats()
        self._lanes: dict[Hashable, _Lane] = {}
        # When each recently active tenant last asked, oldest first.
        self._seen: OrderedDict[Hashable, float] = OrderedDict()

    def running(self, tenant: Hashable) -> int:
        """How many of the tenant's operations hold a slot now."""
        lane = self._lanes.get(tenant)
        return 0 if lane is None else lane.running

    def share(self) -> int:
        """What each tenant may run at once now: `per_tenant` split between the tenants
        active within the last `active_seconds` (at least one)."""
        horizon = self._clock() - self.active_seconds
        while self._seen and next(iter(self._seen.values())) < horizon:
            self._seen.popitem(last=False)
        return max(1, self.per_tenant // max(1, len(self._seen)))

    def _saw(self, tenant: Hashable) -> None:
        self._seen.pop(tenant, None)
        self._seen[tenant] = self._clock()

    @asynccontextmanager
    async def slot(self, tenant: Hashable) -> AsyncIterator[None]:
        """Hold one of the tenant's slots for the block; AdmissionRefused when none comes."""
        await self._acquire(tenant)
        try:
            yield
        finally:
            self._release(tenant)

    async def _acquire(self, tenant: Hashable) -> None:
        self._saw(tenant)
        lane = self._lanes.setdefault(tenant, _Lane())
        if lane.running < self.share() and not lane.waiting:
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
        lane.running -= 1
        # Freed slots go straight to the next waiters, so nobody can overtake the queue; as
        # many as the share allows now (more than one when other tenants have gone quiet).
        share = self.share()
        while lane.waiting and lane.running < share:
            turn = lane.waiting.popleft()
            if not turn.done():
                lane.running += 1
                turn.set_result(None)
        self._forget_if_idle(tenant, lane)

    def _forget_if_idle(self, tenant: Hashable, lane: _Lane) -> None:
        # Lanes exist only while used: memory stays bounded by the tenants active now.
        if lane.running == 0 and not lane.waiting:
            self._lanes.pop(tenant, None)
