"""The committee's rules: the deadline, the decision rules, referrals, idempotency.

The aggregate is tested directly; the application's handlers run on the
eventsourcing in-memory store (no broker, no database file).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import ProcessingEvent
from eventsourcing.persistence import Tracking

from services.committee.application import CommitteeApplication
from services.committee.domain import CommitteeCase, decision_deadline, majority
from services.committee.integration import TRANSLATORS, committee_decided
from services.committee.views import CASES, project
from shared.clock import FrozenClock
from shared.consumer import RetryLater
from shared.errors import NotFound, Refused
from shared.events import (
    Actor,
    Applicant,
    CommitteeDecided,
    DataVerified,
    DataVerifiedPayload,
    ReferredToResearcher,
    ReferredToResearcherPayload,
    RequestReceived,
    RequestReceivedPayload,
    decode_event,
    encode_event,
)

pytestmark = pytest.mark.unit

RECEIVED_AT = datetime(2025, 3, 2, 9, 30, tzinfo=timezone.utc)
APPROVE = {"member": "m1", "vote": "approve"}
REJECT = {"member": "m2", "vote": "reject"}


def votes(*kinds: str) -> list[dict[str, str]]:
    return [{"member": f"member-{i}", "vote": kind} for i, kind in enumerate(kinds)]


def opened_case(window_days: int = 14, received_at: datetime = RECEIVED_AT) -> CommitteeCase:
    return CommitteeCase.open(
        case_id=uuid4(),
        request_event_id=uuid4(),
        association_id="sidr",
        case_ref="SID-0000ABCD",
        correlation_id=uuid4(),
        service_code="food-basket",
        channel="website",
        received_at=received_at,
        window_days=window_days,
    )


def verified_case(outcome: str = "verified", **kwargs: Any) -> tuple[CommitteeCase, UUID]:
    case = opened_case(**kwargs)
    verification_id = uuid4()
    case.record_verification(
        source_event_id=verification_id,
        outcome=outcome,
        verified_at=RECEIVED_AT + timedelta(days=1),
    )
    return case, verification_id


def decide(
    case: CommitteeCase,
    decision: str = "approved",
    cast: list[dict[str, str]] | None = None,
    at: datetime | None = None,
    reasons: list[str] | None = None,
) -> UUID:
    event_id = uuid4()
    case.decide(
        event_id=event_id,
        decision=decision,
        reasons=["the file is complete"] if reasons is None else reasons,
        votes=votes("approve", "approve", "reject") if cast is None else cast,
        decided_at=at or RECEIVED_AT + timedelta(days=3),
    )
    return event_id


def refused_code(action: Any) -> str:
    with pytest.raises(Refused) as caught:
        action()
    assert caught.value.en and caught.value.ar, "every refusal is bilingual"
    assert caught.value.status == 409
    return caught.value.code


def last_event(case: CommitteeCase) -> Any:
    return case.collect_events()[-1]


# The deadline and the window ------------------------------------------------------


def test_deadline_is_receipt_plus_the_window_in_days() -> None:
    case = opened_case(window_days=14)
    assert case.deadline == datetime(2025, 3, 16, 9, 30, tzinfo=timezone.utc)
    assert case.window_days == 14
    assert decision_deadline(RECEIVED_AT, 3) == datetime(2025, 3, 5, 9, 30, tzinfo=timezone.utc)


def test_a_window_shorter_than_a_day_is_refused() -> None:
    with pytest.raises(ValueError):
        opened_case(window_days=0)


def test_decision_before_the_deadline_is_within_window() -> None:
    case, _ = verified_case()
    decide(case, at=datetime(2025, 3, 10, tzinfo=timezone.utc))
    event = last_event(case)
    assert event.within_window is True and case.within_window is True


def test_decision_exactly_at_the_deadline_is_within_window() -> None:
    case, _ = verified_case()
    decide(case, at=datetime(2025, 3, 16, 9, 30, tzinfo=timezone.utc))
    assert last_event(case).within_window is True


def test_decision_after_window_is_flagged() -> None:
    case, _ = verified_case()
    decide(case, at=datetime(2025, 3, 16, 9, 30, 1, tzinfo=timezone.utc))
    event = last_event(case)
    assert event.within_window is False
    assert event.window_days == 14


def test_a_shorter_window_flags_an_earlier_decision() -> None:
    case, _ = verified_case(window_days=3)
    decide(case, at=datetime(2025, 3, 6, tzinfo=timezone.utc))
    assert last_event(case).within_window is False


# The decision rules ------------------------------------------------------------------


def test_decision_records_causation_correlation_and_votes() -> None:
    case, verification_id = verified_case()
    decided_at = datetime(2025, 3, 4, 12, 0, tzinfo=timezone.utc)
    event_id = decide(case, cast=votes("approve", "abstain"), at=decided_at)
    event = last_event(case)
    assert isinstance(event, CommitteeCase.Decided)
    assert event.event_id == event_id
    assert event.causation_id == verification_id
    assert event.correlation_id == case.correlation_id
    assert (event.association_id, event.case_ref) == ("sidr", "SID-0000ABCD")
    assert event.decision == "approved"
    assert event.reasons == ["the file is complete"]
    assert event.votes == votes("approve", "abstain")
    assert event.decided_at == decided_at
    assert case.decision == "approved"


def test_deciding_before_verification_is_refused() -> None:
    case = opened_case()
    assert refused_code(lambda: decide(case)) == "not_verified"
    assert refused_code(lambda: decide(case, "rejected", votes("reject"))) == "not_verified"


@pytest.mark.parametrize("outcome", ["ineligible", "discrepancies"])
def test_approving_without_a_verified_outcome_is_refused(outcome: str) -> None:
    case, _ = verified_case(outcome)
    assert refused_code(lambda: decide(case)) == "not_eligible_for_approval"


@pytest.mark.parametrize("outcome", ["ineligible", "discrepancies"])
def test_rejecting_an_unverified_outcome_is_allowed(outcome: str) -> None:
    case, _ = verified_case(outcome)
    decide(case, "rejected", votes("reject"))
    assert case.decision == "rejected"


def test_approving_against_a_majority_of_rejections_is_refused() -> None:
    case, _ = verified_case()
    cast = votes("approve", "reject", "reject")
    assert refused_code(lambda: decide(case, "approved", cast)) == "decision_contradicts_votes"


def test_rejecting_against_a_majority_of_approvals_is_refused() -> None:
    case, _ = verified_case()
    cast = votes("approve", "approve", "reject")
    assert refused_code(lambda: decide(case, "rejected", cast)) == "decision_contradicts_votes"


def test_a_tie_cannot_approve_but_can_reject() -> None:
    case, _ = verified_case()
    cast = votes("approve", "reject", "abstain")
    assert refused_code(lambda: decide(case, "approved", cast)) == "decision_contradicts_votes"
    decide(case, "rejected", cast)
    assert case.decision == "rejected"


def test_only_abstentions_cannot_approve() -> None:
    case, _ = verified_case()
    cast = votes("abstain", "abstain")
    assert refused_code(lambda: decide(case, "approved", cast)) == "decision_contradicts_votes"


def test_abstentions_do_not_count_towards_the_majority() -> None:
    assert majority(votes("approve", "abstain", "abstain", "abstain")) == "approved"
    assert majority(votes("reject", "abstain")) == "rejected"
    assert majority(votes("approve", "reject")) is None


def test_deciding_twice_is_refused() -> None:
    case, _ = verified_case()
    decide(case)
    assert refused_code(lambda: decide(case)) == "already_decided"
    assert refused_code(lambda: decide(case, "rejected", votes("reject"))) == "already_decided"


def test_a_decision_needs_a_reason_and_a_vote() -> None:
    case, _ = verified_case()
    assert refused_code(lambda: decide(case, reasons=[])) == "reasons_required"
    assert refused_code(lambda: decide(case, reasons=["  "])) == "reasons_required"
    assert refused_code(lambda: decide(case, cast=[])) == "votes_required"
    assert case.decision is None


def test_a_member_votes_once() -> None:
    case, _ = verified_case()
    assert refused_code(lambda: decide(case, cast=[APPROVE, APPROVE])) == "duplicate_vote"


def test_a_refused_decision_records_nothing() -> None:
    case, _ = verified_case("ineligible")
    version = case.version
    refused_code(lambda: decide(case))
    assert case.version == version
    assert case.decision is None


# Verifications -------------------------------------------------------------------------


def test_a_repeated_verification_event_changes_nothing() -> None:
    case, verification_id = verified_case()
    version = case.version
    case.record_verification(
        source_event_id=verification_id, outcome="verified", verified_at=RECEIVED_AT
    )
    assert case.version == version


def test_a_later_verification_replaces_an_earlier_one_while_undecided() -> None:
    case, _ = verified_case("discrepancies")
    corrected_id = uuid4()
    case.record_verification(
        source_event_id=corrected_id,
        outcome="verified",
        verified_at=RECEIVED_AT + timedelta(days=2),
    )
    assert case.verification_outcome == "verified"
    decide(case)
    assert last_event(case).causation_id == corrected_id


def test_an_older_verification_delivered_late_does_not_replace_the_newer() -> None:
    case, verification_id = verified_case("verified")
    case.record_verification(
        source_event_id=uuid4(), outcome="discrepancies", verified_at=RECEIVED_AT
    )
    assert case.verification_outcome == "verified"
    assert case.verification_event_id == verification_id


def test_a_verification_after_the_decision_changes_nothing() -> None:
    case, verification_id = verified_case()
    decide(case)
    version = case.version
    case.record_verification(
        source_event_id=uuid4(),
        outcome="ineligible",
        verified_at=RECEIVED_AT + timedelta(days=5),
    )
    assert case.version == version
    assert case.verification_outcome == "verified"


# Referrals -------------------------------------------------------------------------------


def open_referral(case: CommitteeCase, reason: str = "procedures unclear") -> UUID:
    event_id = uuid4()
    case.open_referral_from(
        source_event_id=event_id,
        reason=reason,
        questions=["which documents?"],
        referred_by="officer-7",
    )
    return event_id


def test_a_referral_opens_in_the_researchers_queue() -> None:
    case = opened_case()
    open_referral(case)
    referral = case.open_referral
    assert referral is not None
    assert referral["reason"] == "procedures unclear"
    assert referral["questions"] == ["which documents?"]
    assert referral["referred_by"] == "officer-7"


def test_a_repeated_referral_event_opens_one_referral() -> None:
    case = opened_case()
    referral_id = open_referral(case)
    version = case.version
    case.open_referral_from(
        source_event_id=referral_id, reason="again", questions=[], referred_by="x"
    )
    assert case.version == version
    assert len(case.referrals) == 1


def test_the_researcher_closes_the_open_referral_with_answers_and_a_note() -> None:
    case = opened_case()
    open_referral(case)
    case.close_referral(
        researcher="researcher-1",
        answers=["bring the ID card"],
        note="family of six, no income",
        closed_at=RECEIVED_AT + timedelta(days=1),
    )
    assert case.open_referral is None
    closed = case.referrals[0]
    assert closed["open"] is False
    assert closed["answers"] == ["bring the ID card"]
    assert closed["note"] == "family of six, no income"
    assert closed["researcher"] == "researcher-1"


def test_closing_without_an_open_referral_is_refused() -> None:
    case = opened_case()
    close = lambda: case.close_referral(  # noqa: E731
        researcher="r", answers=[], note="", closed_at=RECEIVED_AT
    )
    assert refused_code(close) == "no_open_referral"
    open_referral(case)
    close()
    assert refused_code(close) == "no_open_referral"


def test_two_referrals_are_closed_oldest_first() -> None:
    case = opened_case()
    open_referral(case, "first")
    open_referral(case, "second")
    case.close_referral(researcher="r", answers=[], note="", closed_at=RECEIVED_AT)
    assert case.open_referral is not None
    assert case.open_referral["reason"] == "second"


# The application's handlers (in-memory store) ---------------------------------------------


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(RECEIVED_AT + timedelta(days=2))


@pytest.fixture
def app(clock: FrozenClock) -> CommitteeApplication:
    return CommitteeApplication(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=clock, window_days=14
    )


def request_received(case_id: UUID | None = None) -> RequestReceived:
    event_id = uuid4()
    return RequestReceived(
        event_id=event_id,
        occurred_at=RECEIVED_AT,
        association_id="sidr",
        case_id=case_id or uuid4(),
        case_ref="SID-0000ABCD",
        correlation_id=event_id,
        actor=Actor(kind="adapter", id="http:website"),
        payload=RequestReceivedPayload(
            channel="website",
            channel_ref="form-1",
            service_code="food-basket",
            applicant=Applicant(national_id="1000000001", name="Applicant"),
        ),
    )


def data_verified(request: RequestReceived, outcome: str = "verified") -> DataVerified:
    return DataVerified(
        event_id=uuid4(),
        occurred_at=RECEIVED_AT + timedelta(hours=5),
        association_id=request.association_id,
        case_id=request.case_id,
        case_ref=request.case_ref,
        correlation_id=request.correlation_id,
        causation_id=request.event_id,
        actor=Actor(kind="officer", id="verifier-1"),
        payload=DataVerifiedPayload(outcome=outcome, checks=[], officer="verifier-1"),  # type: ignore[arg-type]
    )


def referred(request: RequestReceived) -> ReferredToResearcher:
    return ReferredToResearcher(
        event_id=uuid4(),
        occurred_at=RECEIVED_AT + timedelta(hours=1),
        association_id=request.association_id,
        case_id=request.case_id,
        case_ref=request.case_ref,
        correlation_id=request.correlation_id,
        causation_id=request.event_id,
        actor=Actor(kind="officer", id="officer-7"),
        payload=ReferredToResearcherPayload(
            reason="procedures unclear", questions=["how long?"], referred_by="officer-7"
        ),
    )


_positions = iter(range(1, 1_000_000))


def handle(app: CommitteeApplication, handler: Any, event: Any) -> int:
    """Runs a handler as the consumer does; returns how many events it recorded."""
    processing = ProcessingEvent(tracking=Tracking("nats:KHIDMA", next(_positions)))
    handler(event, processing)
    app.record_processing(processing)
    return len(processing.events)


def test_a_received_request_opens_the_case_with_the_configured_window(
    app: CommitteeApplication,
) -> None:
    request = request_received()
    assert handle(app, app.on_request_received, request) == 1
    status = app.case_status(request.case_id)
    assert status["deadline"] == (RECEIVED_AT + timedelta(days=14)).isoformat()
    case: CommitteeCase = app.repository.get(request.case_id)
    assert case.correlation_id == request.correlation_id
    assert case.request_event_id == request.event_id
    assert (case.service_code, case.channel) == ("food-basket", "website")


def test_the_same_request_received_twice_opens_one_case(app: CommitteeApplication) -> None:
    request = request_received()
    handle(app, app.on_request_received, request)
    assert handle(app, app.on_request_received, request) == 0
    assert app.repository.get(request.case_id).version == 1


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


def test_a_referral_before_its_request_is_retried_later(app: CommitteeApplication) -> None:
    request = request_received()
    with pytest.raises(RetryLater):
        handle(app, app.on_referred_to_researcher, referred(request))


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


def test_the_application_judges_the_window_by_its_clock(
    app: CommitteeApplication, clock: FrozenClock
) -> None:
    request = request_received()
    handle(app, app.on_request_received, request)
    handle(app, app.on_data_verified, data_verified(request))
    clock.advance(timedelta(days=13))  # 15 days after receipt
    result = app.decide(
        request.case_id, decision="approved", reasons=["ok"], votes=[APPROVE]
    )
    assert result == {
        "case_id": str(request.case_id),
        "decision": "approved",
        "within_window": False,
    }


def test_deciding_an_unknown_case_is_not_found(app: CommitteeApplication) -> None:
    with pytest.raises(NotFound) as caught:
        app.decide(uuid4(), decision="approved", reasons=["ok"], votes=[APPROVE])
    assert caught.value.status == 404 and caught.value.ar


# The outbox translation and the read model ------------------------------------------


def test_the_decision_is_published_as_committee_decided(app: CommitteeApplication) -> None:
    request = request_received()
    handle(app, app.on_request_received, request)
    verification = data_verified(request)
    handle(app, app.on_data_verified, verification)
    app.decide(request.case_id, decision="rejected", reasons=["no"], votes=[REJECT])
    case: CommitteeCase = app.repository.get(request.case_id)
    stored = [
        app.mapper.to_domain_event(n) for n in app.read_notifications(0, 100, tuple(TRANSLATORS))
    ]
    assert len(stored) == 1
    published = committee_decided(stored[0])
    assert isinstance(published, CommitteeDecided)
    assert decode_event(encode_event(published)) == published
    assert published.case_id == request.case_id
    assert published.event_id == case.decision_event_id
    assert published.causation_id == verification.event_id
    assert published.correlation_id == request.correlation_id
    assert published.actor == Actor(kind="committee", id="committee")
    assert published.payload.decision == "rejected"
    assert published.payload.window_days == 14
    assert published.payload.within_window is True


class FakeViews:
    def __init__(self) -> None:
        self.docs: dict[tuple[str, str], dict[str, Any]] = {}

    def get(self, view: str, key: str) -> dict[str, Any] | None:
        return self.docs.get((view, key))

    def put(self, view: str, key: str, doc: dict[str, Any]) -> None:
        self.docs[(view, key)] = doc


def test_the_read_model_puts_verified_undecided_cases_on_the_agenda(
    app: CommitteeApplication,
) -> None:
    request = request_received()
    handle(app, app.on_request_received, request)
    handle(app, app.on_referred_to_researcher, referred(request))
    views = FakeViews()
    position = 0

    def doc() -> dict[str, Any]:
        nonlocal position
        for notification in app.read_notifications(position, 100):
            project(app.mapper.to_domain_event(notification), views)  # type: ignore[arg-type]
            position = notification.id
        found = views.get(CASES, str(request.case_id))
        assert found is not None
        return found

    assert doc()["on_agenda"] is False
    assert doc()["referral_open"] is True
    assert doc()["referral"]["open"] is True
    assert doc()["sort_key"].startswith("2025-03-16T09:30:00")
    handle(app, app.on_data_verified, data_verified(request))
    assert doc()["on_agenda"] is True
    app.close_referral(request.case_id, researcher="r", answers=["a"], note="n")
    assert doc()["referral_open"] is False
    assert doc()["referral"] == {
        "open": False,
        "reason": "procedures unclear",
        "questions": ["how long?"],
        "referred_by": "officer-7",
        "researcher": "r",
        "answers": ["a"],
        "note": "n",
    }
    app.decide(request.case_id, decision="approved", reasons=["ok"], votes=[APPROVE])
    final = doc()
    assert final["on_agenda"] is False
    assert final["decision"] == "approved" and final["within_window"] is True
