"""The outbox relay against a real nats-server, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import uuid4

import nats
import psycopg
import pytest
from eventsourcing.utils import get_topic
from prometheus_client import REGISTRY

from khidma.nats_server import NatsServer
from services.intake.application import IntakeApplication
from services.intake.domain import Case
from services.intake.integration import TRANSLATORS
from shared.consumer import REASON_HEADER
from shared.events import RequestReceivedPayload
from shared.outbox import SOURCE_HEADER, OutboxRelay
from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings
from shared.store import OUTBOX_TRACKING, StoreRunner, open_application
from shared.stream import ensure_stream
from shared.subjects import dead_letter_subject
from shared.submissions import Submission
from tests.backends import backend  # noqa: F401  (the fixture: SQLite and PostgreSQL)
from tests.helpers import async_wait_for, stream_messages

pytestmark = pytest.mark.integration


PACKS = load_packs(DEFAULT_POLICIES_DIR)


def submission(n: int, site: str = "Wadi Hanifa") -> Submission:
    """A complete request (fields, documents, declaration): it is published at once."""
    return Submission(
        association_id="sidr",
        channel="website",
        channel_ref=f"form-{n}",
        service_code="seedlings",
        applicant={"national_id": f"10000000{n:02d}", "name": f"Applicant {n}"},
        # A long planting site makes the event larger than the server takes.
        fields={"planting_site": site, "seedling_count": 10},
        documents=[{"code": "national_id_card", "expires_on": "2030-01-01"}],
        attestation={"attested": True, "method": "in_person"},
    )


async def run_relay_until_published(relay: OutboxRelay, count: int) -> None:
    task = asyncio.create_task(relay.run())
    try:
        await async_wait_for(lambda: _value(relay.stats.published >= count), timeout=15)
        # The acks are counted before the position is recorded: wait for that too, or
        # the cancel below can come between the two.
        last = last_public(relay.app, relay)  # type: ignore[arg-type]
        await async_wait_for(lambda: _value(relay.stats.position >= last), timeout=15)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


class CrashAfterPublish(OutboxRelay):
    """Publishes a batch, then dies before recording its position."""

    async def publish_batch(self) -> int:
        notifications = await self.store.run(
            self.app.read_notifications, self.stats.position, self.batch_size, self.topics
        )
        for notification in notifications:
            await self._publish(
                self.translators[notification.topic](self.app.mapper.to_domain_event(notification))
            )
        raise SystemExit("killed between publish and position")


async def test_a_crash_between_publish_and_position_neither_loses_nor_duplicates(
    backend, js, nats_server
):
    app, store = backend.open(IntakeApplication, "intake", packs=PACKS), StoreRunner()
    for n in range(5):
        app.submit(submission(n), {"kind": "adapter", "id": "test"})
    crashing = CrashAfterPublish(app, store, js, TRANSLATORS)
    with pytest.raises(SystemExit):
        await crashing.run()
    assert app.process_recorder.max_tracking_id(OUTBOX_TRACKING) is None

    app.submit(submission(5), {"kind": "adapter", "id": "test"})
    restarted = OutboxRelay(app, store, js, TRANSLATORS)
    await run_relay_until_published(restarted, 6)
    messages = await stream_messages(nats_server.url, "khidma.*.*.RequestReceived")
    assert len(messages) == 6
    assert restarted.stats.duplicates == 5
    assert [m["event"]["payload"]["channel_ref"] for m in messages] == [
        f"form-{n}" for n in range(6)
    ]


async def test_only_public_events_are_published_with_their_event_id_as_message_id(
    backend, js, nats_server
):
    app, store = backend.open(IntakeApplication, "intake", packs=PACKS), StoreRunner()
    result = app.submit(submission(1), {"kind": "adapter", "id": "test"})
    app.refer_to_researcher(
        result.case_id,
        reason="unclear",
        questions=[],
        referred_by="o1",
        actor={"kind": "officer", "id": "o1", "role": "front_desk"},
    )
    relay = OutboxRelay(app, store, js, TRANSLATORS)
    await run_relay_until_published(relay, 2)
    messages = await stream_messages(nats_server.url, f"khidma.*.{result.case_id}.*")
    assert [m["event"]["event_type"] for m in messages] == [
        "RequestReceived",
        "ReferredToResearcher",
    ]
    for message in messages:
        assert message["headers"]["Nats-Msg-Id"] == message["event"]["event_id"]
    assert messages[1]["event"]["causation_id"] == messages[0]["event"]["event_id"]
    # The internal events (submitted, indexes, numbering) never reach the bus.
    # Completed and Resubmitted (a corrected request, published again), referral, delivery.
    assert {get_topic(Case.Completed), get_topic(Case.Resubmitted)} <= set(relay.topics)
    assert len(relay.topics) == 4
    assert get_topic(Case.Submitted) not in relay.topics


async def test_events_recorded_while_nats_is_down_are_published_when_it_returns(
    backend, nats_server
):
    app, store = backend.open(IntakeApplication, "intake", packs=PACKS), StoreRunner()
    connection = await nats.connect(
        nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2
    )
    js = connection.jetstream(timeout=2)
    await ensure_stream(js)
    relay = OutboxRelay(app, store, js, TRANSLATORS, poll_interval=0.1)
    task = asyncio.create_task(relay.run())
    try:
        app.submit(submission(1), {"kind": "adapter", "id": "test"})
        relay.wake()
        await async_wait_for(lambda: _value(relay.stats.published == 1), timeout=10)
        nats_server.stop()
        app.submit(submission(2), {"kind": "adapter", "id": "test"})
        relay.wake()
        await asyncio.sleep(0)  # let the relay try and fail against the stopped server
        nats_server.start()
        await async_wait_for(lambda: _value(relay.stats.published == 2), timeout=30)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await connection.close()
    messages = await stream_messages(nats_server.url, "khidma.*.*.RequestReceived")
    assert [m["event"]["payload"]["channel_ref"] for m in messages] == ["form-1", "form-2"]


@pytest.mark.postgres
async def test_the_same_store_code_runs_on_postgresql(postgres_available, js, nats_server):
    schema = f"intake_test_{uuid4().hex[:8]}"
    settings = ServiceSettings(
        service_name="intake",
        nats_url="nats://x",
        store="postgres",
        postgres_host=postgres_available["host"],
        postgres_port=int(postgres_available["port"]),
        postgres_dbname=postgres_available["dbname"],
        postgres_user=postgres_available["user"],
        postgres_schema=schema,
    )
    app = open_application(IntakeApplication, settings.eventsourcing_env(), packs=PACKS)
    try:
        first = app.submit(submission(1), {"kind": "adapter", "id": "test"})
        again = app.submit(submission(1), {"kind": "adapter", "id": "test"})
        assert again.duplicate and again.case_id == first.case_id
        relay = OutboxRelay(app, StoreRunner(), js, TRANSLATORS)
        await run_relay_until_published(relay, 1)
        assert app.process_recorder.max_tracking_id(OUTBOX_TRACKING) == relay.stats.position
        messages = await stream_messages(nats_server.url, "khidma.*.*.RequestReceived")
        assert messages[0]["event"]["case_id"] == str(first.case_id)
        reopened = open_application(IntakeApplication, settings.eventsourcing_env(), packs=PACKS)
        assert reopened.case_status(first.case_id)["case_ref"] == first.case_ref
        reopened.close()
    finally:
        app.close()
        with psycopg.connect(
            host="127.0.0.1", dbname="test", user="postgres", autocommit=True
        ) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def _value(value):
    return value


class FlakyJetStream:
    """A JetStream context whose publishes fail while `refuse` says so.

    The relay publishes with `publish_async` (a window in flight) and sets
    events aside with `publish`: a refused one fails before it is sent.
    """

    def __init__(self, js: Any, refuse: Callable[[str, bytes], bool] = lambda s, d: False):
        self._js = js
        self.refuse = refuse
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._js, name)

    async def publish(self, subject: str, payload: bytes = b"", **options: Any) -> Any:
        if self.refuse(subject, payload):
            self.refused += 1
            raise nats.errors.TimeoutError
        return await self._js.publish(subject, payload, **options)

    async def publish_async(self, subject: str, payload: bytes = b"", **options: Any) -> Any:
        if self.refuse(subject, payload):
            self.refused += 1
            raise nats.errors.TimeoutError
        return await self._js.publish_async(subject, payload, **options)


def last_public(app: IntakeApplication, relay: OutboxRelay) -> int:
    """The id of the last event the relay has to publish (or set aside)."""
    return app.read_notifications(0, 10_000, relay.topics)[-1].id


def channel_refs(messages: list[dict[str, Any]]) -> list[str]:
    return [m["event"]["payload"]["channel_ref"] for m in messages]


async def test_a_failed_publish_stops_the_batch_and_no_later_event_overtakes_it(
    backend, js, nats_server
):
    app, store = backend.open(IntakeApplication, "intake", packs=PACKS), StoreRunner()
    for n in range(4):
        app.submit(submission(n), {"kind": "adapter", "id": "test"})
    flaky = FlakyJetStream(js, lambda subject, data: b'"form-1"' in data)
    relay = OutboxRelay(app, store, flaky, TRANSLATORS, poll_interval=0.1)
    task = asyncio.create_task(relay.run())
    try:
        # Two refusals: the relay tried, failed, waited and tried again.
        await async_wait_for(lambda: _value(flaky.refused >= 2), timeout=10)
        messages = await stream_messages(nats_server.url, "khidma.*.*.RequestReceived")
        assert channel_refs(messages) == ["form-0"]
        # What the server acknowledged before the failure is not sent again.
        first = app.read_notifications(0, 1, relay.topics)[0].id
        assert app.process_recorder.max_tracking_id(OUTBOX_TRACKING) == first
        flaky.refuse = lambda subject, data: False
        await async_wait_for(lambda: _value(relay.stats.published == 4), timeout=15)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    messages = await stream_messages(nats_server.url, "khidma.*.*.RequestReceived")
    assert channel_refs(messages) == ["form-0", "form-1", "form-2", "form-3"]
    assert relay.stats.duplicates == 0


async def test_the_position_moves_only_after_the_server_acknowledged(backend, nats_server):
    """No stream yet: every publish fails, so the position stays; then exactly once."""
    app, store = backend.open(IntakeApplication, "intake", packs=PACKS), StoreRunner()
    app.submit(submission(1), {"kind": "adapter", "id": "test"})
    connection = await nats.connect(nats_server.url)
    js = connection.jetstream(timeout=1)
    attempts = FlakyJetStream(js)
    counted: list[str] = []
    real_publish = attempts.publish_async

    async def counting_publish(subject: str, payload: bytes = b"", **options: Any) -> Any:
        counted.append(subject)
        return await real_publish(subject, payload, **options)

    attempts.publish_async = counting_publish  # type: ignore[method-assign]
    relay = OutboxRelay(app, store, attempts, TRANSLATORS, poll_interval=0.1)
    task = asyncio.create_task(relay.run())
    try:
        await async_wait_for(
            lambda: _value(len(counted) >= 2),
            timeout=15,
            what="the relay to try again after the failed publish",
        )
        assert app.process_recorder.max_tracking_id(OUTBOX_TRACKING) is None
        assert relay.stats.position == 0 and relay.stats.published == 0
        await ensure_stream(js)
        # The relay counts a publish when it is acknowledged and records the position
        # after it: wait for both, or the cancel below can come between the two.
        await async_wait_for(
            lambda: _value(
                relay.stats.published == 1
                and app.process_recorder.max_tracking_id(OUTBOX_TRACKING) is not None
            ),
            timeout=15,
            what="the acknowledged publish and its recorded position",
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert app.process_recorder.max_tracking_id(OUTBOX_TRACKING) == last_public(app, relay)

    # A relay started again from the recorded position publishes nothing twice.
    again = OutboxRelay(app, store, js, TRANSLATORS, poll_interval=0.1)
    task = asyncio.create_task(again.run())
    try:
        await again.wait_caught_up(timeout=10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert again.stats.published == 0
    messages = await stream_messages(nats_server.url, "khidma.*.*.RequestReceived")
    assert channel_refs(messages) == ["form-1"]
    await connection.close()


@pytest.fixture
def small_payload_server(tmp_path: Path):
    """A JetStream server that accepts messages of at most 8 KiB."""
    config = tmp_path / "small.conf"
    store_dir = tmp_path / "small-nats"
    config.write_text(f'max_payload: 8192\njetstream {{ store_dir: "{store_dir}" }}\n')
    server = NatsServer(store_dir, config_file=config, log_file=tmp_path / "small.log").start()
    try:
        yield server
    finally:
        server.stop()


def _set_aside_count(service: str, event_type: str, reason: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "khidma_outbox_set_aside_total",
            {"service": service, "event_type": event_type, "reason": reason},
        )
        or 0.0
    )


async def test_an_event_over_the_servers_max_payload_is_set_aside_and_the_rest_published(
    backend, small_payload_server
):
    app, store = backend.open(IntakeApplication, "intake", packs=PACKS), StoreRunner()
    app.submit(submission(0), {"kind": "adapter", "id": "test"})
    too_large = app.submit(submission(1, site="x" * 20_000), {"kind": "adapter", "id": "test"})
    app.submit(submission(2), {"kind": "adapter", "id": "test"})
    before = _set_aside_count("intake", "RequestReceived", "too_large")
    connection = await nats.connect(small_payload_server.url)
    js = connection.jetstream()
    await ensure_stream(js)
    relay = OutboxRelay(app, store, js, TRANSLATORS, poll_interval=0.1)
    try:
        task = asyncio.create_task(relay.run())
        try:
            await relay.wait_caught_up(timeout=15)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        await connection.close()
    assert (relay.stats.published, relay.stats.set_aside) == (2, 1)
    assert app.process_recorder.max_tracking_id(OUTBOX_TRACKING) == last_public(app, relay)
    url = small_payload_server.url
    assert channel_refs(await stream_messages(url, "khidma.*.*.RequestReceived")) == [
        "form-0",
        "form-2",
    ]
    (dead,) = await stream_messages(url, dead_letter_subject("intake"))
    record = dead["event"]
    assert record["reason_code"] == "too_large"
    assert record["event_type"] == "RequestReceived"
    assert record["case_id"] == str(too_large.case_id)
    assert record["event_id"] and record["size_bytes"] > record["limit_bytes"]
    assert len(dead["data"]) < 2000  # a small record, not the event
    assert dead["headers"][SOURCE_HEADER] == "outbox"
    assert "bytes" in dead["headers"][REASON_HEADER]
    assert _set_aside_count("intake", "RequestReceived", "too_large") == before + 1


async def test_an_event_its_translator_refuses_is_set_aside_and_the_rest_published(
    backend, js, nats_server
):
    app, store = backend.open(IntakeApplication, "intake", packs=PACKS), StoreRunner()
    results = [app.submit(submission(n), {"kind": "adapter", "id": "test"}) for n in range(3)]
    completed = get_topic(Case.Completed)

    def refuses_form_1(event: Any) -> Any:
        if event.channel_ref == "form-1":
            RequestReceivedPayload.model_validate({"channel": ""})  # raises ValidationError
        return TRANSLATORS[completed](event)

    relay = OutboxRelay(app, store, js, {**TRANSLATORS, completed: refuses_form_1})
    task = asyncio.create_task(relay.run())
    try:
        await relay.wait_caught_up(timeout=15)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert (relay.stats.published, relay.stats.set_aside) == (2, 1)
    messages = await stream_messages(nats_server.url, "khidma.*.*.RequestReceived")
    assert channel_refs(messages) == ["form-0", "form-2"]
    (dead,) = await stream_messages(nats_server.url, dead_letter_subject("intake"))
    record = json.loads(dead["data"])
    assert record["reason_code"] == "untranslatable"
    assert record["case_id"] == str(results[1].case_id)
    assert record["topic"] == completed
    assert "not a valid integration event" in record["reason"]


async def test_ready_says_why_when_the_relay_has_a_backlog_and_makes_no_progress(
    tmp_path, nats_server
):
    settings = ServiceSettings(
        service_name="intake",
        nats_url=nats_server.url,
        data_dir=tmp_path / "data",
        relay_stall_seconds=0.5,
        poll_interval_seconds=0.1,
    )
    app = open_application(IntakeApplication, settings.eventsourcing_env(), packs=PACKS)
    runtime = ServiceRuntime(settings, app, translators=TRANSLATORS)
    await runtime.start()
    connection = await nats.connect(nats_server.url)
    try:
        await runtime.store.run(app.submit, submission(1), {"kind": "adapter", "id": "test"})
        runtime.recorded()
        relay = runtime.relay
        assert relay is not None
        await async_wait_for(lambda: _value(relay.stats.published == 1), timeout=15)
        await async_wait_for(lambda: _ready(runtime), timeout=15, what="ready at first")

        # The stream is gone: every publish fails, and the backlog stays.
        await connection.jetstream().delete_stream("KHIDMA")
        await runtime.store.run(app.submit, submission(2), {"kind": "adapter", "id": "test"})
        runtime.recorded()
        report = await async_wait_for(
            lambda: _not_ready(runtime), timeout=15, what="/ready to report the stalled relay"
        )
        stalled = report["outbox_stalled"]
        assert report["outbox_lag"] == 1 and report["nats"] and report["store"]
        assert stalled["seconds"] >= 0.5 and stalled["last_error"]
        assert stalled["message"]["en"] and stalled["message"]["ar"]
        await runtime.update_metrics()
        stalled_gauge = REGISTRY.get_sample_value(
            "khidma_outbox_stalled_seconds", {"service": "intake"}
        )
        assert stalled_gauge is not None and stalled_gauge >= 0.5

        await ensure_stream(connection.jetstream())
        report = await async_wait_for(
            lambda: _ready(runtime), timeout=30, what="ready again once publishing works"
        )
        assert report["outbox_stalled"] is None and report["published"] == 2
    finally:
        await connection.close()
        await runtime.stop()


async def _ready(runtime: ServiceRuntime) -> dict[str, Any] | None:
    report = await runtime.readiness()
    return report if report["ready"] else None


async def _not_ready(runtime: ServiceRuntime) -> dict[str, Any] | None:
    report = await runtime.readiness()
    return None if report["ready"] else report

