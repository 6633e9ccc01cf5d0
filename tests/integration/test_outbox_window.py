"""The outbox relay's window: many publishes in flight, the store's order kept,
and only what the server acknowledged recorded (docs/decisions.md, 35)."""

from __future__ import annotations

import asyncio
from typing import Any

import nats
import pytest

from services.intake.application import IntakeApplication
from services.intake.integration import TRANSLATORS
from shared.outbox import OutboxRelay
from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs
from shared.store import OUTBOX_TRACKING, StoreRunner
from shared.stream import ensure_stream
from tests.backends import backend  # noqa: F401  (the fixture: SQLite and PostgreSQL)
from tests.helpers import async_wait_for, stream_messages
from tests.integration.test_outbox_relay import channel_refs, submission

pytestmark = pytest.mark.integration

PACKS = load_packs(DEFAULT_POLICIES_DIR)


async def _value(value: Any) -> Any:
    return value


class WatchedJetStream:
    """A JetStream context that counts the publishes in flight, and can break one.

    `broken(n, data)` says whether the n-th publish (from 0) is refused by "the
    server": its ack fails a moment later, while the ones behind it go through.
    `before_publish(n)` runs before the n-th publish is sent.
    """

    def __init__(self, js: Any):
        self._js = js
        self.sent = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.cases_in_flight: list[str] = []
        self.one_case_twice_in_flight = False
        self.broken = lambda n, data: False
        self.before_publish: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._js, name)

    async def publish_async(self, subject: str, payload: bytes = b"", **options: Any) -> Any:
        n, self.sent = self.sent, self.sent + 1
        if self.before_publish:
            await self.before_publish(n)
        if self.broken(n, payload):
            ack: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            refused = nats.js.errors.APIError(description="refused by the test")
            asyncio.get_running_loop().call_later(
                0.2, lambda: ack.done() or ack.set_exception(refused)
            )
        else:
            ack = await self._js.publish_async(subject, payload, **options)
        case = subject.split(".")[2]
        self.one_case_twice_in_flight |= case in self.cases_in_flight
        self.cases_in_flight.append(case)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        ack.add_done_callback(lambda _: self._settled(case))
        return ack

    def _settled(self, case: str) -> None:
        self.in_flight -= 1
        self.cases_in_flight.remove(case)


def submit(app: IntakeApplication, count: int) -> None:
    for n in range(count):
        app.submit(submission(n), {"kind": "adapter", "id": "test"})


def submit_and_refer(app: IntakeApplication, count: int) -> None:
    """Each case's RequestReceived, then its ReferredToResearcher, case after case."""
    for n in range(count):
        result = app.submit(submission(n), {"kind": "adapter", "id": "test"})
        app.refer_to_researcher(
            result.case_id,
            reason="unclear",
            questions=[],
            referred_by="o1",
            actor={"kind": "officer", "id": "o1", "role": "front_desk"},
        )


def position(app: IntakeApplication) -> int | None:
    return app.process_recorder.max_tracking_id(OUTBOX_TRACKING)


def public_ids(app: IntakeApplication, relay: OutboxRelay) -> list[int]:
    return [n.id for n in app.read_notifications(0, 10_000, relay.topics)]


async def run_until(relay: OutboxRelay, condition: Any, timeout: float = 20) -> None:
    task = asyncio.create_task(relay.run())
    try:
        await async_wait_for(lambda: _value(condition()), timeout=timeout)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_window_of_publishes_in_flight_keeps_the_stores_order_on_the_stream(
    backend, js, nats_server
):
    app, store = backend.open(IntakeApplication, "intake", packs=PACKS), StoreRunner()
    submit(app, 30)
    watched = WatchedJetStream(js)
    # Batches of 12 in windows of 8: windows that fill, and batches that end part-way.
    relay = OutboxRelay(app, store, watched, TRANSLATORS, batch_size=12, window=8)
    last = public_ids(app, relay)[-1]
    await run_until(relay, lambda: relay.stats.position == last)

    assert watched.most_in_flight == 8 and not watched.one_case_twice_in_flight
    messages = await stream_messages(nats_server.url, "khidma.*.*.RequestReceived")
    assert channel_refs(messages) == [f"form-{n}" for n in range(30)]
    assert relay.stats.published == 30 and relay.stats.duplicates == 0
    assert position(app) == last


