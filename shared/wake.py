"""Waiting for a tailer's wake-up call, or for its poll interval to pass."""

from __future__ import annotations

import asyncio


async def woken_or_timed_out(wake: asyncio.Event, seconds: float) -> None:
    """Returns when `wake` is set or `seconds` have passed.

    `asyncio.timeout`, not `asyncio.wait_for`: in Python 3.11, a cancellation that
    arrives as wait_for's time runs out can be taken for the timeout and lost, and
    the loop it should stop (a relay, a projection) then runs on while the service's
    shutdown waits for it for ever (seen in the tests' teardown).
    """
    try:
        async with asyncio.timeout(seconds):
            await wake.wait()
    except TimeoutError:
        pass
