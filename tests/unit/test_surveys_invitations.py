"""Surveys: the invitation leaves through the outbound port once, in the association's words;
the applicant sees the survey; results by service, channel and stage, never by officer."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import ProcessingEvent
from eventsourcing.persistence import Tracking

from services.surveys.application import SurveysApplication
from services.surveys.dispatcher import InvitationDispatcher
from services.surveys.domain import Survey, SurveyClosed, group_results, preferred_language
from services.surveys.invitations import (
    GENERIC_QUESTIONS,
    Contact,
    Invitation,
    invitation_text,
    survey_form,
)
from services.surveys.outbound import LoggedOutbox, invitation_links, opened_contact
from services.surveys.views import DIMENSIONS, RESULTS, SURVEYS, TOKENS, project, tallies
from shared.clock import FrozenClock
from shared.errors import NotFound, Refused
from shared.events import (
    Applicant,
    CommitteeDecided,
    Ratings,
    RequestReceived,
    ServiceDelivered,
)
from shared.http import refusal_status
from shared.personal import is_sealed
from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs
from shared.store import StoreRunner
from tests import builders
from tests.personal_data import assert_no_plaintext, keyring_sealer

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
BASE_URL = "https://surveys.example.org"
PACKS = load_packs(DEFAULT_POLICIES_DIR)


# The texts ----------------------------------------------------------------------------


def test_the_invitation_text_is_the_packs_in_both_languages_with_name_and_link() -> None:
    pack = PACKS["sidr"]
    text = invitation_text(pack, "sidr", f"{BASE_URL}/surveys/tok")

    assert text["ar"] == pack.survey.invitation.ar.replace(
        "{association}", pack.name.ar
    ).replace("{link}", f"{BASE_URL}/surveys/tok")
    assert pack.name.en in text["en"] and text["en"].endswith(f"{BASE_URL}/surveys/tok")
    assert "{" not in text["ar"] + text["en"]


@pytest.mark.parametrize("association_id", sorted(PACKS))
def test_every_seed_pack_yields_a_complete_invitation(association_id: str) -> None:
    text = invitation_text(PACKS[association_id], association_id, "LINK")
    for language in ("ar", "en"):
        assert "LINK" in text[language]
        assert "{association}" not in text[language]


def test_an_association_without_a_pack_gets_a_generic_bilingual_text() -> None:
    text = invitation_text(None, "unknown-assoc", "LINK")
    assert text["ar"] and text["en"]
    assert "unknown-assoc" in text["en"] and "LINK" in text["ar"]


def test_a_brace_in_a_packs_text_is_kept_as_text() -> None:
    pack = PACKS["sidr"].model_copy(deep=True)
    object.__setattr__(pack.survey.invitation, "en", "Rate us {please} at {link}")
    assert invitation_text(pack, "sidr", "L")["en"] == "Rate us {please} at L"


def test_the_survey_form_has_the_packs_questions_and_both_calendars() -> None:
    pack = PACKS["health-coop"]
    service = pack.services[0]
    form = survey_form(
        association_id="health-coop",
        service_code=service.code,
        stage="rejected",
        language="en",
        invited_at=NOW,
        token="tok",
        pack=pack,
    )

    assert form["association"]["name"] == {"ar": pack.name.ar, "en": pack.name.en}
    assert form["service"]["name"] == {"ar": service.name.ar, "en": service.name.en}
    assert form["stage"] == "rejected" and form["stage_label"]["ar"]
    questions = {q["name"]: q for q in form["questions"]}
    assert questions["satisfaction"]["text"]["ar"] == pack.survey.satisfaction_question.ar
    assert questions["recommend"]["text"]["en"] == pack.survey.recommend_question.en
    assert (questions["satisfaction"]["minimum"], questions["satisfaction"]["maximum"]) == (1, 5)
    assert (questions["recommend"]["minimum"], questions["recommend"]["maximum"]) == (0, 10)
    assert questions["anonymous"]["default"] is True
    display = form["invited_at_display"]
    assert display["gregorian"] == "2026-11-21" and display["hijri"].startswith("14")
    assert display["ar"] and display["en"]
    assert form["answer"] == {"method": "POST", "path": "/surveys/tok/answers"}


def test_the_survey_form_without_a_pack_uses_the_generic_questions() -> None:
    form = survey_form(
        association_id="nopack",
        service_code="x",
        stage="delivered",
        language="ar",
        invited_at=NOW,
        token="t",
        pack=None,
    )
    assert form["questions"][0]["text"] == GENERIC_QUESTIONS["satisfaction"]
    assert form["association"]["name"] == {"ar": "nopack", "en": "nopack"}


def test_the_applicants_language_is_arabic_unless_asked_otherwise() -> None:
    assert preferred_language({}) == "ar"
    assert preferred_language({"language": "EN"}) == "en"
    assert preferred_language({"preferred_language": "fr"}) == "ar"


# Sending is recorded once ---------------------------------------------------------------


def invited() -> Survey:
    survey = Survey(
        case_id=uuid4(),
        association_id="sidr",
        case_ref="SDR-1448-000001",
        correlation_id=uuid4(),
        channel="phone",
        service_code="svc",
        phone="+966500000001",
        email=None,
        language="ar",
        revision=1,
        personal_key=None,
    )
    survey.invite(stage="delivered", causation_id=uuid4(), token="t", invited_at=NOW)
    return survey


def test_an_invitation_is_recorded_as_sent_once() -> None:
    survey = invited()
    assert survey.awaiting_sending
    survey.record_sent(message_id="m", sent_at=NOW)
    survey.record_sent(message_id="m", sent_at=NOW + timedelta(hours=1))

    sent = [e for e in survey.collect_events() if isinstance(e, Survey.InvitationSent)]
    assert len(sent) == 1 and sent[0].sent_at == NOW
    assert not survey.awaiting_sending


def test_nothing_is_sent_before_the_invitation() -> None:
    survey = invited()
    fresh = Survey(
        case_id=uuid4(),
        association_id="sidr",
        case_ref="r",
        correlation_id=uuid4(),
        channel="phone",
        service_code="svc",
        phone=None,
        email=None,
        language="ar",
        revision=1,
        personal_key=None,
    )
    with pytest.raises(ValueError):
        fresh.record_sent(message_id="m", sent_at=NOW)
    assert survey.invited


# The logged outbox ------------------------------------------------------------------------


def an_invitation(case_id: UUID | None = None) -> Invitation:
    case_id = case_id or uuid4()
    return Invitation(
        message_id=f"survey-invitation:{case_id}",
        case_id=case_id,
        case_ref="SDR-1448-000001",
        association_id="sidr",
        channel="phone",
        stage="delivered",
        contact=Contact(phone="+966500000001"),
        language="ar",
        text={"ar": "نص LINK", "en": "text LINK"},
        link="LINK",
        invited_at=NOW,
    )


def outbox_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_the_logged_outbox_writes_one_json_line_per_message(tmp_path: Path) -> None:
    path = tmp_path / "out" / "surveys-outbox.jsonl"
    sealer = keyring_sealer(tmp_path)
    outbox = LoggedOutbox(path, sealer)
    key_id = sealer.keys.key_for("sidr", "1000000008")  # type: ignore[attr-defined]
    first = replace(an_invitation(), personal_key=key_id)
    second = replace(an_invitation(), personal_key=key_id)

    outbox.send(first)
    outbox.send(second)

    lines = outbox_lines(path)
    assert [line["message_id"] for line in lines] == [first.message_id, second.message_id]
    assert opened_contact(lines[0], sealer) == {"phone": "+966500000001", "email": None}
    assert lines[0]["text"]["ar"] == "نص LINK"
    assert lines[0]["channel"] == "phone" and lines[0]["link"] == "LINK"


def test_the_logged_outbox_holds_the_contact_only_sealed_and_is_made_0600(
    tmp_path: Path,
) -> None:
    path = tmp_path / "out" / "surveys-outbox.jsonl"
    sealer = keyring_sealer(tmp_path)
    key_id = sealer.keys.key_for("sidr", "1000000008")  # type: ignore[attr-defined]
    contact = Contact(phone="+966500000001", email="عبدالله@example.org")
    LoggedOutbox(path, sealer).send(
        replace(an_invitation(), contact=contact, personal_key=key_id)
    )

    assert_no_plaintext(path, ["+966500000001", "500000001", "عبدالله@example.org", "عبدالله"])
    [line] = outbox_lines(path)
    assert is_sealed(line["contact"]) and line["contact"]["key"] == key_id
    assert "personal_key" not in line  # the sealed value names its key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    # Invitation links are still read from it (tests and the simulator do).
    assert invitation_links(path) == {line["case_id"]: "LINK"}


def test_the_logged_outbox_leaves_out_a_contact_it_has_no_key_to_seal_with(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.jsonl"
    LoggedOutbox(path, keyring_sealer(tmp_path)).send(an_invitation())  # no personal_key
    LoggedOutbox(tmp_path / "other.jsonl").send(an_invitation())  # no keyring

    assert_no_plaintext([path, tmp_path / "other.jsonl"], ["+966500000001"])
    assert outbox_lines(path)[0]["contact"] is None


def test_the_logged_outbox_sends_a_message_id_once_even_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "outbox.jsonl"
    invitation = an_invitation()
    LoggedOutbox(path).send(invitation)
    LoggedOutbox(path).send(invitation)  # a new process: crash between send and record
    assert len(outbox_lines(path)) == 1


def test_a_torn_line_left_by_a_crash_is_not_a_sent_message(tmp_path: Path) -> None:
    path = tmp_path / "outbox.jsonl"
    invitation = an_invitation()
    path.write_text('{"message_id": "survey-invi', encoding="utf-8")

    LoggedOutbox(path).send(invitation)

    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["message_id"] == invitation.message_id


# The application and the dispatcher, on the in-memory store --------------------------------


@pytest.fixture
def app() -> SurveysApplication:
    return SurveysApplication(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=FrozenClock(NOW), packs=PACKS
    )


_positions = itertools.count(1)


def handle(app: SurveysApplication, handler: Any, event: Any) -> None:
    processing = ProcessingEvent(tracking=Tracking("nats:KHIDMA", next(_positions)))
    handler(event, processing)
    app.record_processing(processing)


def received(association_id: str = "sidr", **applicant: Any) -> RequestReceived:
    event_id = uuid4()
    return builders.request_received(
        event_id=event_id,
        occurred_at=NOW,
        association_id=association_id,
        case_ref="SDR-1448-000007",
        channel="phone",
        channel_ref=f"call-{event_id}",
        service_code=PACKS["sidr"].services[0].code,
        applicant=Applicant(
            **{
                "national_id": "1000000001",
                "name": "Applicant",
                "phone": "+966500000007",
                **applicant,
            }
        ),
        fields={"language": "en"},
    )


def delivered(request: RequestReceived, officer: str = "officer-42") -> ServiceDelivered:
    return builders.service_delivered(
        request,
        occurred_at=NOW,
        service_code=request.payload.service_code,
        delivered="x",
        delivered_by=officer,
    )


def rejected(request: RequestReceived) -> CommitteeDecided:
    return builders.committee_decided(
        request, occurred_at=NOW, decision="rejected", reasons=["r"]
    )


def invited_case(app: SurveysApplication, request: RequestReceived) -> UUID:
    handle(app, app.on_request_received, request)
    handle(app, app.on_service_delivered, delivered(request))
    return request.case_id


def test_the_invitation_to_send_reaches_the_applicant_on_their_channel(
    app: SurveysApplication,
) -> None:
    request = received(phone="+966500000009", email="a@example.org")
    case_id = invited_case(app, request)
    survey: Survey = app.repository.get(case_id)

    invitation = app.invitation_to_send(case_id, BASE_URL)

    assert invitation is not None
    assert invitation.channel == "phone"
    assert invitation.contact == Contact(phone="+966500000009", email="a@example.org")
    assert invitation.language == "en"
    assert invitation.link == f"{BASE_URL}/surveys/{survey.token}"
    assert invitation.text["en"].endswith(invitation.link)
    assert PACKS["sidr"].name.ar in invitation.text["ar"]
    assert invitation.message_id == f"survey-invitation:{case_id}"
    assert not invitation.generic_text


def test_an_invitation_recorded_as_sent_is_not_offered_again(app: SurveysApplication) -> None:
    case_id = invited_case(app, received())
    invitation = app.invitation_to_send(case_id, BASE_URL)
    assert invitation is not None

    app.record_sent(case_id, invitation.message_id, 7)
    app.record_sent(case_id, invitation.message_id, 7)  # another dispatcher, same position

    assert app.invitation_to_send(case_id, BASE_URL) is None
    assert app.dispatch_position() == 7
    survey: Survey = app.repository.get(case_id)
    assert survey.sent_at == NOW


def test_an_association_without_a_pack_does_not_crash_the_invitation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = SurveysApplication(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=FrozenClock(NOW), packs={}
    )
    case_id = invited_case(app, received())

    with caplog.at_level(logging.WARNING):
        invitation = app.invitation_to_send(case_id, BASE_URL)

    assert invitation is not None and invitation.generic_text
    assert invitation.text["ar"] and invitation.text["en"].endswith(invitation.link)
    assert "no policy pack" in caplog.text


def test_the_applicant_sees_the_survey_until_answering_then_it_is_gone(
    app: SurveysApplication,
) -> None:
    case_id = invited_case(app, received())
    token = app.repository.get(case_id).token

    form = app.survey_for(case_id, token)
    assert form["association"]["name"]["en"] == PACKS["sidr"].name.en
    assert form["stage"] == "delivered"
    with pytest.raises(NotFound):
        app.survey_for(case_id, "not-the-token")

    app.answer(case_id, token=token, ratings=Ratings(satisfaction=3), comment=None, anonymous=True)

    with pytest.raises(SurveyClosed) as closed:
        app.survey_for(case_id, token)
    assert refusal_status(closed.value) == 410
    assert closed.value.en and closed.value.ar


class RecordingSender:
    def __init__(self, fail: int = 0):
        self.sent: list[Invitation] = []
        self.fail = fail

    def send(self, invitation: Invitation) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("the channel is down")
        self.sent.append(invitation)


def test_the_dispatcher_sends_each_invitation_once_across_restarts(
    app: SurveysApplication,
) -> None:
    cases = [invited_case(app, received()) for _ in range(3)]

    async def scenario() -> tuple[RecordingSender, RecordingSender]:
        store = StoreRunner()
        try:
            first = RecordingSender()
            dispatcher = InvitationDispatcher(app, store, first, base_url=BASE_URL)
            await dispatcher.dispatch_batch()
            await dispatcher.dispatch_batch()  # nothing new
            # A restart: a new dispatcher resumes from the recorded position.
            later = invited_case(app, received())
            second = RecordingSender()
            restarted = InvitationDispatcher(app, store, second, base_url=BASE_URL)
            restarted.position = await store.run(app.dispatch_position)
            await restarted.dispatch_batch()
            # Even from the very beginning, nothing already sent is sent again.
            replay = InvitationDispatcher(app, store, second, base_url=BASE_URL)
            await replay.dispatch_batch()
            assert [i.case_id for i in second.sent] == [later]
            return first, second
        finally:
            store.close()

    first, _ = asyncio.run(scenario())
    assert [i.case_id for i in first.sent] == cases


def test_a_failing_channel_records_nothing_and_the_invitation_is_sent_later(
    app: SurveysApplication,
) -> None:
    case_id = invited_case(app, received())

    async def scenario() -> RecordingSender:
        store = StoreRunner()
        try:
            sender = RecordingSender(fail=1)
            dispatcher = InvitationDispatcher(app, store, sender, base_url=BASE_URL)
            with pytest.raises(ConnectionError):
                await dispatcher.dispatch_batch()
            assert app.invitation_to_send(case_id, BASE_URL) is not None
            await dispatcher.dispatch_batch()
            return sender
        finally:
            store.close()

    sender = asyncio.run(scenario())
    assert [i.case_id for i in sender.sent] == [case_id]
    assert app.invitation_to_send(case_id, BASE_URL) is None


def test_the_dispatcher_run_loop_retries_after_a_failure(app: SurveysApplication) -> None:
    case_id = invited_case(app, received())

    async def scenario() -> RecordingSender:
        store = StoreRunner()
        sender = RecordingSender(fail=2)
        dispatcher = InvitationDispatcher(
            app, store, sender, base_url=BASE_URL, poll_interval=0.01
        )
        task = asyncio.create_task(dispatcher.run())
        try:
            for _ in range(500):
                if sender.sent:
                    break
                await asyncio.sleep(0.01)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            store.close()
        return sender

    assert [i.case_id for i in asyncio.run(scenario()).sent] == [case_id]


# What is stored never names the officer ------------------------------------------------------


def test_no_officer_is_ever_stored_with_a_survey(app: SurveysApplication) -> None:
    request = received()
    handle(app, app.on_request_received, request)
    handle(app, app.on_service_delivered, delivered(request, officer="officer-secret-7"))
    survey: Survey = app.repository.get(request.case_id)
    assert survey.token is not None
    app.record_sent(request.case_id, "m", 1)
    app.answer(
        request.case_id, token=survey.token, ratings=Ratings(satisfaction=5), comment=None,
        anonymous=True,
    )

    stored = app.recorder.select_events(request.case_id)
    assert stored
    assert all(b"officer" not in record.state for record in stored)


# Results by stage ------------------------------------------------------------------------------


class Views:
    """The projector's side of a view transaction, in memory."""

    def __init__(self) -> None:
        self.docs: dict[tuple[str, str], dict[str, Any]] = {}

    def get(self, view: str, key: str) -> dict[str, Any] | None:
        doc = self.docs.get((view, key))
        return None if doc is None else json.loads(json.dumps(doc))

    def put(self, view: str, key: str, doc: dict[str, Any]) -> None:
        self.docs[(view, key)] = json.loads(json.dumps(doc, default=str))

    def all(self, view: str) -> list[dict[str, Any]]:
        return [doc for (name, _), doc in sorted(self.docs.items()) if name == view]


