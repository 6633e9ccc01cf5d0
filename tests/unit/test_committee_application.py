"""The committee's application on the in-memory store: handlers, sittings, deadlines,
the published event, the read model and the minutes (no broker, no database file)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import ProcessingEvent
from eventsourcing.persistence import Tracking

from services.committee.application import CommitteeApplication
from services.committee.domain import CommitteeCase
from services.committee.integration import TRANSLATORS, committee_decided
from services.committee.views import CASES, project
from shared.clock import FrozenClock
from shared.consumer import RetryLater
from shared.errors import NotFound, Refused
from shared.events import (
    Actor,
    Applicant,
    Attestation,
    CommitteeDecided,
    DataVerified,
    ReferredToResearcher,
    RequestReceived,
    decode_event,
    encode_event,
)
from shared.http import refusal_status
from shared.policy import PolicyPack
from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs
from tests import builders

pytestmark = pytest.mark.unit

RECEIVED_AT = datetime(2025, 3, 2, 9, 30, tzinfo=UTC)
SIDR_WINDOW = 7  # the test pack's own window, unlike the fallback setting below
FALLBACK_WINDOW = 30
PRESENT = ["chair", "member-2", "member-3", "member-4"]


@pytest.fixture(scope="module")
def packs() -> dict[str, PolicyPack]:
    packs = dict(load_packs(DEFAULT_POLICIES_DIR))
    packs["sidr"] = packs["sidr"].model_copy(update={"decision_window_days": SIDR_WINDOW})
    return packs


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(RECEIVED_AT + timedelta(days=2))


@pytest.fixture
def app(clock: FrozenClock, packs: dict[str, PolicyPack]) -> CommitteeApplication:
    return CommitteeApplication(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"},
        clock=clock,
        window_days=FALLBACK_WINDOW,
        packs=packs,
        warning_days=3,
    )


def attestation(attested: bool = True) -> Attestation:
    return Attestation(
        attested=attested,
        attested_by="Applicant",
        attested_at=RECEIVED_AT - timedelta(minutes=5),
        method="one_time_code",
        data_hash="cd" * 32 if attested else None,
    )


def request_received(
    association_id: str = "sidr", attested: bool | None = True, case_id: UUID | None = None
) -> RequestReceived:
    return builders.request_received(
        occurred_at=RECEIVED_AT,
        association_id=association_id,
        case_id=case_id or uuid4(),
        case_ref="SDR-1446-000123",
        service_code="seedlings",
        applicant=Applicant(national_id="1000000001", name="Applicant"),
        attestation=None if attested is None else attestation(attested),
    )


def data_verified(request: RequestReceived, outcome: str = "verified") -> DataVerified:
    return builders.data_verified(
        request, occurred_at=RECEIVED_AT + timedelta(hours=5), outcome=outcome
    )


def referred(request: RequestReceived) -> ReferredToResearcher:
    return builders.referred_to_researcher(
        request,
        occurred_at=RECEIVED_AT - timedelta(hours=1),
        reason="procedures unclear",
        questions=["how long?"],
        referred_by="officer-7",
    )


_positions = iter(range(1, 1_000_000))


def handle(app: CommitteeApplication, handler: Any, event: Any) -> int:
    """Runs a handler as the consumer does; returns how many events it recorded."""
    processing = ProcessingEvent(tracking=Tracking("nats:KHIDMA", next(_positions)))
    handler(event, processing)
    app.record_processing(processing)
    return len(processing.events)


def ready_case(
    app: CommitteeApplication, outcome: str = "verified", **kwargs: Any
) -> RequestReceived:
    request = request_received(**kwargs)
    handle(app, app.on_request_received, request)
    handle(app, app.on_data_verified, data_verified(request, outcome))
    return request


def sitting(app: CommitteeApplication, present: list[str] | None = None) -> UUID:
    return UUID(
        app.convene(association_id="sidr", members_present=present or PRESENT)["sitting_id"]
    )


def cast(app: CommitteeApplication, sitting_id: UUID, case_id: UUID, *kinds: str) -> None:
    for member, kind in zip(PRESENT, kinds):
        app.vote(sitting_id, case_id, member=member, vote=kind)


def refused_code(action: Any) -> str:
    with pytest.raises(Refused) as caught:
        action()
    assert caught.value.en and caught.value.ar, "every refusal is bilingual"
    return caught.value.code


class FakeViews:
    def __init__(self) -> None:
        self.docs: dict[tuple[str, str], dict[str, Any]] = {}
        self.position = 0

    def get(self, view: str, key: str) -> dict[str, Any] | None:
        return self.docs.get((view, key))

    def put(self, view: str, key: str, doc: dict[str, Any]) -> None:
        self.docs[(view, key)] = doc

    def catch_up(self, app: CommitteeApplication) -> None:
        for notification in app.read_notifications(self.position, 1000):
            project(app.mapper.to_domain_event(notification), self)  # type: ignore[arg-type]
            self.position = notification.id

    def doc(self, app: CommitteeApplication, case_id: UUID) -> dict[str, Any]:
        self.catch_up(app)
        found = self.get(CASES, str(case_id))
        assert found is not None
        return found


# The window from the association's pack ---------------------------------------------------


def test_the_deadline_comes_from_the_associations_pack(app: CommitteeApplication) -> None:
    request = request_received()
    handle(app, app.on_request_received, request)
    status = app.case_status(request.case_id)
    deadline = RECEIVED_AT + timedelta(days=SIDR_WINDOW)
    assert status["deadline"] == deadline.isoformat()
    assert status["deadline_display"]["gregorian"] == "2025-03-09"
    assert status["deadline_display"]["hijri"] == "1446-09-09"
    assert "هـ" in status["deadline_display"]["ar"] and "AH" in status["deadline_display"]["en"]


def test_an_association_without_a_pack_gets_the_fallback_window(
    app: CommitteeApplication,
) -> None:
    request = request_received(association_id="no-pack")
    handle(app, app.on_request_received, request)
    deadline = RECEIVED_AT + timedelta(days=FALLBACK_WINDOW)
    assert app.case_status(request.case_id)["deadline"] == deadline.isoformat()


def test_the_same_request_received_twice_opens_one_case(app: CommitteeApplication) -> None:
    request = request_received()
    assert handle(app, app.on_request_received, request) == 2  # registered, request recorded
    assert handle(app, app.on_request_received, request) == 0
    again = request.model_copy(update={"event_id": uuid4()})
    assert handle(app, app.on_request_received, again) == 0
    case: CommitteeCase = app.repository.get(request.case_id)
    assert case.version == 2 and case.request_event_id == request.event_id
    assert case.correlation_id == request.correlation_id
    assert (case.service_code, case.channel) == ("seedlings", "website")


def test_a_verification_before_its_request_is_retried_later(
    app: CommitteeApplication,
) -> None:
    request = request_received()
    verification = data_verified(request)
    with pytest.raises(RetryLater):
        handle(app, app.on_data_verified, verification)
    handle(app, app.on_request_received, request)
    assert handle(app, app.on_data_verified, verification) == 1
    assert app.case_status(request.case_id)["verification_outcome"] == "verified"


def test_a_referral_before_its_request_is_queued_and_merged(app: CommitteeApplication) -> None:
    views = FakeViews()
    request = request_received()
    assert handle(app, app.on_referred_to_researcher, referred(request)) == 2
    doc = views.doc(app, request.case_id)
    assert doc["referral_open"] is True
    assert (doc["association_id"], doc["case_ref"]) == ("sidr", "SDR-1446-000123")
    assert doc["received"] is False and doc["deadline"] is None and doc["on_agenda"] is False
    assert app.case_status(request.case_id)["received"] is False

    app.close_referral(request.case_id, researcher="r-1", answers=["yes"], note="a note")
    handle(app, app.on_request_received, request)
    handle(app, app.on_data_verified, data_verified(request))
    doc = views.doc(app, request.case_id)
    assert doc["received"] is True
    assert doc["deadline"] == (RECEIVED_AT + timedelta(days=SIDR_WINDOW)).isoformat()
    assert doc["referral"]["answered"] is True and "a note" not in str(doc)
    assert doc["on_agenda"] is True


def test_redelivered_verification_and_referral_record_nothing_more(
    app: CommitteeApplication,
) -> None:
    request = request_received()
    handle(app, app.on_request_received, request)
    verification, referral = data_verified(request), referred(request)
    assert handle(app, app.on_data_verified, verification) == 1
    assert handle(app, app.on_data_verified, verification) == 0
    assert handle(app, app.on_referred_to_researcher, referral) == 1
    assert handle(app, app.on_referred_to_researcher, referral) == 0


# Convening a sitting ---------------------------------------------------------------------------


def test_a_sitting_takes_its_quorum_from_the_pack_and_the_clocks_time(
    app: CommitteeApplication, clock: FrozenClock
) -> None:
    status = app.sitting_status(sitting(app, ["chair", "member-2"]))
    assert status["quorum"] == 3 and status["quorate"] is False
    assert status["members_present"] == ["chair", "member-2"]
    assert status["held_at"] == clock.now().isoformat()
    assert status["held_at_display"]["hijri"] == "1446-09-04"
    held_at = datetime(2025, 4, 1, 8, tzinfo=UTC)
    other = app.convene(association_id="sidr", members_present=PRESENT, held_at=held_at)
    assert other["held_at"] == held_at.isoformat() and other["quorate"] is True


def test_unknown_members_and_associations_are_refused(app: CommitteeApplication) -> None:
    assert (
        refused_code(lambda: app.convene(association_id="sidr", members_present=["chair", "stranger"]))
        == "unknown_member"
    )
    assert (
        refused_code(lambda: app.convene(association_id="sidr", members_present=["chair", "chair"]))
        == "duplicate_member"
    )
    with pytest.raises(NotFound) as caught:
        app.convene(association_id="nowhere", members_present=["chair"])
    assert caught.value.code == "unknown_association"
    with pytest.raises(NotFound):
        app.sitting_status(uuid4())


# Votes and recusals -------------------------------------------------------------------------


def test_only_members_present_vote(app: CommitteeApplication) -> None:
    request = ready_case(app)
    sitting_id = sitting(app, ["chair", "member-2", "member-3"])
    vote = lambda member: app.vote(sitting_id, request.case_id, member=member, vote="approve")
    assert refused_code(lambda: vote("member-4")) == "not_present"
    assert refused_code(lambda: vote("stranger")) == "not_present"
    assert vote("chair")["votes"] == [{"member": "chair", "vote": "approve", "dissent_note": None}]


def test_a_later_vote_replaces_the_members_earlier_one(app: CommitteeApplication) -> None:
    request = ready_case(app)
    sitting_id = sitting(app)
    app.vote(sitting_id, request.case_id, member="chair", vote="approve")
    result = app.vote(sitting_id, request.case_id, member="chair", vote="reject")
    assert result["votes"] == [{"member": "chair", "vote": "reject", "dissent_note": None}]


def test_a_recused_member_cannot_vote(app: CommitteeApplication) -> None:
    request = ready_case(app)
    sitting_id = sitting(app)
    result = app.recuse(sitting_id, request.case_id, member="member-2", reason="my cousin")
    assert result["recusals"] == [{"member": "member-2", "reason": "my cousin"}]
    assert "member-2" not in result["voters"]
    assert (
        refused_code(lambda: app.vote(sitting_id, request.case_id, member="member-2", vote="approve"))
        == "member_recused"
    )
    assert (
        refused_code(lambda: app.recuse(sitting_id, request.case_id, member="member-2", reason="x"))
        == "already_recused"
    )
    assert (
        refused_code(lambda: app.recuse(sitting_id, request.case_id, member="member-3", reason=" "))
        == "recusal_reason_required"
    )


def test_a_recusal_withdraws_the_members_earlier_vote(app: CommitteeApplication) -> None:
    request = ready_case(app)
    sitting_id = sitting(app)
    cast(app, sitting_id, request.case_id, "approve", "approve", "reject", "reject")
    result = app.recuse(sitting_id, request.case_id, member="member-2", reason="conflict")
    assert [v["member"] for v in result["votes"]] == ["chair", "member-3", "member-4"]
    # With member-2's approval withdrawn, the rejections are the majority.
    assert (
        refused_code(lambda: app.decide(sitting_id, request.case_id, decision="approved", reasons=["ok"]))
        == "decision_contradicts_votes"
    )
    app.decide(sitting_id, request.case_id, decision="rejected", reasons=["not shown"])
    event = published(app)[-1]
    assert event.payload.recusals == ["member-2"]
    assert [v.member for v in event.payload.votes] == ["chair", "member-3", "member-4"]


def test_a_recusal_is_per_case(app: CommitteeApplication) -> None:
    first, second = ready_case(app), ready_case(app)
    sitting_id = sitting(app)
    app.recuse(sitting_id, first.case_id, member="chair", reason="neighbour")
    assert app.vote(sitting_id, second.case_id, member="chair", vote="approve")["votes"]


# The decision -------------------------------------------------------------------------------


def published(app: CommitteeApplication) -> list[CommitteeDecided]:
    return [
        committee_decided(app.mapper.to_domain_event(n))  # type: ignore[misc]
        for n in app.read_notifications(0, 1000, tuple(TRANSLATORS))
    ]


def test_the_voters_must_reach_the_quorum(app: CommitteeApplication) -> None:
    request = ready_case(app)
    sitting_id = sitting(app, ["chair", "member-2", "member-3"])
    cast(app, sitting_id, request.case_id, "approve", "approve")
    app.recuse(sitting_id, request.case_id, member="member-3", reason="related")
    decide = lambda: app.decide(sitting_id, request.case_id, decision="approved", reasons=["ok"])
    assert refused_code(decide) == "quorum_not_reached"
    too_few = sitting(app, ["chair", "member-2"])
    app.vote(too_few, request.case_id, member="chair", vote="approve")
    assert (
        refused_code(lambda: app.decide(too_few, request.case_id, decision="approved", reasons=["ok"]))
        == "quorum_not_reached"
    )
    full = sitting(app)
    cast(app, full, request.case_id, "approve", "approve", "approve")
    assert app.decide(full, request.case_id, decision="approved", reasons=["ok"])["decision"] == "approved"


def test_the_decision_follows_the_majority_and_a_tie_cannot_approve(
    app: CommitteeApplication,
) -> None:
    request = ready_case(app)
    sitting_id = sitting(app)
    decide = lambda d: app.decide(sitting_id, request.case_id, decision=d, reasons=["r"])
    assert refused_code(lambda: decide("approved")) == "votes_required"
    cast(app, sitting_id, request.case_id, "approve", "reject", "abstain", "abstain")
    assert refused_code(lambda: decide("approved")) == "decision_contradicts_votes"
    cast(app, sitting_id, request.case_id, "approve", "approve", "reject", "abstain")
    assert refused_code(lambda: decide("rejected")) == "decision_contradicts_votes"
    assert decide("approved")["decision"] == "approved"


def test_approving_needs_a_verified_outcome(app: CommitteeApplication) -> None:
    request = ready_case(app, outcome="ineligible")
    sitting_id = sitting(app)
    cast(app, sitting_id, request.case_id, "approve", "approve", "approve")
    assert (
        refused_code(lambda: app.decide(sitting_id, request.case_id, decision="approved", reasons=["r"]))
        == "not_eligible_for_approval"
    )
    cast(app, sitting_id, request.case_id, "reject", "reject", "reject")
    assert app.decide(sitting_id, request.case_id, decision="rejected", reasons=["r"])


@pytest.mark.parametrize("attested", [None, False])
def test_a_case_without_the_declaration_is_refused_and_kept_off_the_agenda(
    app: CommitteeApplication, attested: bool | None
) -> None:
    request = ready_case(app, attested=attested)
    assert FakeViews().doc(app, request.case_id)["on_agenda"] is False
    sitting_id = sitting(app)
    cast(app, sitting_id, request.case_id, "reject", "reject", "reject")
    assert (
        refused_code(lambda: app.decide(sitting_id, request.case_id, decision="rejected", reasons=["r"]))
        == "attestation_missing"
    )
    assert published(app) == []


def test_a_sitting_decides_only_its_own_associations_cases(app: CommitteeApplication) -> None:
    request = ready_case(app, association_id="elites")
    sitting_id = sitting(app)
    assert (
        refused_code(lambda: app.vote(sitting_id, request.case_id, member="chair", vote="approve"))
        == "case_of_another_association"
    )


def test_deciding_twice_or_in_a_closed_sitting_is_refused(app: CommitteeApplication) -> None:
    request, other = ready_case(app), ready_case(app)
    sitting_id = sitting(app)
    cast(app, sitting_id, request.case_id, "approve", "approve", "approve")
    app.decide(sitting_id, request.case_id, decision="approved", reasons=["ok"])
    assert (
        refused_code(lambda: app.decide(sitting_id, request.case_id, decision="approved", reasons=["ok"]))
        == "already_decided"
    )
    assert (
        refused_code(lambda: app.vote(sitting_id, request.case_id, member="chair", vote="reject"))
        == "already_decided"
    )
    assert app.close_sitting(sitting_id)["closed"] is True
    assert refused_code(lambda: app.close_sitting(sitting_id)) == "sitting_closed"
    assert (
        refused_code(lambda: app.vote(sitting_id, other.case_id, member="chair", vote="approve"))
        == "sitting_closed"
    )
    assert (
        refused_code(lambda: app.recuse(sitting_id, other.case_id, member="chair", reason="x"))
        == "sitting_closed"
    )


def test_deciding_an_unknown_case_is_not_found(app: CommitteeApplication) -> None:
    sitting_id = sitting(app)
    with pytest.raises(NotFound) as caught:
        app.decide(sitting_id, uuid4(), decision="approved", reasons=["ok"])
    assert refusal_status(caught.value) == 404 and caught.value.ar
    with pytest.raises(NotFound) as caught:
        app.decide(uuid4(), ready_case(app).case_id, decision="approved", reasons=["ok"])
    assert caught.value.code == "sitting_not_found"


def test_the_application_judges_the_window_by_its_clock(
    app: CommitteeApplication, clock: FrozenClock
) -> None:
    request = ready_case(app)
    sitting_id = sitting(app)
    cast(app, sitting_id, request.case_id, "approve", "approve", "approve")
    clock.advance(timedelta(days=SIDR_WINDOW))  # 9 days after receipt, window 7
    result = app.decide(sitting_id, request.case_id, decision="approved", reasons=["ok"])
    assert result["within_window"] is False
    assert result["deadline_display"]["gregorian"] == "2025-03-09"


def test_the_decision_is_published_as_committee_decided_with_the_sitting(
    app: CommitteeApplication,
) -> None:
    request = request_received()
    handle(app, app.on_request_received, request)
    verification = data_verified(request)
    handle(app, app.on_data_verified, verification)
    sitting_id = sitting(app)
    app.recuse(sitting_id, request.case_id, member="member-4", reason="conflict")
    app.vote(sitting_id, request.case_id, member="chair", vote="approve")
    app.vote(sitting_id, request.case_id, member="member-2", vote="approve", dissent_note="no")
    app.vote(
        sitting_id, request.case_id, member="member-3", vote="reject", dissent_note="need is not shown"
    )
    app.decide(sitting_id, request.case_id, decision="approved", reasons=["complete file"])
    events = published(app)
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, CommitteeDecided)
    assert decode_event(encode_event(event)) == event
    case: CommitteeCase = app.repository.get(request.case_id)
    assert event.event_id == case.decision_event_id
    assert event.causation_id == verification.event_id
    assert event.correlation_id == request.correlation_id
    assert event.actor == Actor(kind="committee", id="committee")
    payload = event.payload
    assert payload.decision == "approved" and payload.reasons == ["complete file"]
    assert payload.window_days == SIDR_WINDOW and payload.within_window is True
    assert payload.deadline == RECEIVED_AT + timedelta(days=SIDR_WINDOW)
    assert payload.sitting_id == str(sitting_id)
    assert payload.members_present == PRESENT
    assert payload.quorum == 3
    assert payload.recusals == ["member-4"]
    # Only the member who voted against the decision has a dissent note.
    assert payload.dissent_notes == ["member-3: need is not shown"]
    assert [(v.member, v.vote) for v in payload.votes] == [
        ("chair", "approve"),
        ("member-2", "approve"),
        ("member-3", "reject"),
    ]


CHAIR_ACTOR = {
    "kind": "committee",
    "id": "sub-of-chair",
    "name": "The Chair",
    "role": "committee_chair",
}


def test_the_decision_is_published_with_the_chair_who_recorded_it(
    app: CommitteeApplication,
) -> None:
    request = ready_case(app)
    sitting_id = sitting(app)
    cast(app, sitting_id, request.case_id, "approve", "approve", "approve")
    app.decide(
        sitting_id, request.case_id, decision="approved", reasons=["ok"], actor=CHAIR_ACTOR
    )
    (event,) = published(app)
    assert event.actor == Actor(**CHAIR_ACTOR)
    assert decode_event(encode_event(event)).actor == Actor(**CHAIR_ACTOR)


def test_the_case_file_holds_the_request_its_verification_and_the_referrals(
    app: CommitteeApplication,
) -> None:
    request = request_received()
    handle(app, app.on_request_received, request)
    handle(app, app.on_referred_to_researcher, referred(request))
    ineligible = builders.data_verified(
        request,
        outcome="ineligible",
        ineligible_rule="one request a year",
        ineligible_reason={"ar": "طلب واحد في السنة", "en": "One request a year"},
    )
    handle(app, app.on_data_verified, ineligible)
    app.close_referral(request.case_id, researcher="researcher-9", answers=["a"], note="n")

    file = app.case_file(request.case_id)
    assert (file["case_id"], file["association_id"]) == (str(request.case_id), "sidr")
    assert file["request"]["received"] is True and file["request"]["attested"] is True
    assert file["request"]["deadline"] == (RECEIVED_AT + timedelta(days=SIDR_WINDOW)).isoformat()
    assert file["verification"]["outcome"] == "ineligible"
    assert file["verification"]["ineligible_rule"] == "one request a year"
    assert file["verification"]["ineligible_reason"]["en"] == "One request a year"
    (referral,) = file["referrals"]
    assert referral["questions"] == ["how long?"]
    assert (referral["open"], referral["researcher"], referral["note"]) == (
        False,
        "researcher-9",
        "n",
    )
    with pytest.raises(NotFound):
        app.case_file(uuid4())


# The read model -----------------------------------------------------------------------------


def test_the_read_model_puts_verified_attested_undecided_cases_on_the_agenda(
    app: CommitteeApplication,
) -> None:
    views = FakeViews()
    request = request_received()
    handle(app, app.on_request_received, request)
    handle(app, app.on_referred_to_researcher, referred(request))
    doc = views.doc(app, request.case_id)
    assert doc["on_agenda"] is False and doc["referral_open"] is True
    assert doc["attested"] is True
    assert doc["sort_key"].startswith("2025-03-09T09:30:00")
    assert doc["deadline_display"]["hijri"] == "1446-09-09"
    assert doc["received_at_display"]["gregorian"] == "2025-03-02"
    handle(app, app.on_data_verified, data_verified(request))
    # verified, but the committee waits for the researcher's note
    assert views.doc(app, request.case_id)["on_agenda"] is False
    app.close_referral(request.case_id, researcher="r", answers=["a"], note="n")
    doc = views.doc(app, request.case_id)
    assert doc["referral_open"] is False and doc["on_agenda"] is True
    # The reason and questions are staff's words about the applicant: not in the read model.
    assert doc["referral"] == {
        "open": False,
        "referred_by": "officer-7",
        "researcher": "r",
        "answered": True,
    }
    sitting_id = sitting(app)
    cast(app, sitting_id, request.case_id, "approve", "approve", "abstain")
    app.decide(sitting_id, request.case_id, decision="approved", reasons=["ok"])
    final = views.doc(app, request.case_id)
    assert final["on_agenda"] is False
    assert final["decision"] == "approved" and final["within_window"] is True
    assert final["sitting_id"] == str(sitting_id) and final["quorum"] == 3
    assert final["decided_at_display"]["gregorian"] == "2025-03-04"


# The decision-window scan -------------------------------------------------------------------


def test_the_scan_flags_approaching_and_overdue_cases_once(
    app: CommitteeApplication, clock: FrozenClock
) -> None:
    views = FakeViews()
    waiting, decided = ready_case(app), ready_case(app)
    sitting_id = sitting(app)
    cast(app, sitting_id, decided.case_id, "reject", "reject", "reject")
    app.decide(sitting_id, decided.case_id, decision="rejected", reasons=["r"])
    ids = [waiting.case_id, decided.case_id, uuid4()]

    assert app.scan_deadlines(ids) == []  # day 2 of 7, warning 3 days before
    clock.advance(timedelta(days=2))  # day 4: three days before the deadline
    assert app.scan_deadlines(ids) == [
        {"case_id": str(waiting.case_id), "case_ref": waiting.case_ref, "flag": "approaching"}
    ]
    assert app.scan_deadlines(ids) == []
    doc = views.doc(app, waiting.case_id)
    assert doc["deadline_flag"] == "approaching" and doc["deadline_flagged"] is True
    assert doc["deadline_watch"] is True
    clock.advance(timedelta(days=3, seconds=1))  # past the deadline
    assert [f["flag"] for f in app.scan_deadlines(ids)] == ["overdue"]
    assert app.scan_deadlines(ids) == []
    doc = views.doc(app, waiting.case_id)
    assert doc["deadline_flag"] == "overdue" and doc["deadline_watch"] is False
    assert views.doc(app, decided.case_id)["deadline_flagged"] is False
    assert app.case_status(waiting.case_id)["deadline_flags"] == ["approaching", "overdue"]


def test_a_decision_after_the_flag_takes_the_case_off_the_deadline_list(
    app: CommitteeApplication, clock: FrozenClock
) -> None:
    views = FakeViews()
    request = ready_case(app)
    clock.advance(timedelta(days=10))
    assert app.scan_deadlines([request.case_id])[0]["flag"] == "overdue"
    sitting_id = sitting(app)
    cast(app, sitting_id, request.case_id, "approve", "approve", "approve")
    result = app.decide(sitting_id, request.case_id, decision="approved", reasons=["late"])
    assert result["within_window"] is False
    doc = views.doc(app, request.case_id)
    assert doc["deadline_flagged"] is False and doc["within_window"] is False


# The minutes ------------------------------------------------------------------------------


def test_the_minutes_are_a_printable_page_in_arabic_by_default(
    app: CommitteeApplication, packs: dict[str, PolicyPack]
) -> None:
    request = ready_case(app)
    sitting_id = sitting(app)
    app.recuse(sitting_id, request.case_id, member="member-4", reason="قريب المتقدم")
    app.vote(sitting_id, request.case_id, member="chair", vote="approve")
    app.vote(sitting_id, request.case_id, member="member-2", vote="approve")
    app.vote(sitting_id, request.case_id, member="member-3", vote="reject", dissent_note="<b>لا</b>")
    app.decide(sitting_id, request.case_id, decision="approved", reasons=["الملف مكتمل"])
    page = app.minutes(sitting_id)
    assert page.startswith("<!DOCTYPE html>")
    assert 'lang="ar" dir="rtl"' in page
    assert "@media print" in page and "<link" not in page and "<script" not in page
    assert packs["sidr"].name.ar in page
    assert "رمضان ١٤٤٦ هـ" in page  # the sitting's date in Hijri ...
    assert "مارس ٢٠٢٥ م" in page  # ... and Gregorian
    assert "رئيس لجنة البحث" in page and "عضو اللجنة الرابع" in page
    assert request.case_ref in page
    assert "قريب المتقدم" in page  # the recusal
    # The dissent note, escaped, under the member's name (never the member's id).
    assert "عضو اللجنة الثالث: &lt;b&gt;لا&lt;/b&gt;" in page
    assert "member-3" not in page
    assert "الملف مكتمل" in page and "ضمن المهلة" in page and "قبول" in page


def test_the_minutes_in_english_show_a_late_decision(
    app: CommitteeApplication, clock: FrozenClock, packs: dict[str, PolicyPack]
) -> None:
    request = ready_case(app)
    sitting_id = sitting(app)
    cast(app, sitting_id, request.case_id, "reject", "reject", "approve")
    clock.advance(timedelta(days=30))
    app.decide(sitting_id, request.case_id, decision="rejected", reasons=["no need shown"])
    page = app.minutes(sitting_id, "en")
    assert 'lang="en" dir="ltr"' in page
    assert packs["sidr"].name.en in page
    assert "Ramadan 1446 AH" in page and "March 2025" in page
    assert "after the window" in page and "rejected" in page and "no need shown" in page
    assert "Chair of the research committee" in page


def test_the_minutes_of_a_closed_sitting_say_when_it_closed_in_both_calendars(
    app: CommitteeApplication, clock: FrozenClock
) -> None:
    sitting_id = sitting(app)
    assert app.sitting_status(sitting_id)["closed_at_display"] is None
    assert "أُغلقت في" not in app.minutes(sitting_id)
    clock.advance(timedelta(hours=2))
    status = app.close_sitting(sitting_id)
    assert status["closed_at_display"]["hijri"] == "1446-09-04"
    assert status["closed_at_display"]["gregorian"] == "2025-03-04"
    page = app.minutes(sitting_id)
    assert f"مغلقة — أُغلقت في {status['closed_at_display']['ar']}" in page
    english = app.minutes(sitting_id, "en")
    assert f"closed — closed on {status['closed_at_display']['en']}" in english
    assert "Ramadan 1446 AH" in status["closed_at_display"]["en"]
