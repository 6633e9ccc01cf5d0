"""Group commit: concurrent calls gathered and run as one batch on the store thread.

Callers `await group.run(item)` from the event loop. While a batch is being
recorded the next callers queue; the queue is taken as the next batch (up to
`max_batch` items), after waiting at most `max_wait` seconds for it to fill
when it is short. The batch function gets the items in their order of arrival
and returns one outcome per item, a result or the exception that item's caller
is to see, so each caller gets its own answer and one refusal sinks no other.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from shared.store import StoreRunner

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        store: StoreRunner,
        run_batch: Callable[[list[T]], Sequence[R | Exception]],
        *,
        max_batch: int = 64,
        max_wait: float = 0.002,
        on_batch: Callable[[int], None] = lambda size: None,
    ):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.store = store
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.on_batch = on_batch
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        # Set while the drainer waits for a short batch to fill (bound to no loop before).
        self._filling: asyncio.Future[None] | None = None
        self._drainer: asyncio.Task[None] | None = None

    async def run(self, item: T) -> R:
        """The item's outcome once its batch was recorded (or its exception, raised)."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if len(self._queue) >= self.max_batch and self._filling and not self._filling.done():
            self._filling.set_result(None)
        if self._drainer is None:
            # Only while there is work: no task outlives the last batch. In a context
            # of its own, or its log lines would carry this first caller's ids.
            self._drainer = asyncio.create_task(
                self._drain(), name="group commit", context=contextvars.Context()
            )
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                if len(self._queue) < self.max_batch and self.max_wait > 0:
                    self._filling = asyncio.get_running_loop().create_future()
                    await asyncio.wait([self._filling], timeout=self.max_wait)
                    self._filling = None
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                await self._record(batch)
        finally:
            self._drainer = None

    async def _record(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        self.on_batch(len(batch))
        outcomes: Sequence[R | Exception]
        try:
            outcomes = await self.store.run(self.run_batch, [item for item, _ in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"{len(outcomes)} outcomes for a batch of {len(batch)}")
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as error:  # each caller is told; none waits forever
            log.exception("a batch of %d could not be run", len(batch))
            outcomes = [error] * len(batch)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():  # the caller went away (its request was cancelled)
                continue
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