def answered_events(stage: str, satisfaction: int, recommend: int | None = None) -> list[Any]:
    survey = Survey(
        case_id=uuid4(),
        association_id="sidr",
        case_ref="r",
        correlation_id=uuid4(),
        channel="website",
        service_code="svc",
        phone=None,
        email=None,
        language="ar",
        revision=1,
        personal_key=None,
    )
    survey.invite(stage=stage, causation_id=uuid4(), token=uuid4().hex, invited_at=NOW)
    survey.record_sent(message_id="m", sent_at=NOW + timedelta(minutes=1))
    anonymous = survey.answer(
        token=survey.token or "",
        event_id=uuid4(),
        ratings=Ratings(satisfaction=satisfaction, recommend=recommend),
        comment=None,
        anonymous=True,
        answered_at=NOW + timedelta(days=1),
    )
    assert anonymous is not None
    return [*survey.collect_events(), *anonymous.collect_events()]


def test_results_by_stage_never_let_a_lone_rejection_be_subtracted_from_the_total() -> None:
    # Five delivered answers averaging 4.6 and one rejection rated 1: the total is
    # six at 4.0, and 6 x 4.0 - 5 x 4.6 would be the rejected applicant's rating.
    views = Views()
    for satisfaction, recommend in ((5, 10), (5, 9), (5, 9), (4, 7), (4, None)):
        for event in answered_events("delivered", satisfaction, recommend):
            project(event, views)  # type: ignore[arg-type]
    for event in answered_events("rejected", 1, 0):
        project(event, views)  # type: ignore[arg-type]

    assert "stage" in DIMENSIONS and "officer" not in str(DIMENSIONS)
    by_stage = group_results("stage", tallies(views.all(RESULTS), "stage"))
    [total] = group_results("association_id", tallies(views.all(RESULTS), "association_id"))

    assert (total["answers"], total["average_satisfaction"]) == (6, 4.0)
    assert total["recommend"] == {
        "suppressed": False,
        "answers": 5,
        "average": 7.0,
        "net_promoter_score": 40.0,  # 10, 9, 9 promote; 7 is passive; 0 detracts
    }
    assert [row["stage"] for row in by_stage] == ["delivered", "rejected"]
    for row in by_stage:
        assert row["suppressed"] is True and "answers" not in row and "recommend" not in row
        assert row["why"]["en"] and row["why"]["ar"]
    assert [row["why"]["code"] for row in by_stage] == [
        "protects_a_smaller_group",
        "too_few_answers",
    ]


