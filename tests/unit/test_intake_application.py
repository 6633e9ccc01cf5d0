"""Intake's application on the in-memory store: packs, references, completeness, duplicates."""

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from eventsourcing.application import ProcessingEvent
from eventsourcing.persistence import Tracking

from services.intake.application import IntakeApplication, SubmissionRefused
from services.intake.domain import Case, attested_data_hash, dates_as_given
from services.intake.integration import TRANSLATORS, translators
from services.intake.views import CASES, project
from shared.clock import FrozenClock
from shared.dates import from_hijri
from shared.errors import NotFound, Refused
from shared.events import (
    Actor,
    CheckResult,
    Correction,
    Explanation,
    RequestReceived,
    Vote,
)
from shared.http import refusal_status
from shared.personal import Sealer
from shared.personal.requests import open_request
from shared.policy import ServiceDefinition
from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs
from shared.submissions import Submission
from tests import builders, personal_data

pytestmark = pytest.mark.unit

PACKS = load_packs(DEFAULT_POLICIES_DIR)
START = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)  # 1448 AH
ACTOR = {"kind": "adapter", "id": "test"}
OFFICER = {"kind": "officer", "id": "o1", "name": "Officer One", "role": "front_desk"}
APPLICANT = {"national_id": "1000000008", "name": "علي"}
FIELDS = {"planting_site": "وادي حنيفة", "seedling_count": 20}
DOCUMENTS = [{"code": "national_id_card", "number": "1000000008", "expires_on": "2030-01-01"}]


_KEYRING = None


def keyring():
    """One keyring for the module's applications, as a deployment shares one."""
    global _KEYRING
    if _KEYRING is None:
        _KEYRING = personal_data.keyring_of(Path(tempfile.mkdtemp(prefix="khidma-intake-keys-")))
    return _KEYRING


def make_app(clock=None, *, sealed: bool = True) -> IntakeApplication:
    """Intake as main.build() makes it (with the keyring), or, `sealed=False`, as it
    recorded cases before encryption."""
    return IntakeApplication(
        clock=clock or FrozenClock(START),
        packs=PACKS,
        sealer=Sealer(keyring()) if sealed else None,
    )


def submission(**overrides) -> Submission:
    data = {
        "association_id": "sidr",
        "channel": "website",
        "channel_ref": f"form-{uuid4().hex[:6]}",
        "service_code": "seedlings",
        "applicant": APPLICANT,
        "fields": FIELDS,
        "documents": DOCUMENTS,
        "attestation": {"attested": True, "method": "one_time_code"},
    }
    data.update(overrides)
    return Submission(**data)


def published(app: IntakeApplication) -> list:
    """What intake published, as a consumer reads it: the request's personal fields
    opened at the boundary (`open_request`). `sealed()` is what the stream holds."""
    return [opened(event, app) for event in sealed(app)]


def sealed(app: IntakeApplication) -> list:
    topics = set(TRANSLATORS)
    translate = translators(app.sealer)
    return [
        translate[n.topic](app.mapper.to_domain_event(n))
        for n in app.read_notifications(0, 10_000)
        if n.topic in topics
    ]


def opened(event, app: IntakeApplication):
    if not isinstance(event, RequestReceived):
        return event
    request = open_request(event.payload, app.sealer)
    payload = event.payload.model_copy(
        update={
            "applicant": request.applicant,
            "fields": request.fields,
            "documents": request.documents,
            "attestation": request.attestation,
        }
    )
    return event.model_copy(update={"payload": payload})


def decide(app, case_id, decision: str):
    event = builders.committee_decided(
        occurred_at=START,
        case_id=case_id,
        case_ref="x",
        actor=Actor(kind="committee", id="c"),
        decision=decision,
        reasons=["r"],
        votes=[Vote(member="chair", vote="approve")],
        window_days=14,
        within_window=True,
    )
    processing = ProcessingEvent(tracking=Tracking("nats:KHIDMA", app.max_notification_id() + 1000))
    app.on_committee_decided(event, processing)
    app.record_processing(processing)
    return event


