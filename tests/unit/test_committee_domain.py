"""The committee case's rules: the deadline, the declaration, the decision rules,
referrals, deadline flags, idempotency. The aggregate is tested directly; the
application, sittings and read model are in test_committee_application.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest

from services.committee.domain import CommitteeCase, decision_deadline, is_attested, majority
from shared.errors import Refused
from shared.http import refusal_status

pytestmark = pytest.mark.unit

RECEIVED_AT = datetime(2025, 3, 2, 9, 30, tzinfo=timezone.utc)
APPROVE = {"member": "m1", "vote": "approve"}
REJECT = {"member": "m2", "vote": "reject"}


def votes(*kinds: str) -> list[dict[str, str]]:
    return [{"member": f"member-{i}", "vote": kind} for i, kind in enumerate(kinds)]


ATTESTATION = {
    "attested": True,
    "attested_by": "Applicant",
    "attested_at": "2025-03-02T09:00:00+00:00",
    "method": "one_time_code",
    "data_hash": "ab" * 32,
}


def opened_case(
    window_days: int = 14,
    received_at: datetime = RECEIVED_AT,
    attestation: dict[str, Any] | None = ATTESTATION,
) -> CommitteeCase:
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
        attestation=attestation,
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
    assert refusal_status(caught.value) == 409
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


def test_the_committee_waits_for_the_researchers_note_before_deciding() -> None:
    case, _ = verified_case()
    open_referral(case)
    assert refused_code(lambda: decide(case)) == "referral_open"
    assert refused_code(lambda: decide(case, "rejected", cast=votes("reject", "reject", "reject"))) == "referral_open"
    case.close_referral(
        researcher="researcher-1", answers=["explained"], note="ready for the committee",
        closed_at=RECEIVED_AT + timedelta(days=2),
    )
    decide(case)
    assert case.decision == "approved"


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


# The declaration (policy step 4) ---------------------------------------------------------


def test_a_case_without_the_declaration_cannot_be_decided() -> None:
    for attestation in (
        None,
        {**ATTESTATION, "attested": False},
        {**ATTESTATION, "data_hash": None},
    ):
        case = opened_case(attestation=attestation)
        case.record_verification(
            source_event_id=uuid4(), outcome="verified", verified_at=RECEIVED_AT
        )
        assert case.attested is False
        assert refused_code(lambda: decide(case)) == "attestation_missing"
        assert refused_code(lambda: decide(case, "rejected", votes("reject"))) == "attestation_missing"
        assert case.decision is None


def test_the_declaration_needs_attested_and_the_data_hash() -> None:
    assert is_attested(ATTESTATION)
    assert not is_attested(None)
    assert not is_attested({**ATTESTATION, "attested": False})
    assert not is_attested({**ATTESTATION, "data_hash": None})


# A case known first by its referral ---------------------------------------------------------


def registered_case() -> CommitteeCase:
    return CommitteeCase.register(
        case_id=uuid4(), association_id="sidr", case_ref="SDR-1446-000001", correlation_id=uuid4()
    )


def test_a_case_known_only_by_a_referral_has_no_deadline_and_cannot_be_decided() -> None:
    case = registered_case()
    open_referral(case)
    assert case.deadline is None and not case.received
    assert case.open_referral is not None
    assert refused_code(lambda: decide(case)) == "request_not_received"
    assert case.flag_deadline(now=RECEIVED_AT + timedelta(days=99), warning_days=3) is None


def test_the_request_merges_into_a_case_opened_by_its_referral() -> None:
    case = registered_case()
    open_referral(case)
    request_id = uuid4()
    case.receive_request(
        request_event_id=request_id,
        service_code="seedlings",
        channel="website",
        received_at=RECEIVED_AT,
        window_days=14,
        attestation=ATTESTATION,
    )
    assert case.received and case.attested
    assert case.deadline == RECEIVED_AT + timedelta(days=14)
    assert case.open_referral is not None  # the referral stays open for the researcher
    version = case.version
    case.receive_request(
        request_event_id=uuid4(),
        service_code="other",
        channel="phone",
        received_at=RECEIVED_AT + timedelta(days=3),
        window_days=7,
        attestation=None,
    )
    assert case.version == version, "the first request recorded wins"
    assert case.request_event_id == request_id


# Deadline flags ---------------------------------------------------------------------------


def test_a_case_is_flagged_approaching_then_overdue_each_once() -> None:
    case = opened_case(window_days=14)  # deadline 2025-03-16 09:30
    early = datetime(2025, 3, 12, 9, 29, tzinfo=timezone.utc)
    assert case.flag_deadline(now=early, warning_days=3) is None
    approaching = datetime(2025, 3, 13, 9, 30, tzinfo=timezone.utc)
    assert case.flag_deadline(now=approaching, warning_days=3) == "approaching"
    assert case.flag_deadline(now=approaching + timedelta(days=1), warning_days=3) is None
    at_deadline = datetime(2025, 3, 16, 9, 30, tzinfo=timezone.utc)
    assert case.flag_deadline(now=at_deadline, warning_days=3) is None
    overdue = at_deadline + timedelta(seconds=1)
    assert case.flag_deadline(now=overdue, warning_days=3) == "overdue"
    assert case.flag_deadline(now=overdue + timedelta(days=5), warning_days=3) is None
    assert case.deadline_flags == ["approaching", "overdue"]


def test_a_case_found_past_its_deadline_is_flagged_overdue_only() -> None:
    case = opened_case()
    assert case.flag_deadline(now=RECEIVED_AT + timedelta(days=20), warning_days=3) == "overdue"
    assert case.deadline_flags == ["overdue"]


def test_a_decided_case_is_never_flagged() -> None:
    case, _ = verified_case()
    decide(case)
    version = case.version
    assert case.flag_deadline(now=RECEIVED_AT + timedelta(days=20), warning_days=3) is None
    assert case.version == version