def test_the_invitations_view_shows_every_date_in_both_calendars() -> None:
    views = Views()
    events = answered_events("delivered", 5)
    for event in events:
        project(event, views)  # type: ignore[arg-type]

    doc = views.all(SURVEYS)[0]
    assert doc["sent"] is True and doc["answered"] is True
    for name in ("invited_at", "sent_at", "answered_at"):
        display = doc[f"{name}_display"]
        assert display["hijri"] and display["gregorian"] and display["ar"] and display["en"]
    assert doc["answered_at_display"]["gregorian"] == "2026-11-22"
    assert views.all(TOKENS) == [{"case_id": doc["case_id"]}]
    assert "phone" not in doc and "email" not in doc


def test_refusals_of_the_survey_are_bilingual() -> None:
    survey = invited()
    with pytest.raises(Refused) as refused:
        survey.answer(
            token="wrong",
            event_id=uuid4(),
            ratings=Ratings(satisfaction=1),
            comment=None,
            anonymous=True,
            answered_at=NOW,
        )
    assert refused.value.en and refused.value.ar


def test_a_rejection_invitation_is_sent_too(app: SurveysApplication) -> None:
    request = received()
    handle(app, app.on_request_received, request)
    handle(app, app.on_committee_decided, rejected(request))
    invitation = app.invitation_to_send(request.case_id, BASE_URL)
    assert invitation is not None and invitation.stage == "rejected"