@pytest.mark.parametrize(
    "overrides, code, detail",
    [
        ({"association_id": "nowhere"}, "unknown_association", "associations"),
        ({"channel": "branch_office"}, "channel_not_enabled", "enabled_channels"),
        ({"service_code": "food-basket"}, "unknown_service", "catalogue"),
    ],
)
def test_submissions_outside_the_pack_are_refused_and_nothing_is_recorded(overrides, code, detail):
    app = make_app()
    with pytest.raises(SubmissionRefused) as refused:
        app.submit(submission(**overrides), ACTOR)
    assert refused.value.code == code and refusal_status(refused.value) == 422
    assert refused.value.ar and refused.value.en
    assert detail in refused.value.as_dict()
    assert app.max_notification_id() == 0


def test_the_refused_channel_names_the_enabled_ones_in_the_associations_terms():
    app = make_app()
    with pytest.raises(SubmissionRefused) as refused:
        app.submit(submission(channel="branch_office"), ACTOR)
    assert "website" in refused.value.en and "members of the general assembly" in refused.value.en
    assert "أعضاء الجمعية العمومية" in refused.value.ar
    assert refused.value.details["enabled_channels"] == PACKS["sidr"].channels


def test_the_refused_service_lists_the_catalogue():
    app = make_app()
    with pytest.raises(SubmissionRefused) as refused:
        app.submit(submission(service_code="food-basket"), ACTOR)
    assert "seedlings" in refused.value.en and "طلب شتلات أشجار برية" in refused.value.ar


def test_case_references_follow_prefix_hijri_year_and_sequence():
    app = make_app()
    first = app.submit(submission(), ACTOR)
    second = app.submit(submission(applicant={"national_id": "2", "name": "B"}), ACTOR)
    other = app.submit(
        submission(association_id="elites", channel="website", service_code="volunteering",
                   fields={"availability": "weekends"}, documents=[]),
        ACTOR,
    )
    assert (first.case_ref, second.case_ref) == ("SDR-1448-000001", "SDR-1448-000002")
    assert other.case_ref.endswith("-1448-000001") and not other.case_ref.startswith("SDR")


def test_the_sequence_restarts_with_the_hijri_year():
    clock = FrozenClock(START)
    app = make_app(clock)
    assert app.submit(submission(), ACTOR).case_ref == "SDR-1448-000001"
    clock.advance(timedelta(days=360))
    assert app.submit(submission(applicant={"national_id": "3", "name": "C"}), ACTOR).case_ref == "SDR-1449-000001"


def test_a_complete_submission_publishes_one_request_received_with_the_declaration():
    app = make_app()
    result = app.submit(submission(), ACTOR)
    assert result.status == "received" and result.missing == []
    (event,) = published(app)
    assert isinstance(event, RequestReceived)
    assert event.case_id == result.case_id and event.case_ref == result.case_ref
    assert event.payload.documents[0].code == "national_id_card"
    assert event.payload.attestation.data_hash == attested_data_hash(
        {"national_id": "1000000008", "name": "علي", "phone": None, "email": None},
        "seedlings", FIELDS,
        [{"code": "national_id_card", "number": "1000000008", "issued_on": None, "expires_on": "2030-01-01"}],
    )
    assert event.payload.submitted_at == START and event.occurred_at == START


def test_an_incomplete_request_is_not_published_until_it_completes():
    clock = FrozenClock(START)
    app = make_app(clock)
    result = app.submit(submission(fields={"planting_site": "x"}, documents=[], attestation=None), ACTOR)
    assert result.status == "incomplete"
    assert {(m["kind"], m["code"]) for m in result.missing} == {
        ("field", "seedling_count"), ("document", "national_id_card"), ("attestation", "declaration"),
    }
    assert published(app) == []

    clock.advance(timedelta(hours=2))
    step = app.add_information(result.case_id, fields={"seedling_count": 5}, documents=DOCUMENTS, actor=ACTOR)
    assert [m["code"] for m in step.missing] == ["declaration"] and published(app) == []

    clock.advance(timedelta(hours=1))
    done = app.add_information(
        result.case_id, attestation={"attested": True, "method": "paper_scan", "attested_by": "علي"}, actor=ACTOR
    )
    assert done.status == "received" and done.missing == []
    (event,) = published(app)
    assert event.payload.submitted_at == START
    assert event.occurred_at == START + timedelta(hours=3)
    assert event.payload.fields == {"planting_site": "x", "seedling_count": 5}
    assert event.payload.attestation.method == "paper_scan"