async def test_a_refused_publish_mid_window_records_nothing_past_it_and_loses_nothing(
    backend, js, nats_server
):
    app, store = backend.open(IntakeApplication, "intake", packs=PACKS), StoreRunner()
    submit(app, 12)
    watched = WatchedJetStream(js)
    watched.broken = lambda n, data: b'"form-4"' in data
    relay = OutboxRelay(app, store, watched, TRANSLATORS, window=4, poll_interval=0.1)
    ids = public_ids(app, relay)
    task = asyncio.create_task(relay.run())
    try:
        await async_wait_for(lambda: _value(relay.stats.last_error is not None), timeout=10)
        # Acknowledged: 0-3 before the gap, and 5-7, in flight behind it (a window
        # of 4: nothing more was sent once 4 failed). Only 0-3 count.
        assert position(app) == ids[3]
        assert relay.stats.published == 4
        assert relay.stats.acked_past_a_gap == 3
        watched.broken = lambda n, data: False
        await async_wait_for(lambda: _value(relay.stats.position == ids[-1]), timeout=15)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    messages = await stream_messages(nats_server.url, "khidma.*.*.RequestReceived")
    refs = channel_refs(messages)
    # Each event once: the copies sent again were dropped by the server.
    assert sorted(refs) == sorted(f"form-{n}" for n in range(12)) and len(refs) == 12
    assert relay.stats.duplicates == 3
    # The refused one arrives after those that got past it (the only case the
    # store's order is not the stream's: the server refused one and took the next).
    assert refs[:4] == ["form-0", "form-1", "form-2", "form-3"]
    assert refs[4:7] == ["form-5", "form-6", "form-7"] and refs[7] == "form-4"
    assert refs[8:] == ["form-8", "form-9", "form-10", "form-11"]


async def test_a_cases_next_event_waits_for_the_ack_of_the_one_before_it(backend, js, nats_server):
    app, store = backend.open(IntakeApplication, "intake", packs=PACKS), StoreRunner()
    submit_and_refer(app, 6)
    watched = WatchedJetStream(js)
    relay = OutboxRelay(app, store, watched, TRANSLATORS, window=8)
    last = public_ids(app, relay)[-1]
    await run_until(relay, lambda: relay.stats.position == last)

    # Two cases at a time in flight (one's referral, the next one's request), never
    # two events of one case.
    assert watched.most_in_flight == 2 and not watched.one_case_twice_in_flight
    messages = await stream_messages(nats_server.url, "khidma.>")
    assert [m["event"]["event_type"] for m in messages] == [
        "RequestReceived",
        "ReferredToResearcher",
    ] * 6


async def test_the_server_stopping_mid_window_loses_nothing_and_keeps_each_cases_order(
    backend, nats_server
):
    """What the client had written when the server went is lost; what it still held
    goes out when it reconnects, ahead of the relay's re-sends: the stream may then
    hold one case's events before another's that the store recorded earlier, but a
    case's own events always in order (its next one waits for the ack)."""
    app, store = backend.open(IntakeApplication, "intake", packs=PACKS), StoreRunner()
    submit(app, 12)
    connection = await nats.connect(
        nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2
    )
    js = connection.jetstream()
    await ensure_stream(js)
    watched = WatchedJetStream(js)

    async def stop_the_server_before_the_fifth(n: int) -> None:
        if n == 4:
            # What was sent so far is acknowledged; 4 and what follows in its
            # window go out while the server is away.
            await async_wait_for(lambda: _value(watched.in_flight == 0), timeout=10)
            nats_server.stop()

    watched.before_publish = stop_the_server_before_the_fifth
    relay = OutboxRelay(
        app, store, watched, TRANSLATORS, window=8, ack_timeout=1.0, poll_interval=0.1
    )
    ids = public_ids(app, relay)
    task = asyncio.create_task(relay.run())
    try:
        await async_wait_for(lambda: _value(relay.stats.last_error is not None), timeout=15)
        assert position(app) == ids[3]  # nothing recorded past the gap
        nats_server.start()
        await async_wait_for(lambda: _value(relay.stats.position == ids[-1]), timeout=30)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await connection.close()

    messages = await stream_messages(nats_server.url, "khidma.*.*.RequestReceived")
    refs = channel_refs(messages)
    assert refs[:4] == ["form-0", "form-1", "form-2", "form-3"]
    assert sorted(refs) == sorted(f"form-{n}" for n in range(12)) and len(refs) == 12
    assert position(app) == ids[-1]


async def test_a_case_keeps_its_order_when_the_server_stops_mid_window(backend, nats_server):
    app, store = backend.open(IntakeApplication, "intake", packs=PACKS), StoreRunner()
    submit_and_refer(app, 8)
    connection = await nats.connect(
        nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2
    )
    js = connection.jetstream()
    await ensure_stream(js)
    watched = WatchedJetStream(js)

    async def stop_the_server_before_the_seventh(n: int) -> None:
        if n == 6:
            await async_wait_for(lambda: _value(watched.in_flight == 0), timeout=10)
            nats_server.stop()

    watched.before_publish = stop_the_server_before_the_seventh
    relay = OutboxRelay(
        app, store, watched, TRANSLATORS, window=8, ack_timeout=1.0, poll_interval=0.1
    )
    ids = public_ids(app, relay)
    task = asyncio.create_task(relay.run())
    try:
        await async_wait_for(lambda: _value(relay.stats.last_error is not None), timeout=15)
        assert position(app) == ids[5]
        nats_server.start()
        await async_wait_for(lambda: _value(relay.stats.position == ids[-1]), timeout=30)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await connection.close()

    messages = await stream_messages(nats_server.url, "khidma.>")
    assert len(messages) == 16 and len({m["event"]["event_id"] for m in messages}) == 16
    by_case: dict[str, list[str]] = {}
    for message in messages:
        by_case.setdefault(message["event"]["case_id"], []).append(message["event"]["event_type"])
    assert len(by_case) == 8
    assert all(types == ["RequestReceived", "ReferredToResearcher"] for types in by_case.values())