# A corrected request (RequestReceived published again with the next revision) ----------------


def revision(request: RequestReceived, number: int, **changes: Any) -> RequestReceived:
    """The request published again, whole, at `number`, with the applicant's corrections."""
    applicant = request.payload.applicant.model_copy(
        update={k: v for k, v in changes.items() if k in ("phone", "email")}
    )
    payload = request.payload.model_copy(
        update={
            **{k: v for k, v in changes.items() if k in ("channel", "service_code")},
            "applicant": applicant,
            "revision": number,
            "corrects": uuid4(),
        }
    )
    return request.model_copy(update={"event_id": uuid4(), "payload": payload})


def test_a_corrected_request_updates_contact_channel_and_service_without_a_new_survey(
    app: SurveysApplication,
) -> None:
    first = received(phone="0500000001")
    other_service = PACKS["sidr"].services[1].code
    handle(app, app.on_request_received, first)

    handle(
        app,
        app.on_request_received,
        revision(
            first, 2, phone="0509999999", email="new@example.org", channel="website",
            service_code=other_service,
        ),
    )
    handle(app, app.on_service_delivered, delivered(first))

    survey: Survey = app.repository.get(first.case_id)
    assert (survey.revision, survey.channel, survey.service_code) == (2, "website", other_service)
    assert survey.version == 3  # registered, revised, invited: one survey, one invitation
    invitation = app.invitation_to_send(first.case_id, BASE_URL)
    assert isinstance(invitation, Invitation)
    assert invitation.contact == Contact(phone="+966509999999", email="new@example.org")
    assert invitation.channel == "website"