def test_an_attestation_with_a_wrong_hash_keeps_the_case_incomplete():
    app = make_app()
    result = app.submit(submission(attestation={"attested": True, "method": "in_person", "data_hash": "0" * 64}), ACTOR)
    assert [m["code"] for m in result.missing] == ["declaration_outdated"]
    assert published(app) == []


def test_the_eligibility_preview_says_why_and_records_nothing():
    app = make_app()
    no = app.preview_eligibility("elites", "scholarship", {"gpa": 4.0})
    assert no["eligible"] is False
    assert no["reasons"][0]["en"].startswith("The scholarship needs a GPA")
    assert no["service"]["name"]["ar"] == "منحة علمية"
    assert {m["code"] for m in no["missing"]} == {"field_of_study", "national_id_card", "transcript"}
    yes = app.preview_eligibility("elites", "scholarship", {"gpa": 4.8, "field_of_study": "CS"})
    assert yes["eligible"] is True and yes["reasons"] == []
    members = app.preview_eligibility("sidr", "member-service", {"request_details": "x"})
    assert members["members_only"] and "good standing" in members["notes"][0]["en"]
    assert app.max_notification_id() == 0
    with pytest.raises(SubmissionRefused):
        app.preview_eligibility("elites", "nope", {})


def test_a_second_open_request_for_the_same_service_is_linked_not_created():
    app = make_app()
    first = app.submit(submission(channel="website", channel_ref="w-1"), ACTOR)
    again = app.submit(submission(channel="phone", channel_ref="call-7"), ACTOR)
    assert again.duplicate and again.linked and again.case_id == first.case_id
    assert again.case_ref == first.case_ref
    case: Case = app.repository.get(first.case_id)
    assert case.linked_channels == [{"channel": "phone", "channel_ref": "call-7"}]
    # The linked channel reference, repeated, is recognised as the same request.
    repeat = app.submit(submission(channel="phone", channel_ref="call-7"), ACTOR)
    assert repeat.duplicate and repeat.case_id == first.case_id
    assert len(published(app)) == 1
    # Another service, or another applicant, is a new request.
    other = app.submit(submission(applicant={"national_id": "2", "name": "B"}), ACTOR)
    assert not other.duplicate


def test_the_open_request_is_released_when_the_committee_rejects():
    app = make_app()
    first = app.submit(submission(), ACTOR)
    decide(app, first.case_id, "rejected")
    again = app.submit(submission(), ACTOR)
    assert not again.duplicate and again.case_id != first.case_id


def test_the_open_request_is_released_when_the_service_is_delivered():
    app = make_app()
    first = app.submit(submission(), ACTOR)
    decide(app, first.case_id, "approved")
    assert app.submit(submission(), ACTOR).duplicate
    app.deliver(first.case_id, delivered="20 seedlings", delivered_by="o1", actor=OFFICER)
    again = app.submit(submission(), ACTOR)
    assert not again.duplicate


def test_the_same_decision_twice_is_noted_once():
    app = make_app()
    first = app.submit(submission(), ACTOR)
    event = decide(app, first.case_id, "approved")
    processing = ProcessingEvent(tracking=Tracking("nats:KHIDMA", 99999))
    app.on_committee_decided(event, processing)
    assert processing.events == []


def test_an_incomplete_case_can_be_referred_and_the_referral_is_published_first():
    app = make_app()
    result = app.submit(submission(documents=[]), ACTOR)
    app.refer_to_researcher(result.case_id, reason="unclear", questions=["which ID?"], referred_by="o1", actor=OFFICER)
    assert [e.event_type for e in published(app)] == ["ReferredToResearcher"]
    app.add_information(result.case_id, documents=DOCUMENTS,
                        attestation={"attested": True, "method": "in_person"}, actor=ACTOR)
    events = published(app)
    assert [e.event_type for e in events] == ["ReferredToResearcher", "RequestReceived"]
    assert events[0].correlation_id == events[1].event_id == events[1].correlation_id


