"""Dead letters against a real nats-server and real SQLite stores: events that contradict
their subject, replays applied once, and the intake cases a dead letter holds."""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from services.intake.application import IntakeApplication
from services.intake.handlers import consumer_handlers, dead_letter_handler
from shared import deadletters
from shared.clock import FrozenClock
from shared.consumer import (
    REASON_HEADER,
    SEQUENCE_HEADER,
    SUBJECT_HEADER,
    RetryLater,
    TrackingConsumer,
)
from shared.events import IntegrationEvent, encode_event
from shared.personal import Sealer
from shared.settings import ServiceSettings
from shared.store import StoreRunner, open_application
from shared.subjects import dead_letter_subject, event_subject, replay_subject, replayed_subject
from tests import builders
from tests.helpers import async_wait_for, stream_messages
from tests.integration.test_exactly_once import Effect, make_app, request
from tests.unit.test_intake_application import ACTOR, PACKS, START, keyring, submission

pytestmark = pytest.mark.integration


async def publish(js: Any, event: IntegrationEvent, subject: str | None = None) -> int:
    subject = subject or event_subject(event.association_id, event.case_id, event.event_type)
    ack = await js.publish(
        subject, encode_event(event), headers={"Nats-Msg-Id": str(event.event_id)}
    )
    return ack.seq


@asynccontextmanager
async def running(*consumers: TrackingConsumer):
    tasks = [asyncio.create_task(c.run()) for c in consumers]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with pytest.raises(asyncio.CancelledError):
                await task


def effects_consumer(app, js, handlers, **options) -> TrackingConsumer:
    return TrackingConsumer(app, StoreRunner(), js, service="effects", handlers=handlers, **options)


def record(evt: IntegrationEvent, processing: Any) -> None:
    processing.collect_events(Effect(evt.event_id))


async def is_true(value: Any) -> Any:
    return value


async def test_an_event_filed_under_another_case_is_dead_lettered_at_once_and_opens_nothing(
    tmp_path, nats_server, js
):
    app = make_app(tmp_path)
    consumer = effects_consumer(app, js, {"RequestReceived": record})
    stray, good = request(), request()
    await publish(js, stray, event_subject(stray.association_id, uuid4(), "RequestReceived"))
    await publish(js, good)
    async with running(consumer):
        await async_wait_for(
            lambda: is_true(consumer.stats.handled == 1 and consumer.stats.dead_letters == 1)
        )
    assert app.effects() == [good.event_id]
    assert consumer.stats.retried == 0
    (dead,) = await stream_messages(nats_server.url, dead_letter_subject("effects"))
    assert "body contradicts its subject: subject says case" in dead["headers"][REASON_HEADER]


async def test_a_well_formed_event_of_another_type_is_dead_lettered_at_its_first_delivery(
    tmp_path, nats_server, js
):
    app = make_app(tmp_path)
    case = request()

    def not_yet(evt: IntegrationEvent, processing: Any) -> None:
        raise RetryLater("the request has not arrived yet")  # what a real handler would say

    consumer = effects_consumer(app, js, {"RequestReceived": record, "DataVerified": not_yet})
    misfiled = builders.data_verified(case)
    await publish(js, misfiled, event_subject(case.association_id, case.case_id, "RequestReceived"))
    async with running(consumer):
        await async_wait_for(lambda: is_true(consumer.stats.dead_letters == 1), timeout=10)
    assert consumer.stats.retried == 0 and app.effects() == []
    (dead,) = await stream_messages(nats_server.url, dead_letter_subject("effects"))
    assert "subject says RequestReceived, body is a DataVerified" in dead["headers"][REASON_HEADER]


async def test_a_replayed_dead_letter_is_applied_once_however_often_it_comes_back(
    tmp_path, nats_server, js
):
    app = make_app(tmp_path)
    broken = {"now": True}

    def handler(evt: IntegrationEvent, processing: Any) -> None:
        if broken["now"]:
            raise RuntimeError("the pack is missing a service")
        record(evt, processing)

    consumer = effects_consumer(app, js, {"RequestReceived": handler}, max_deliveries=1)
    evt = request()
    sequence = await publish(js, evt)
    key = f"effects:{sequence}"
    async with running(consumer):
        await async_wait_for(lambda: is_true(consumer.stats.dead_letters == 1))
        (listed,) = [e.as_dict() for e in (await deadletters.entries(js)).values()]
        assert listed["key"] == key and listed["state"] == "open"
        assert "the pack is missing a service" in listed["reason"]

        broken["now"] = False  # the cause is fixed
        result = await deadletters.replay(js, key)
        assert result["service"] == "effects" and not result["duplicate"]
        await async_wait_for(lambda: is_true(consumer.stats.handled == 1))
        await async_wait_for(lambda: _replayed(nats_server.url, 1))
        assert (await deadletters.entries(js))[key].state == "replayed"

        # The same dead letter again, after the server's duplicate window: skipped.
        letter = (await deadletters.find(js, key)).latest
        await js.publish(
            replay_subject("effects"),
            letter.data,
            headers={SUBJECT_HEADER: letter.original_subject, SEQUENCE_HEADER: str(sequence)},
        )
        await async_wait_for(lambda: is_true(consumer.stats.duplicates == 1))
    assert app.effects() == [evt.event_id]


