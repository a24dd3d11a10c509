"""Fair admission: a tenant runs at most its share of operations at once (all of them alone,
a part when others are active); its others wait their turn in order, or are refused when its
queue is full or they waited their longest; a tenant under its share is admitted at once.
Driven by events and a fake clock, never by time (except the one wait that must end)."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest

from app.core.admission import AdmissionRefused, FairAdmission


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_lone_tenant_gets_the_whole_share_and_halves_it_when_another_comes() -> None:
    clock = Clock()
    admission = FairAdmission(
        per_tenant=2, queue=10, wait_seconds=60, active_seconds=1.0, clock=clock
    )
    order: list[str] = []

    async def run(name: str, tenant: str) -> None:
        async with admission.slot(tenant):
            order.append(name)

    # given tenant A alone, running two operations (its whole share)
    first, second = AsyncExitStack(), AsyncExitStack()
    await first.enter_async_context(admission.slot("A"))
    await second.enter_async_context(admission.slot("A"))
    assert admission.share() == 2

    # when B comes, then A sends one more
    await run("B1", "B")
    waiting = asyncio.create_task(run("A3", "A"))
    await asyncio.sleep(0)

    # then B ran at once and A's third waits: with B active, A's share is one
    assert order == ["B1"]
    assert admission.share() == 1
    await first.aclose()
    await asyncio.sleep(0)
    assert order == ["B1"]
    await second.aclose()
    await waiting
    assert order == ["B1", "A3"]

    # and once B has been quiet for a second, A has both slots again
    clock.now = 2.0
    assert admission.share() == 2
    async with admission.slot("A"), admission.slot("A"):
        assert admission.running("A") == 2
    assert admission.stats.queued.value == 1
    # idle tenants leave nothing behind
    assert admission._lanes == {}


async def test_waiters_run_in_the_order_they_came() -> None:
    admission = FairAdmission(per_tenant=1, queue=10, wait_seconds=60)
    order: list[str] = []

    async def run(name: str) -> None:
        async with admission.slot("A"):
            order.append(name)

    held = AsyncExitStack()
    await held.enter_async_context(admission.slot("A"))
    waiting = []
    for n in range(5):
        waiting.append(asyncio.create_task(run(f"A{n}")))
        await asyncio.sleep(0)
    await held.aclose()
    await asyncio.gather(*waiting)

    assert order == [f"A{n}" for n in range(5)]


async def test_a_full_queue_is_refused_at_once() -> None:
    admission = FairAdmission(per_tenant=1, queue=1, wait_seconds=60)
    async with admission.slot("A"):
        queued = asyncio.create_task(admission.slot("A").__aenter__())
        await asyncio.sleep(0)

        with pytest.raises(AdmissionRefused) as refused:
            async with admission.slot("A"):
                pass

        assert not refused.value.waited
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
    assert admission.stats.refused.value == 1
    assert admission._lanes == {}


async def test_a_request_that_waited_its_longest_is_refused_and_leaves_the_queue() -> None:
    admission = FairAdmission(per_tenant=1, queue=5, wait_seconds=0.01)
    async with admission.slot("A"):
        with pytest.raises(AdmissionRefused) as refused:
            async with admission.slot("A"):
                pass
        assert refused.value.waited
    assert admission._lanes == {}
    # the slot is free again
    async with admission.slot("A"):
        assert admission.running("A") == 1