def test_the_hijri_year_of_the_reference_is_the_year_in_riyadh():
    # 1 Muharram 1449 is 6 June 2027; 21:30 UTC on the 5th is already the 6th in Riyadh.
    app = make_app(FrozenClock(datetime(2027, 6, 5, 21, 30, tzinfo=UTC)))
    assert app.submit(submission(), ACTOR).case_ref == "SDR-1449-000001"
    before = make_app(FrozenClock(datetime(2027, 6, 5, 20, 30, tzinfo=UTC)))
    assert before.submit(submission(), ACTOR).case_ref == "SDR-1448-000001"


def test_the_result_gives_the_hash_a_declaration_of_the_current_data_must_carry():
    app = make_app()
    result = app.submit(submission(attestation=None), ACTOR)
    assert [m["code"] for m in result.missing] == ["declaration"]
    done = app.add_information(
        result.case_id,
        attestation={"attested": True, "method": "in_person", "data_hash": result.data_hash},
        actor=ACTOR,
    )
    assert done.missing == [] and done.status == "received"


# Corrections after verification ---------------------------------------------------------

ID_CORRECTION = Correction(
    field="national_id",
    ar="رقم الهوية غير صحيح: خانة التحقق لا تطابق.",
    en="The national ID has a wrong check digit.",
)


def verify(app, case_id, outcome="discrepancies", *, revision=1, corrections=(ID_CORRECTION,), **extra):
    event = builders.data_verified(
        occurred_at=START,
        case_id=case_id,
        case_ref="x",
        actor=Actor(kind="officer", id="v1"),
        outcome=outcome,
        checks=[CheckResult(name="national_id_format", passed=outcome == "verified")],
        officer="v1",
        corrections=list(corrections) if outcome == "discrepancies" else [],
        revision=revision,
        **extra,
    )
    processing = ProcessingEvent(tracking=Tracking("nats:KHIDMA", app.max_notification_id() + 1000))
    app.on_data_verified(event, processing)
    app.record_processing(processing)
    return event


def test_a_corrected_request_is_published_again_whole_with_the_next_revision():
    clock = FrozenClock(START)
    app = make_app(clock)
    result = app.submit(submission(), ACTOR)
    verified = verify(app, result.case_id)
    clock.advance(timedelta(days=2))
    corrected = app.correct(
        app.case_id_of(result.case_ref),
        applicant={"name": "علي حسن"},
        attestation={"attested": True, "method": "one_time_code"},
        actor=ACTOR,
    )
    assert corrected.status == "received" and corrected.revision == 2 and corrected.missing == []
    first, second = published(app)
    assert (first.payload.revision, first.payload.corrects) == (1, None)
    assert isinstance(second, RequestReceived)
    assert second.payload.revision == 2 and second.payload.corrects == verified.event_id
    assert (second.case_id, second.case_ref) == (first.case_id, first.case_ref)
    assert second.event_id != first.event_id
    assert second.correlation_id == first.event_id == first.correlation_id
    assert second.causation_id is None
    assert second.payload.submitted_at == START + timedelta(days=2) == second.occurred_at
    assert second.payload.applicant.name == "علي حسن"
    assert second.payload.fields == FIELDS and second.payload.documents == first.payload.documents
    assert second.payload.attestation.data_hash == corrected.data_hash


def test_a_correction_waits_for_the_declaration_given_later_as_information():
    app = make_app()
    result = app.submit(submission(), ACTOR)
    verify(app, result.case_id)
    waiting = app.correct(result.case_id, fields={"seedling_count": 25}, actor=ACTOR)
    assert waiting.status == "correcting" and not waiting.as_dict()["complete"]
    assert [m["code"] for m in waiting.missing] == ["declaration"]
    assert len(published(app)) == 1
    assert app.case_status(result.case_id)["status"] == "correcting"
    done = app.add_information(
        result.case_id,
        attestation={"attested": True, "method": "in_person", "data_hash": waiting.data_hash},
        actor=ACTOR,
    )
    assert done.status == "received" and done.revision == 2
    second = published(app)[-1]
    assert second.payload.revision == 2 and second.payload.fields["seedling_count"] == 25