async def _replayed(url: str, count: int) -> bool:
    return len(await stream_messages(url, replayed_subject("effects"))) >= count


async def test_the_command_lists_shows_and_refuses_in_both_languages(
    tmp_path, nats_server, js, capsys
):
    app = make_app(tmp_path)
    consumer = effects_consumer(app, js, {"RequestReceived": record})
    stray = request()
    sequence = await publish(js, stray, event_subject("tamr", stray.case_id, "RequestReceived"))
    async with running(consumer):
        await async_wait_for(lambda: is_true(consumer.stats.dead_letters == 1))
    url = ["--url", nats_server.url]
    assert await asyncio.to_thread(deadletters.main, ["list", "--json", *url]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["key"] == f"effects:{sequence}" and listed["case_ids"] == [str(stray.case_id)]
    assert listed["state_label"]["ar"]
    assert await asyncio.to_thread(deadletters.main, ["show", f"effects:{sequence}", *url]) == 0
    shown = capsys.readouterr().out
    assert "reasons / الأسباب" in shown and "subject says association tamr" in shown
    assert await asyncio.to_thread(deadletters.main, ["replay", "effects:999", "--json", *url]) == 1
    refused = json.loads(capsys.readouterr().out)
    assert refused["error"] == "dead_letter_not_found" and refused["message"]["ar"]


def intake_app(tmp_path: Path) -> IntakeApplication:
    settings = ServiceSettings(
        service_name="intake", nats_url="nats://unused", data_dir=tmp_path / "intake"
    )
    return open_application(
        IntakeApplication,
        settings.eventsourcing_env(),
        clock=FrozenClock(START),
        packs=PACKS,
        sealer=Sealer(keyring()),
    )


async def test_a_case_another_service_could_not_process_is_held_until_the_replay_is_applied(
    tmp_path, nats_server, js
):
    intake = intake_app(tmp_path)
    intake_store = StoreRunner()
    case_id: UUID = (await intake_store.run(intake.submit, submission(), ACTOR)).case_id
    watcher = TrackingConsumer(
        intake,
        intake_store,
        js,
        service="intake",
        handlers=consumer_handlers(intake),
        on_dead_letter=dead_letter_handler(intake),
    )
    broken = {"now": True}

    def committee_handler(evt: IntegrationEvent, processing: Any) -> None:
        if broken["now"]:
            raise RuntimeError("no such service in the pack")
        record(evt, processing)

    effects = make_app(tmp_path / "committee")
    committee = TrackingConsumer(
        effects,
        StoreRunner(),
        js,
        service="committee",
        handlers={"DataVerified": committee_handler},
        max_deliveries=1,
    )
    verified = builders.data_verified(
        None,
        case_id=case_id,
        association_id="sidr",
        case_ref="SDR-1448-000001",
    )
    await publish(js, verified)

    def status() -> dict[str, Any]:
        return intake.case_status(case_id)

    async with running(watcher, committee):
        await async_wait_for(lambda: intake_store.run(lambda: status()["held"]))
        # Intake applied the same DataVerified itself: only the hold says something is wrong.
        assert (await intake_store.run(status))["status"] == "verified"
        (letter,) = (await deadletters.entries(js, "committee")).values()
        broken["now"] = False
        await deadletters.replay(js, letter.latest.key)
        await async_wait_for(lambda: intake_store.run(lambda: not status()["held"]))
    assert effects.effects() == [verified.event_id]
    assert (await intake_store.run(status))["status"] == "verified"


async def test_what_no_replay_can_mend_is_resolved_by_an_operator_and_the_hold_lifts(
    tmp_path, nats_server, js
):
    intake = intake_app(tmp_path)
    intake_store = StoreRunner()
    case_id: UUID = (await intake_store.run(intake.submit, submission(), ACTOR)).case_id
    watcher = TrackingConsumer(
        intake, intake_store, js, service="intake",
        handlers=consumer_handlers(intake), on_dead_letter=dead_letter_handler(intake),
    )
    # What the outbox relay sets aside: a record of an event it could never publish.
    record = {"source": "outbox", "case_id": str(case_id), "reason": "too large"}
    await js.publish(
        dead_letter_subject("intake"),
        json.dumps(record).encode(),
        headers={REASON_HEADER: "too large", "Khidma-Dead-Letter-Source": "outbox"},
    )

    def held() -> bool:
        return bool(intake.case_status(case_id)["held"])

    async with running(watcher):
        await async_wait_for(lambda: intake_store.run(held))
        (entry,) = (await deadletters.entries(js, "intake")).values()
        key = entry.latest.key
        with pytest.raises(deadletters.CommandError) as refused:
            await deadletters.replay(js, key)
        assert refused.value.code == "not_replayable" and refused.value.ar
        await deadletters.resolve(js, key, "republished by hand after the fix of release 1.4")
        await async_wait_for(lambda: intake_store.run(lambda: not held()))
    shown = (await deadletters.find(js, key)).as_dict(full=True)
    assert shown["state"] == "resolved" and shown["notes"] == [
        "republished by hand after the fix of release 1.4"
    ]