def test_an_earlier_or_repeated_revision_changes_nothing(app: SurveysApplication) -> None:
    first = received(phone="0500000001")
    third = revision(first, 3, phone="0500000003")
    handle(app, app.on_request_received, first)
    handle(app, app.on_request_received, third)
    version = app.repository.get(first.case_id).version

    handle(app, app.on_request_received, revision(first, 2, phone="0500000002"))
    handle(app, app.on_request_received, third)  # redelivered
    handle(app, app.on_request_received, revision(first, 3, phone="0500000004"))
    handle(app, app.on_request_received, first)

    survey: Survey = app.repository.get(first.case_id)
    assert survey.version == version
    assert (survey.revision, survey.phone) == (3, "0500000003")


def test_a_request_first_seen_at_a_later_revision_ignores_the_earlier_one(
    app: SurveysApplication,
) -> None:
    first = received(phone="0500000001")
    handle(app, app.on_request_received, revision(first, 2, phone="0500000002"))
    handle(app, app.on_request_received, first)

    survey: Survey = app.repository.get(first.case_id)
    assert (survey.version, survey.revision, survey.phone) == (1, 2, "0500000002")


def test_a_correction_after_the_invitation_keeps_its_token_and_sends_to_the_new_contact(
    app: SurveysApplication,
) -> None:
    first = received(phone="0500000001")
    case_id = invited_case(app, first)
    token = app.repository.get(case_id).token

    handle(app, app.on_request_received, revision(first, 2, phone="0500000002"))

    invitation = app.invitation_to_send(case_id, BASE_URL)
    assert isinstance(invitation, Invitation)
    assert invitation.contact.phone == "+966500000002"
    assert invitation.link.endswith(f"/surveys/{token}")