def test_corrections_are_refused_when_verification_did_not_ask_for_them():
    app = make_app()
    result = app.submit(submission(), ACTOR)
    verify(app, result.case_id, "verified")
    before = app.max_notification_id()
    with pytest.raises(Refused) as refused:
        app.correct(result.case_id, applicant={"name": "x"}, actor=ACTOR)
    assert refused.value.code == "no_corrections_asked" and refused.value.ar
    assert app.max_notification_id() == before


def test_a_corrected_national_id_moves_the_open_request_with_it():
    app = make_app()
    result = app.submit(submission(applicant={"national_id": "1000000001", "name": "علي"}), ACTOR)
    verify(app, result.case_id)
    app.correct(
        result.case_id,
        applicant={"national_id": "1000000008"},
        attestation={"attested": True, "method": "one_time_code"},
        actor=ACTOR,
    )
    assert published(app)[-1].payload.applicant.national_id == "1000000008"
    # The corrected ID holds the open request; the mistyped one holds none.
    again = app.submit(submission(applicant={"national_id": "1000000008", "name": "علي"}), ACTOR)
    assert again.duplicate and again.linked and again.case_id == result.case_id
    other = app.submit(submission(applicant={"national_id": "1000000001", "name": "آخر"}), ACTOR)
    assert not other.duplicate and other.case_id != result.case_id


def test_a_national_id_cannot_be_corrected_to_one_with_an_open_request():
    app = make_app()
    mine = app.submit(submission(applicant={"national_id": "1000000001", "name": "علي"}), ACTOR)
    theirs = app.submit(submission(applicant={"national_id": "1000000008", "name": "سعد"}), ACTOR)
    verify(app, mine.case_id)
    before = app.max_notification_id()
    with pytest.raises(Refused) as refused:
        app.correct(mine.case_id, applicant={"national_id": "1000000008"}, actor=ACTOR)
    assert refused.value.code == "already_open"
    assert theirs.case_ref in refused.value.en and theirs.case_ref in refused.value.ar
    assert app.max_notification_id() == before
    assert app.submit(submission(applicant={"national_id": "1000000001", "name": "علي"}), ACTOR).case_id == mine.case_id


def test_a_late_verification_of_the_first_revision_does_not_reopen_corrections():
    app = make_app()
    result = app.submit(submission(), ACTOR)
    verify(app, result.case_id)
    app.correct(result.case_id, applicant={"name": "علي حسن"},
                attestation={"attested": True, "method": "one_time_code"}, actor=ACTOR)
    before = app.max_notification_id()
    verify(app, result.case_id, revision=1)
    assert app.max_notification_id() == before
    status = app.case_status(result.case_id)
    assert status["status"] == "received" and status["revision"] == 2 and status["corrections"] == []
    with pytest.raises(Refused) as refused:
        app.correct(result.case_id, applicant={"name": "x"}, actor=ACTOR)
    assert refused.value.code == "no_corrections_asked"


def test_the_status_tells_what_to_correct_and_why_not_eligible():
    app = make_app()
    result = app.submit(submission(), ACTOR)
    verify(app, result.case_id)
    status = app.case_status(result.case_id)
    assert status["status"] == "discrepancies" and status["revision"] == 1
    assert status["corrections"] == [ID_CORRECTION.model_dump()]
    other = app.submit(submission(applicant={"national_id": "2", "name": "B"}), ACTOR)
    verify(app, other.case_id, "ineligible", ineligible_rule="members_only",
           ineligible_reason=Explanation(ar="الخدمة للأعضاء فقط", en="Members only"))
    assert app.case_status(other.case_id)["ineligible_reason"] == {"ar": "الخدمة للأعضاء فقط", "en": "Members only"}
    older = app.submit(submission(applicant={"national_id": "3", "name": "C"}), ACTOR)
    verify(app, older.case_id, "ineligible", ineligible_rule="Members only")
    assert app.case_status(older.case_id)["ineligible_reason"] == {"ar": "Members only", "en": "Members only"}


