"""The tracking consumer against a real nats-server and a real SQLite store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import nats
import pytest
from eventsourcing.domain import Aggregate, event

from shared.consumer import REASON_HEADER, SEQUENCE_HEADER, RetryLater, TrackingConsumer
from shared.events import (
    Actor,
    Applicant,
    IntegrationEvent,
    RequestReceived,
    encode_event,
)
from shared.settings import ServiceSettings
from shared.store import ServiceApplication, StoreRunner, open_application
from shared.subjects import dead_letter_subject, event_subject
from tests import builders
from tests.backends import Backend
from tests.helpers import async_wait_for, stream_messages

pytestmark = pytest.mark.integration


class Effect(Aggregate):
    """One effect per handled message: a duplicate effect would be a second aggregate."""

    @event("Recorded")
    def __init__(self, source_event_id: UUID):
        self.source_event_id = source_event_id


class EffectsApplication(ServiceApplication):
    name = "effects"

    def effects(self) -> list[UUID]:
        return [
            self.mapper.to_domain_event(n).source_event_id
            for n in self.read_notifications(0, 10_000)
        ]


def make_app(where: Path | Backend) -> EffectsApplication:
    if isinstance(where, Backend):
        return where.open(EffectsApplication, "effects")
    tmp_path = where
    settings = ServiceSettings(
        service_name="effects", nats_url="nats://unused", data_dir=tmp_path / "data"
    )
    return open_application(EffectsApplication, settings.eventsourcing_env())


def request(case_id: UUID | None = None) -> RequestReceived:
    return builders.request_received(
        case_id=case_id or uuid4(),
        case_ref="SID-T",
        actor=Actor(kind="adapter", id="test"),
        channel_ref=str(uuid4()),
        service_code="aid",
        applicant=Applicant(national_id="1000000008", name="Ali"),
    )


async def publish(js: Any, evt: IntegrationEvent) -> int:
    ack = await js.publish(
        event_subject(evt.association_id, evt.case_id, evt.event_type),
        encode_event(evt),
        headers={"Nats-Msg-Id": str(evt.event_id)},
    )
    return ack.seq


def record_effect(app: EffectsApplication):
    def handle(evt: IntegrationEvent, processing: Any) -> None:
        processing.collect_events(Effect(evt.event_id))

    return handle


def consumer_for(app, store, js, handler, **options) -> TrackingConsumer:
    return TrackingConsumer(
        app,
        store,
        js,
        service="effects",
        handlers={"RequestReceived": handler},
        **options,
    )


async def run_until(consumer: TrackingConsumer, condition, timeout: float = 15.0) -> None:
    task = asyncio.create_task(consumer.run())
    try:
        await async_wait_for(condition, timeout=timeout)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_the_same_message_delivered_twice_has_one_effect(backend, js):
    app, store = make_app(backend), StoreRunner()
    consumer = consumer_for(app, store, js, record_effect(app))
    evt = request()
    await publish(js, evt)
    await run_until(consumer, lambda: _async(consumer.stats.handled == 1))

    # Reset the durable consumer to deliver everything again: a redelivery storm.
    await js.delete_consumer("KHIDMA", "effects")
    again = consumer_for(app, store, js, record_effect(app))
    await run_until(again, lambda: _async(again.stats.duplicates == 1))
    assert await store.run(app.effects) == [evt.event_id]


async def test_a_nacked_message_redelivered_after_a_newer_one_is_not_lost(backend, js):
    app, store = make_app(backend), StoreRunner()
    first, second = request(), request()
    failed_once: set[UUID] = set()

    def flaky(evt: IntegrationEvent, processing: Any) -> None:
        if evt.event_id == first.event_id and evt.event_id not in failed_once:
            failed_once.add(evt.event_id)
            raise RuntimeError("transient failure")
        processing.collect_events(Effect(evt.event_id))

    consumer = consumer_for(app, store, js, flaky)
    await publish(js, first)
    await publish(js, second)
    await run_until(consumer, lambda: _async(consumer.stats.handled == 2))
    effects = await store.run(app.effects)
    # The newer message was handled first; the older one was still accepted.
    assert effects == [second.event_id, first.event_id]
    assert consumer.stats.retried == 1


class CrashBeforeAck(TrackingConsumer):
    """Commits the effect, then dies before acknowledging, like a killed process.

    The cheap in-process version, with an effect that is not idempotent by
    itself; test_crash_between_commit_and_ack.py kills a real service process.
    """

    async def handle_message(self, message):  # type: ignore[no-untyped-def]
        async def lost_ack() -> None:
            raise SystemExit("killed between commit and ack")

        message.ack = lost_ack
        try:
            await super().handle_message(message)
        except SystemExit:
            self.crashed = True


async def test_a_consumer_killed_between_commit_and_ack_leaves_one_effect(backend, js):
    app, store = make_app(backend), StoreRunner()
    evt = request()
    await publish(js, evt)
    crashing = CrashBeforeAck(
        app, store, js, service="effects",
        handlers={"RequestReceived": record_effect(app)}, ack_wait=1.0,
    )
    crashing.crashed = False
    await run_until(crashing, lambda: _async(crashing.crashed))
    assert await store.run(app.effects) == [evt.event_id]
    app.close()

    # The restarted service opens the same store; the server redelivers after ack_wait.
    restarted, store2 = make_app(backend), StoreRunner()
    consumer = consumer_for(restarted, store2, js, record_effect(restarted), ack_wait=1.0)
    await run_until(consumer, lambda: _async(consumer.stats.duplicates == 1))
    assert await store2.run(restarted.effects) == [evt.event_id]
    await async_wait_for(
        lambda: _pending_zero(js), timeout=5, what="the redelivered message to be acknowledged"
    )


async def test_a_malformed_event_goes_to_the_dead_letter_subject_and_does_not_block(
    backend, js, nats_server
):
    app, store = make_app(backend), StoreRunner()
    consumer = consumer_for(app, store, js, record_effect(app))
    bad_seq = (
        await js.publish(f"khidma.sidr.{uuid4()}.RequestReceived", b'{"event_type": "RequestReceived"}')
    ).seq
    good = request()
    await publish(js, good)
    await run_until(consumer, lambda: _async(consumer.stats.handled == 1))
    assert await store.run(app.effects) == [good.event_id]
    dead = await stream_messages(nats_server.url, dead_letter_subject("effects"))
    assert len(dead) == 1
    assert dead[0]["headers"][SEQUENCE_HEADER] == str(bad_seq)
    assert "invalid event" in dead[0]["headers"][REASON_HEADER]
    assert "event_id" in dead[0]["headers"][REASON_HEADER]


async def test_a_message_that_keeps_failing_is_dead_lettered_after_the_maximum_deliveries(
    backend, js, nats_server
):
    app, store = make_app(backend), StoreRunner()
    poison, good = request(), request()

    def fails_on_poison(evt: IntegrationEvent, processing: Any) -> None:
        if evt.event_id == poison.event_id:
            raise ValueError("cannot handle this one")
        processing.collect_events(Effect(evt.event_id))

    consumer = consumer_for(app, store, js, fails_on_poison, max_deliveries=3)
    await publish(js, poison)
    await publish(js, good)
    await run_until(consumer, lambda: _async(consumer.stats.dead_letters == 1))
    assert await store.run(app.effects) == [good.event_id]
    dead = await stream_messages(nats_server.url, dead_letter_subject("effects"))
    assert len(dead) == 1
    assert "failed 3 times" in dead[0]["headers"][REASON_HEADER]
    assert dead[0]["event"]["event_id"] == str(poison.event_id)


async def test_a_changed_filter_is_applied_to_an_existing_durable(tmp_path, js):
    app, store = make_app(tmp_path), StoreRunner()
    await consumer_for(app, store, js, record_effect(app)).ensure_consumer()
    wider = TrackingConsumer(
        app, store, js, service="effects",
        handlers={"RequestReceived": record_effect(app), "DataVerified": record_effect(app)},
    )
    await wider.ensure_consumer()
    info = await js.consumer_info("KHIDMA", "effects")
    assert sorted(info.config.filter_subjects) == [
        "khidma.*.*.DataVerified",
        "khidma.*.*.RequestReceived",
        "khidma.replay.effects",  # the operator's replays of its dead letters
    ]


class DeadLetterFailsOnce:
    """A JetStream context whose first dead-letter publish fails (the server is away)."""

    def __init__(self, js: Any):
        self._js = js
        self.failed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._js, name)

    async def publish(self, subject: str, payload: bytes = b"", **options: Any) -> Any:
        if subject.startswith("khidma.deadletter.") and not self.failed:
            self.failed += 1
            raise nats.errors.TimeoutError
        return await self._js.publish(subject, payload, **options)


async def test_a_failed_dead_letter_publish_does_not_stop_the_consumer(js, nats_server, tmp_path):
    app, store = make_app(tmp_path), StoreRunner()
    flaky = DeadLetterFailsOnce(js)
    consumer = consumer_for(app, store, flaky, record_effect(app), ack_wait=2.0)
    await js.publish(f"khidma.sidr.{uuid4()}.RequestReceived", b"not an event")
    good = request()
    await publish(js, good)
    task = asyncio.create_task(consumer.run())
    try:
        await async_wait_for(
            lambda: _async(
                task.done() or (consumer.stats.dead_letters == 1 and consumer.stats.handled == 1)
            ),
            timeout=15,
        )
        assert not task.done(), "the consumer loop died"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert flaky.failed == 1
    assert await store.run(app.effects) == [good.event_id]
    dead = await stream_messages(nats_server.url, dead_letter_subject("effects"))
    assert len(dead) == 1 and dead[0]["data"] == b"not an event"
    await async_wait_for(lambda: _pending_zero(js), timeout=10, what="everything acknowledged")


def waits_then(evt_id: UUID, waits: int, then_fail: int = 0):
    """A handler that says RetryLater `waits` times, then fails `then_fail` times, then works."""
    calls: list[str] = []

    def handle(evt: IntegrationEvent, processing: Any) -> None:
        if evt.event_id == evt_id and len(calls) < waits:
            calls.append("wait")
            raise RetryLater("the request it answers has not arrived")
        if evt.event_id == evt_id and len(calls) < waits + then_fail:
            calls.append("fail")
            raise ValueError("transient failure")
        calls.append("handled")
        processing.collect_events(Effect(evt.event_id))

    return handle, calls


async def test_an_event_waiting_for_an_earlier_one_is_not_dead_lettered_after_max_deliveries(
    js, tmp_path
):
    app, store = make_app(tmp_path), StoreRunner()
    early = request()
    handler, calls = waits_then(early.event_id, waits=4)
    consumer = consumer_for(app, store, js, handler, max_deliveries=2)
    await publish(js, early)
    await run_until(
        consumer,
        lambda: _async(consumer.stats.handled == 1 or consumer.stats.dead_letters == 1),
    )
    assert consumer.stats.dead_letters == 0
    assert calls == ["wait"] * 4 + ["handled"]
    assert await store.run(app.effects) == [early.event_id]


async def test_only_real_failures_count_toward_max_deliveries_after_waiting(js, tmp_path):
    app, store = make_app(tmp_path), StoreRunner()
    early = request()
    handler, calls = waits_then(early.event_id, waits=3, then_fail=1)
    consumer = consumer_for(app, store, js, handler, max_deliveries=2)
    await publish(js, early)
    await run_until(
        consumer,
        lambda: _async(consumer.stats.handled == 1 or consumer.stats.dead_letters == 1),
    )
    assert consumer.stats.dead_letters == 0
    assert calls == ["wait"] * 3 + ["fail", "handled"]


async def test_an_event_that_waits_longer_than_its_budget_is_dead_lettered_with_the_reason(
    js, nats_server, tmp_path
):
    app, store = make_app(tmp_path), StoreRunner()
    orphan = request()
    handler, calls = waits_then(orphan.event_id, waits=10_000)
    consumer = consumer_for(
        app, store, js, handler, max_deliveries=2, retry_later_seconds=1.0
    )
    await publish(js, orphan)
    await run_until(consumer, lambda: _async(consumer.stats.dead_letters == 1))
    assert len(calls) > 2  # more deliveries than max_deliveries: waiting is not failing
    (dead,) = await stream_messages(nats_server.url, dead_letter_subject("effects"))
    assert dead["headers"][REASON_HEADER].startswith("waited ")
    assert "has not arrived" in dead["headers"][REASON_HEADER]
    assert await store.run(app.effects) == []


async def _async(value):
    return value


async def _pending_zero(js) -> bool:
    info = await js.consumer_info("KHIDMA", "effects")
    return info.num_ack_pending == 0 and info.num_pending == 0
