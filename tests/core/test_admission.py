"""Fair admission: at most N operations of a tenant run at once; its others wait their turn
in order, or are refused when its queue is full or they waited their longest; other tenants
are admitted at once. Driven by events, never by time (except the one wait that must end)."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest

from app.core.admission import AdmissionRefused, FairAdmission


async def test_a_tenant_over_its_share_waits_while_others_are_admitted() -> None:
    admission = FairAdmission(per_tenant=2, queue=10, wait_seconds=60)
    order: list[str] = []
    async with AsyncExitStack() as held:
        # given tenant A holding both its slots
        await held.enter_async_context(admission.slot("A"))
        first = AsyncExitStack()
        await first.enter_async_context(admission.slot("A"))

        async def run(name: str, tenant: str) -> None:
            async with admission.slot(tenant):
                order.append(name)

        # when A sends two more and B one
        waiting = [asyncio.create_task(run(f"A{n}", "A")) for n in (3, 4)]
        await asyncio.sleep(0)
        await run("B1", "B")

        # then B ran at once, A's wait
        assert order == ["B1"]
        assert admission.running("A") == 2
        # and when one of A's finishes, its waiters run in the order they came
        await first.aclose()
        await asyncio.gather(*waiting)
        assert order == ["B1", "A3", "A4"]
    assert admission.stats.queued.value == 2
    assert admission.running("A") == 0
    # idle tenants leave nothing behind
    assert admission._lanes == {}


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