def test_the_phone_is_published_in_e164_and_the_declaration_covers_it():
    app = make_app()
    result = app.submit(submission(applicant={**APPLICANT, "phone": "050 123 4567"}), ACTOR)
    (event,) = published(app)
    assert event.payload.applicant.phone == "+966501234567"
    assert event.payload.attestation.data_hash == attested_data_hash(
        event.payload.applicant.model_dump(mode="json"), "seedlings", FIELDS,
        [d.model_dump(mode="json") for d in event.payload.documents],
    ) == result.data_hash
    app.submit(submission(applicant={"national_id": "2", "name": "B", "phone": "call me"}), ACTOR)
    assert published(app)[-1].payload.applicant.phone == "call me"


def test_a_case_is_found_by_its_reference_in_the_store():
    app = make_app()
    first = app.submit(submission(), ACTOR)
    second = app.submit(submission(applicant={"national_id": "2", "name": "B"}), ACTOR)
    assert app.case_id_of(second.case_ref) == second.case_id
    assert app.case_id_of(first.case_ref.lower()) == first.case_id
    assert app.case_id_of(str(first.case_id)) == first.case_id
    for unknown in ("SDR-1448-000003", "XYZ-1448-000001", "SDR-1447-000001", "nonsense"):
        with pytest.raises(NotFound):
            app.case_id_of(unknown)


def read_model(app: IntakeApplication, case_id) -> dict:
    """The case as the read model holds it after projecting the whole store."""

    class Views:
        def __init__(self):
            self.docs: dict = {}

        def get(self, view, key):
            return self.docs.get((view, key))

        def put(self, view, key, doc):
            self.docs[(view, key)] = doc

    views = Views()
    for notification in app.read_notifications(0, 10_000):
        project(app.mapper.to_domain_event(notification), views)  # type: ignore[arg-type]
    return views.docs[(CASES, str(case_id))]


def test_the_read_model_shows_the_corrections_until_the_corrected_request_is_sent():
    app = make_app()
    result = app.submit(submission(), ACTOR)
    verify(app, result.case_id)
    doc = read_model(app, result.case_id)
    assert doc["status"] == "discrepancies" and doc["revision"] == 1
    assert doc["corrections"] == [ID_CORRECTION.model_dump()]
    app.correct(result.case_id, applicant={"national_id": "1000000008"}, actor=ACTOR)
    doc = read_model(app, result.case_id)
    assert doc["status"] == "correcting" and doc["corrections"]
    assert [m["code"] for m in doc["missing"]] == ["declaration"]
    app.add_information(result.case_id, attestation={"attested": True, "method": "in_person"}, actor=ACTOR)
    doc = read_model(app, result.case_id)
    assert doc["status"] == "received" and doc["revision"] == 2
    assert doc["corrections"] == [] and doc["missing"] == []
    assert [h["what"] for h in doc["history"]][-5:] == [
        "verification:discrepancies", "corrected", "information_requested", "information_added",
        "resubmitted:2",
    ]


def test_the_read_model_explains_an_ineligible_outcome():
    app = make_app()
    result = app.submit(submission(), ACTOR)
    verify(app, result.case_id, "ineligible", ineligible_rule="members_only",
           ineligible_reason=Explanation(ar="الخدمة للأعضاء فقط", en="Members only"))
    doc = read_model(app, result.case_id)
    assert doc["status"] == "ineligible" and doc["corrections"] == []
    assert doc["ineligible_reason"] == {"ar": "الخدمة للأعضاء فقط", "en": "Members only"}


def test_a_pending_correction_is_not_published_after_the_committee_decided() -> None:
    app = make_app()
    result = app.submit(submission(), ACTOR)
    verify(app, result.case_id)
    waiting = app.correct(result.case_id, fields={"seedling_count": 25}, actor=ACTOR)
    assert waiting.status == "correcting"
    decide(app, result.case_id, "rejected")
    before = len(published(app))
    with pytest.raises(Refused) as refused:
        app.add_information(
            result.case_id,
            attestation={"attested": True, "method": "in_person", "data_hash": waiting.data_hash},
            actor=ACTOR,
        )
    assert refused.value.code == "already_decided" and refused.value.ar
    assert len(published(app)) == before
    assert app.case_status(result.case_id)["status"] == "rejected"


