"""The tracking consumer records a fetched batch in one transaction (docs/decisions.md,
39), against a real nats-server: in stream order, a later message seeing what the
earlier ones did, a failing one left out and redelivered, a duplicate skipped."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import pytest
from prometheus_client import REGISTRY

from shared.consumer import RetryLater, TrackingConsumer
from shared.events import IntegrationEvent
from shared.store import StoreRunner
from tests.backends import Backend
from tests.helpers import async_wait_for
from tests.integration.test_exactly_once import publish, request
from tests.unit.test_batch_tracking import TallyApplication

pytestmark = pytest.mark.integration


def counting(app: TallyApplication, fail_once: dict[UUID, type[Exception]] | None = None):
    """Counts each event on its case's tally; the events named fail once, after counting."""
    failing = dict(fail_once or {})

    def handle(evt: IntegrationEvent, processing: Any) -> None:
        app.count(evt.case_id, str(evt.event_id), processing)
        error = failing.pop(evt.event_id, None)
        if error is not None:
            raise error("not this time")

    return handle


def consumer_for(
    app: TallyApplication, store: StoreRunner, js: Any, handle: Any
) -> TrackingConsumer:
    return TrackingConsumer(app, store, js, service="tallies", handlers={"RequestReceived": handle})


def gathered() -> float:
    """How many messages the tallies' consumer recorded in runs (its histogram's sum on /metrics)."""
    labels = {"service": "tallies", "what": "consumed messages"}
    return REGISTRY.get_sample_value("khidma_group_commit_size_sum", labels) or 0.0


async def run_until(consumer: TrackingConsumer, condition: Callable[[], bool]) -> None:
    async def met() -> bool:
        return condition()

    task = asyncio.create_task(consumer.run())
    try:
        await async_wait_for(met, timeout=15)
        await async_wait_for(lambda: _settled(consumer), timeout=5, what="every message acked")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def _settled(consumer: TrackingConsumer) -> bool:
    return await consumer.pending() == 0


async def test_two_messages_about_one_case_in_one_batch_are_one_transaction(
    backend: Backend, js: Any
) -> None:
    app, store = backend.open(TallyApplication, "tallies"), StoreRunner()
    case = uuid4()
    first, other, second = request(case), request(), request(case)
    for evt in (first, other, second):
        await publish(js, evt)
    consumer = consumer_for(app, store, js, counting(app))
    before = gathered()
    await run_until(consumer, lambda: consumer.stats.handled == 3)
    assert (app.batches, app.singles) == ([3], 0)
    assert gathered() - before == 3
    assert await store.run(app.seen, case) == [str(first.event_id), str(second.event_id)]
    assert await store.run(app.seen, other.case_id) == [str(other.event_id)]


async def test_a_failing_message_in_the_middle_is_retried_and_the_others_committed(
    backend: Backend, js: Any
) -> None:
    app, store = backend.open(TallyApplication, "tallies"), StoreRunner()
    case = uuid4()
    events = [request(case), request(case), request(), request(case)]
    for evt in events:
        await publish(js, evt)
    fails = {events[1].event_id: RuntimeError, events[2].event_id: RetryLater}
    consumer = consumer_for(app, store, js, counting(app, fails))
    await run_until(consumer, lambda: consumer.stats.handled == 4)
    assert app.batches[0] == 2  # the first and the last, together
    assert consumer.stats.retried == 2 and consumer.stats.dead_letters == 0
    # The failed one's change before it raised never reached the store: counted once.
    seen = [str(e.event_id) for e in (events[0], events[3], events[1])]
    assert await store.run(app.seen, case) == seen
    assert await store.run(app.seen, events[2].case_id) == [str(events[2].event_id)]


async def test_a_duplicate_in_a_batch_is_skipped_and_acknowledged(
    backend: Backend, js: Any
) -> None:
    app, store = backend.open(TallyApplication, "tallies"), StoreRunner()
    case = uuid4()
    earlier = [request(case), request(case)]
    for evt in earlier:
        await publish(js, evt)
    consumer = consumer_for(app, store, js, counting(app))
    await run_until(consumer, lambda: consumer.stats.handled == 2)

    # Everything delivered again (the durable reset), and one new message behind it.
    await js.delete_consumer("KHIDMA", "tallies")
    later = request(case)
    await publish(js, later)
    again = consumer_for(app, store, js, counting(app))
    await run_until(again, lambda: again.stats.handled == 1 and again.stats.duplicates == 2)
    assert app.batches == [2, 1] and app.singles == 0
    seen = [str(e.event_id) for e in (*earlier, later)]
    assert await store.run(app.seen, case) == seen
