"""The outbox relay against a real nats-server, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import nats
import psycopg
import pytest
from eventsourcing.utils import get_topic

from services.intake.application import IntakeApplication
from services.intake.domain import Case
from services.intake.integration import TRANSLATORS
from shared.outbox import OutboxRelay
from shared.policy import DEFAULT_POLICIES_DIR, load_packs
from shared.settings import ServiceSettings
from shared.store import OUTBOX_TRACKING, StoreRunner, open_application
from shared.stream import ensure_stream
from shared.submissions import Submission
from tests.backends import backend  # noqa: F401  (the fixture: SQLite and PostgreSQL)
from tests.helpers import async_wait_for, stream_messages

pytestmark = pytest.mark.integration


PACKS = load_packs(DEFAULT_POLICIES_DIR)


def submission(n: int) -> Submission:
    """A complete request (fields, documents, declaration): it is published at once."""
    return Submission(
        association_id="sidr",
        channel="website",
        channel_ref=f"form-{n}",
        service_code="seedlings",
        applicant={"national_id": f"10000000{n:02d}", "name": f"Applicant {n}"},
        fields={"planting_site": "Wadi Hanifa", "seedling_count": 10},
        documents=[{"code": "national_id_card", "expires_on": "2030-01-01"}],
        attestation={"attested": True, "method": "in_person"},
    )


@pytest.fixture
async def js(nats_server):
    connection = await nats.connect(nats_server.url)
    stream = connection.jetstream()
    await ensure_stream(stream)
    yield stream
    await connection.close()


async def run_relay_until_published(relay: OutboxRelay, count: int) -> None:
    task = asyncio.create_task(relay.run())
    try:
        await async_wait_for(lambda: _value(relay.stats.published >= count), timeout=15)
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
    app.refer_to_researcher(result.case_id, reason="unclear", questions=[], referred_by="o1")
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
