"""Events that contradict their subject, and the cases dead letters hold (pure logic)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.application import ProcessingEvent
from eventsourcing.persistence import Tracking

from services.intake.api import with_labels
from services.intake.domain import CaseStatus, shown_status
from services.intake.views import CASES, HELD, project
from shared.consumer import REASON_HEADER, SEQUENCE_HEADER, SUBJECT_HEADER, TrackingConsumer
from shared.dead_letter import DEAD_LETTER, REPLAYED_NOTICE, read_dead_letter
from shared.events import encode_event
from shared.subjects import event_subject, subject_mismatch
from shared.views import ViewStore
from tests.unit.test_audit_compliance import CaseHistory
from tests.unit.test_intake_application import ACTOR, make_app, submission

pytestmark = pytest.mark.unit


def verified():
    history = CaseHistory()
    history.clean()
    return next(e for e in history.published if e.event_type == "DataVerified")


def decided():
    history = CaseHistory()
    history.clean()
    return next(e for e in history.published if e.event_type == "CommitteeDecided")


def test_a_subject_that_matches_its_body_passes():
    event = verified()
    subject = event_subject(event.association_id, event.case_id, event.event_type)
    assert subject_mismatch(subject, event) is None
    assert subject_mismatch(subject, event, {"sidr", "other"}) is None


@pytest.mark.parametrize(
    "association, case, event_type, served, expected",
    [
        ("sidr", "other-case", "DataVerified", (), "subject says case other-case"),
        ("tamr", None, "DataVerified", (), "subject says association tamr, body says sidr"),
        (
            "sidr",
            None,
            "CommitteeDecided",
            (),
            "subject says CommitteeDecided, body is a DataVerified",
        ),
        ("sidr", None, "DataVerified", ("tamr",), "association sidr is not served here"),
    ],
)
def test_a_body_that_contradicts_its_subject_says_how(
    association, case, event_type, served, expected
):
    event = verified()
    subject = event_subject(association, case or event.case_id, event_type)
    assert expected in (subject_mismatch(subject, event, served) or "")


class Message:
    """One stream message as the consumer sees it."""

    def __init__(self, subject: str, data: bytes, sequence: int = 7, headers: Any = None) -> None:
        self.subject, self.data, self.headers = subject, data, headers
        self.metadata = SimpleNamespace(sequence=SimpleNamespace(stream=sequence), num_delivered=1)
        self.outcomes: list[str] = []

    async def nak(self, delay: float | None = None) -> None:
        self.outcomes.append("nak")

    async def ack(self) -> None:
        self.outcomes.append("ack")

    async def term(self) -> None:
        self.outcomes.append("term")


class Stream:
    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, str]]] = []

    async def publish(self, subject: str, data: bytes, headers: Any = None) -> None:
        self.published.append((subject, headers))


class NeverStore:
    async def run(self, *args: Any) -> None:
        raise AssertionError("a contradicted event must never reach its handler")


def consume(message: Message, packs: Any = None) -> Stream:
    stream = Stream()
    handlers = {t: (lambda e, p: None) for t in ("DataVerified", "CommitteeDecided")}
    consumer = TrackingConsumer(
        SimpleNamespace(packs=packs or {}),  # type: ignore[arg-type]
        NeverStore(),  # type: ignore[arg-type]
        stream,  # type: ignore[arg-type]
        service="intake",
        handlers=handlers,
    )
    asyncio.run(consumer.handle_message(message))  # type: ignore[arg-type]
    return stream


@pytest.mark.parametrize("what", ["case", "association", "type", "unknown association"])
def test_a_contradicted_event_is_dead_lettered_at_its_first_delivery(what):
    event = decided() if what == "type" else verified()
    subject = {
        "case": event_subject("sidr", uuid4(), "DataVerified"),
        "association": event_subject("tamr", event.case_id, "DataVerified"),
        # A well-formed CommitteeDecided on a DataVerified subject: handled nowhere as it is.
        "type": event_subject("sidr", event.case_id, "DataVerified"),
        "unknown association": event_subject("sidr", event.case_id, "DataVerified"),
    }[what]
    packs = {"tamr": object()} if what == "unknown association" else None
    message = Message(subject, encode_event(event))
    stream = consume(message, packs)
    ((dead_subject, headers),) = stream.published
    assert dead_subject == "khidma.deadletter.intake"
    assert headers[REASON_HEADER].startswith("body contradicts its subject")
    assert headers[SUBJECT_HEADER] == subject and headers[SEQUENCE_HEADER] == "7"
    assert message.outcomes == ["term"]


def test_a_dead_letter_names_the_cases_of_its_subject_and_its_body():
    event = verified()
    other = uuid4()
    letter = read_dead_letter(
        "khidma.deadletter.committee",
        encode_event(event),
        {
            SUBJECT_HEADER: event_subject("sidr", other, "DataVerified"),
            SEQUENCE_HEADER: "12",
            REASON_HEADER: "why",
        },
        40,
    )
    assert letter is not None and letter.kind == DEAD_LETTER
    assert letter.key == "committee:12" and letter.reason == "why"
    assert letter.case_ids() == [other, event.case_id]
    notice = read_dead_letter("khidma.replayed.committee", b"{}", {SEQUENCE_HEADER: "12"}, 50)
    assert notice is not None and notice.kind == REPLAYED_NOTICE and notice.key == "committee:12"
    assert read_dead_letter("khidma.sidr.x.DataVerified", b"{}", {}, 1) is None


def notice(case_id, kind: str = "deadletter"):
    event = verified().model_copy(update={"case_id": case_id})
    return read_dead_letter(
        f"khidma.{kind}.committee",
        encode_event(event),
        {
            SUBJECT_HEADER: event_subject("sidr", case_id, "DataVerified"),
            SEQUENCE_HEADER: "12",
            REASON_HEADER: "failed 5 times: RuntimeError('boom')",
        },
        40,
    )


def apply_notice(app, letter, position: int):
    processing = ProcessingEvent(tracking=Tracking("nats:KHIDMA", position))
    app.on_dead_letter(letter, processing)
    app.record_processing(processing)


def test_a_dead_letter_holds_the_case_until_its_replay_is_applied(tmp_path):
    app = make_app()
    result = app.submit(submission(), ACTOR)
    apply_notice(app, notice(result.case_id), 1000)
    assert app.case_status(result.case_id)["held"] is True
    assert app.case_status(result.case_id)["status"] == CaseStatus.RECEIVED  # beneath the hold
    views = ViewStore(tmp_path / "views.sqlite")

    def project_all() -> None:
        for n in app.read_notifications(views.position("intake"), 1000):
            views.apply("intake", project, [app.mapper.to_domain_event(n)], n.id)

    project_all()
    shown = with_labels(views.get(CASES, str(result.case_id)))
    assert shown["status_label"] == {
        "en": "Held: an operator must look",
        "ar": "موقوف: يجب أن يراجعه أحد المشغّلين",
    }
    assert shown["held_by"][0]["key"] == "committee:12"
    assert "boom" in shown["held_by"][0]["reason"]
    assert views.count(HELD) == 1

    apply_notice(app, notice(result.case_id, "replayed"), 1001)
    project_all()
    assert app.case_status(result.case_id)["held"] is False
    shown = with_labels(views.get(CASES, str(result.case_id)))
    assert shown["status_label"]["en"] == "Received; being checked"
    assert views.count(HELD) == 0
    assert [h["what"] for h in shown["history"]][-2:] == ["held", "hold_lifted"]


def test_a_dead_letter_about_an_unknown_case_holds_nothing():
    app = make_app()
    before = app.max_notification_id()
    apply_notice(app, notice(uuid4()), 1000)
    assert app.max_notification_id() == before


def test_the_held_status_is_shown_over_the_status_beneath():
    assert shown_status(CaseStatus.APPROVED, True) == CaseStatus.HELD
    assert shown_status(CaseStatus.APPROVED, False) == CaseStatus.APPROVED