# Sending to a contact a channel can use ------------------------------------------------------


def test_the_invitation_carries_the_phone_number_in_e164(app: SurveysApplication) -> None:
    case_id = invited_case(app, received(phone="050 123 4567"))

    invitation = app.invitation_to_send(case_id, BASE_URL)

    assert isinstance(invitation, Invitation)
    assert invitation.contact == Contact(phone="+966501234567", email=None)


def test_an_unreadable_number_is_left_out_and_the_email_beside_it_is_used(
    app: SurveysApplication,
) -> None:
    case_id = invited_case(app, received(phone="call after 5", email=" a@example.org "))

    invitation = app.invitation_to_send(case_id, BASE_URL)

    assert isinstance(invitation, Invitation)
    assert invitation.contact == Contact(phone=None, email="a@example.org")


def dispatch_once(app: SurveysApplication, sender: RecordingSender) -> None:
    async def scenario() -> None:
        store = StoreRunner()
        try:
            dispatcher = InvitationDispatcher(app, store, sender, base_url=BASE_URL)
            dispatcher.position = await store.run(app.dispatch_position)
            await dispatcher.dispatch_batch()
        finally:
            store.close()

    asyncio.run(scenario())


def projected(app: SurveysApplication) -> Views:
    views = Views()
    for notification in app.read_notifications(1, 10_000):
        project(app.mapper.to_domain_event(notification), views)  # type: ignore[arg-type]
    return views