def test_information_and_corrections_cannot_grow_the_request_past_one_message() -> None:
    from shared.submissions import MAX_FIELDS_BYTES

    app = make_app()
    result = app.submit(submission(), ACTOR)
    verify(app, result.case_id)
    chunk = "x" * (MAX_FIELDS_BYTES // 2)  # each call alone is within its limit
    # Only the service's own fields are taken: two of them, each half the limit.
    app.correct(result.case_id, fields={"planting_site": chunk}, actor=ACTOR)
    with pytest.raises(Refused) as refused:
        app.correct(result.case_id, fields={"seedling_count": chunk}, actor=ACTOR)
    assert refused.value.code == "request_too_large"
    with pytest.raises(Refused) as refused:
        app.add_information(result.case_id, fields={"seedling_count": chunk}, actor=ACTOR)
    assert refused.value.code == "request_too_large"


# Dates at the door (decision 28) -------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "code"),
    [
        ({"expires_on": "2080-01-01"}, "date_too_far"),
        ({"expires_on": "2090-06-30"}, "date_too_far"),
        ({"expires_on": "1441-05-20"}, "date_looks_hijri"),
        ({"issued_on": "1441-05-20"}, "date_looks_hijri"),
        ({"issued_on": "2026-11-22", "expires_on": "2030-01-01"}, "date_in_future"),
    ],
)
def test_a_document_whose_dates_cannot_be_real_is_refused_before_anything_is_recorded(
    document, code
) -> None:
    app = make_app()
    given = [{"code": "national_id_card", "number": "1000000008", **document}]
    with pytest.raises(Refused) as refused:
        app.submit(submission(documents=given), ACTOR)
    assert refused.value.code == code
    assert refusal_status(refused.value) == 422
    assert "national_id_card" in refused.value.en and refused.value.ar != refused.value.en
    assert app.max_notification_id() in (0, None)


def test_a_hijri_date_marked_as_such_is_recorded_as_its_gregorian_day() -> None:
    app = make_app()
    given = [{"code": "national_id_card", "number": "1", "issued_on": "1441-05-20h",
              "expires_on": "1455-01-01 هـ"}]
    result = app.submit(submission(documents=given), ACTOR)
    (document,) = app.repository.get(result.case_id).documents
    assert (document["issued_on"], document["expires_on"]) == ("2020-01-15", "2033-04-01")


def test_information_and_corrections_are_judged_at_the_door_too() -> None:
    app = make_app()
    result = app.submit(submission(documents=[]), ACTOR)
    late = [{"code": "national_id_card", "number": "1", "expires_on": "2099-01-01"}]
    with pytest.raises(Refused) as refused:
        app.add_information(result.case_id, documents=late, actor=ACTOR)
    assert refused.value.code == "date_too_far"
    with pytest.raises(Refused) as refused:
        app.correct(result.case_id, documents=late, actor=ACTOR)
    assert refused.value.code == "date_too_far"


def test_a_date_field_is_recorded_as_its_gregorian_day_or_refused() -> None:
    service = ServiceDefinition.model_validate(
        {
            "code": "visit",
            "name": {"ar": "زيارة", "en": "Visit"},
            "required_fields": [
                {"name": "visit_on", "label": {"ar": "يوم الزيارة", "en": "Visit day"}, "kind": "date"}
            ],
        }
    )
    today = START.date()
    fields, documents = dates_as_given(
        service,
        {"visit_on": "1448-06-01h", "note": "1441-05-20"},
        [{"code": "id", "issued_on": "1441-05-20h", "expires_on": None}],
        today,
    )
    assert fields["visit_on"] == from_hijri(1448, 6, 1).isoformat() and fields["note"] == "1441-05-20"
    assert documents == [{"code": "id", "issued_on": "2020-01-15", "expires_on": None}]
    with pytest.raises(Refused) as refused:
        dates_as_given(service, {"visit_on": "2099-01-01"}, [], today)
    assert refused.value.code == "date_too_far"
