"""A tailer's wait: woken, timed out, or cancelled, and never stuck."""

from __future__ import annotations

import asyncio

import pytest

from shared.wake import woken_or_timed_out

pytestmark = pytest.mark.unit


async def test_it_returns_when_woken_well_before_the_interval() -> None:
    wake = asyncio.Event()
    asyncio.get_running_loop().call_later(0.01, wake.set)
    await asyncio.wait_for(woken_or_timed_out(wake, 60), timeout=5)
    assert wake.is_set()


async def test_it_returns_when_the_interval_passes_unwoken() -> None:
    wake = asyncio.Event()
    await asyncio.wait_for(woken_or_timed_out(wake, 0.01), timeout=5)
    assert not wake.is_set()


async def test_a_loop_of_waits_stops_when_cancelled_whenever_the_cancellation_comes() -> None:
    wake = asyncio.Event()

    async def tailer() -> None:
        while True:
            await woken_or_timed_out(wake, 0.001)

    for delay in (0, 0.0005, 0.001, 0.0015, 0.002, 0.005):
        task = asyncio.create_task(tailer())
        await asyncio.sleep(delay)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=2)