@pytest.mark.parametrize(
    ("contact", "reason"),
    [
        ({"phone": "12345"}, "unusable_contact"),
        ({"phone": "050 123", "email": "not an address"}, "unusable_contact"),
        ({"phone": None}, "no_contact"),
        ({"phone": "  "}, "no_contact"),
    ],
)
def test_an_invitation_without_a_usable_contact_is_recorded_with_why_instead_of_sent(
    app: SurveysApplication, contact: dict[str, str], reason: str
) -> None:
    case_id = invited_case(app, received(**contact))
    sender = RecordingSender()

    dispatch_once(app, sender)
    dispatch_once(app, sender)  # a restart: not recorded twice

    assert sender.sent == []
    survey: Survey = app.repository.get(case_id)
    assert survey.undeliverable == reason and not survey.sent
    recorded = [
        n for n in app.read_notifications(1, 100) if n.topic.endswith("InvitationUndeliverable")
    ]
    assert len(recorded) == 1
    doc = projected(app).get(SURVEYS, str(case_id))
    assert doc is not None and doc["sent"] is False
    assert doc["undeliverable"]["code"] == reason
    assert doc["undeliverable"]["en"] and doc["undeliverable"]["ar"]
    assert doc["undeliverable_at_display"]["hijri"]


def test_a_corrected_contact_sends_the_invitation_that_could_not_be_sent(
    app: SurveysApplication,
) -> None:
    first = received(phone="not a number")
    case_id = invited_case(app, first)
    sender = RecordingSender()
    dispatch_once(app, sender)
    assert sender.sent == []

    handle(app, app.on_request_received, revision(first, 2, phone="٠٥٠١٢٣٤٥٦٧"))
    dispatch_once(app, sender)

    assert [i.contact.phone for i in sender.sent] == ["+966501234567"]
    assert app.repository.get(case_id).sent
    doc = projected(app).get(SURVEYS, str(case_id))
    assert doc is not None and doc["sent"] is True and doc["undeliverable"] is None
