"""The committee and a corrected request (revisions), and the lists that hold every
undecided case: the agenda (verified, and ineligible for rejection) and the cases
awaiting the applicant's correction."""

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
from shared.errors import Refused
from shared.events import (
    Applicant,
    Attestation,
    CommitteeDecided,
    Correction,
    DataVerified,
    Explanation,
    RequestReceived,
)
from shared.policy import PolicyPack
from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs
from tests import builders

pytestmark = pytest.mark.unit

RECEIVED_AT = datetime(2025, 3, 2, 9, 30, tzinfo=UTC)
CORRECTED_AT = RECEIVED_AT + timedelta(days=3)
SIDR_WINDOW = 7
PRESENT = ["chair", "member-2", "member-3", "member-4"]
RULE = Explanation(
    ar="يصرف من ١ إلى ٥٠٠ شتلة للطلب الواحد", en="One request may ask for 1 to 500 seedlings"
)
SIGN = Correction(
    field="attestation",
    ar="وقّع الإقرار بصحة البيانات وبمسؤوليتك المباشرة عنها.",
    en="Sign the declaration that the data is correct and that you are responsible for it.",
)


@pytest.fixture(scope="module")
def packs() -> dict[str, PolicyPack]:
    packs = dict(load_packs(DEFAULT_POLICIES_DIR))
    packs["sidr"] = packs["sidr"].model_copy(update={"decision_window_days": SIDR_WINDOW})
    return packs


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(RECEIVED_AT + timedelta(days=4))


@pytest.fixture
def app(clock: FrozenClock, packs: dict[str, PolicyPack]) -> CommitteeApplication:
    return CommitteeApplication(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=clock, packs=packs
    )


def attestation(data_hash: str = "cd" * 32) -> Attestation:
    return Attestation(
        attested=True,
        attested_by="Applicant",
        attested_at=RECEIVED_AT - timedelta(minutes=5),
        method="one_time_code",
        data_hash=data_hash,
    )


def request_received() -> RequestReceived:
    return builders.request_received(
        occurred_at=RECEIVED_AT,
        case_ref="SDR-1446-000123",
        service_code="seedlings",
        applicant=Applicant(national_id="1000000008", name="Applicant"),
        attestation=attestation(),
    )


def revision_of(
    request: RequestReceived, revision: int, corrects: UUID | None = None, **payload: Any
) -> RequestReceived:
    return request.model_copy(
        update={
            "event_id": uuid4(),
            "occurred_at": CORRECTED_AT,
            "payload": request.payload.model_copy(
                update={
                    "revision": revision,
                    "corrects": corrects or uuid4(),
                    "submitted_at": CORRECTED_AT,
                    "attestation": attestation("ab" * 32),
                    **payload,
                }
            ),
        }
    )


def data_verified(
    request: RequestReceived,
    outcome: str = "verified",
    *,
    revision: int = 1,
    at: datetime = RECEIVED_AT + timedelta(hours=5),
) -> DataVerified:
    return builders.data_verified(
        request,
        occurred_at=at,
        outcome=outcome,
        revision=revision,
        corrections=[SIGN] if outcome == "discrepancies" else [],
        ineligible_rule=RULE.en if outcome == "ineligible" else None,
        ineligible_reason=RULE if outcome == "ineligible" else None,
    )


_positions = iter(range(1, 1_000_000))


def handle(app: CommitteeApplication, event: Any) -> int:
    """Runs the handler as the consumer does; returns how many events it recorded."""
    processing = ProcessingEvent(tracking=Tracking("nats:KHIDMA", next(_positions)))
    if isinstance(event, RequestReceived):
        app.on_request_received(event, processing)
    else:
        app.on_data_verified(event, processing)
    app.record_processing(processing)
    return len(processing.events)


def case_of(app: CommitteeApplication, request: RequestReceived) -> CommitteeCase:
    found: CommitteeCase = app.repository.get(request.case_id)
    return found


def sitting_votes(app: CommitteeApplication, case_id: UUID, vote: str) -> UUID:
    sitting_id = UUID(app.convene(association_id="sidr", members_present=PRESENT)["sitting_id"])
    for member in PRESENT[:3]:
        app.vote(sitting_id, case_id, member=member, vote=vote)
    return sitting_id


def refused_code(action: Any) -> str:
    with pytest.raises(Refused) as caught:
        action()
    assert caught.value.en and caught.value.ar, "every refusal is bilingual"
    return caught.value.code


def published(app: CommitteeApplication) -> list[CommitteeDecided]:
    return [
        committee_decided(app.mapper.to_domain_event(n))  # type: ignore[misc]
        for n in app.read_notifications(0, 1000, tuple(TRANSLATORS))
    ]


class Views:
    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.position = 0

    def get(self, view: str, key: str) -> dict[str, Any] | None:
        assert view == CASES
        return self.docs.get(key)

    def put(self, view: str, key: str, doc: dict[str, Any]) -> None:
        self.docs[key] = doc

    def doc(self, app: CommitteeApplication, case_id: UUID) -> dict[str, Any]:
        for notification in app.read_notifications(self.position, 1000):
            project(app.mapper.to_domain_event(notification), self)  # type: ignore[arg-type]
            self.position = notification.id
        return self.docs[str(case_id)]

    def listed(self, app: CommitteeApplication, **equals: Any) -> set[str]:
        for case_id in list(self.docs):
            self.doc(app, UUID(case_id))
        return {
            key for key, doc in self.docs.items()
            if all(doc.get(name) == value for name, value in equals.items())
        }


# A corrected request ---------------------------------------------------------------------------


def test_a_later_revision_records_its_declaration_and_keeps_the_deadline(
    app: CommitteeApplication,
) -> None:
    request = request_received()
    handle(app, request)
    handle(app, data_verified(request, "discrepancies"))
    corrected = revision_of(request, 2)
    assert handle(app, corrected) == 1
    case = case_of(app, request)
    assert case.revision == 2 and case.request_event_id == corrected.event_id
    assert case.attestation and case.attestation["data_hash"] == "ab" * 32
    assert case.received_at == RECEIVED_AT  # the window keeps running from the first receipt
    assert case.deadline == RECEIVED_AT + timedelta(days=SIDR_WINDOW)
    assert [r["revision"] for r in case.revisions] == [1, 2]


def test_the_same_or_an_older_revision_changes_nothing(app: CommitteeApplication) -> None:
    request = request_received()
    handle(app, request)
    corrected = revision_of(request, 2)
    handle(app, corrected)
    version = case_of(app, request).version
    assert handle(app, corrected) == 0
    assert handle(app, revision_of(request, 2)) == 0
    assert handle(app, request) == 0
    assert case_of(app, request).version == version
    assert case_of(app, request).request_event_id == corrected.event_id


def test_after_a_correction_the_case_is_not_verified_until_that_revision_is(
    app: CommitteeApplication,
) -> None:
    request = request_received()
    handle(app, request)
    handle(app, data_verified(request, "discrepancies"))
    handle(app, revision_of(request, 2))
    assert app.case_status(request.case_id)["verification_outcome"] is None
    sitting_id = sitting_votes(app, request.case_id, "reject")
    decide = lambda: app.decide(sitting_id, request.case_id, decision="rejected", reasons=["r"])
    assert refused_code(decide) == "not_verified"

    verified = data_verified(request, revision=2, at=CORRECTED_AT + timedelta(hours=2))
    handle(app, verified)
    assert app.case_status(request.case_id)["verification_outcome"] == "verified"
    sitting_id = sitting_votes(app, request.case_id, "approve")
    app.decide(sitting_id, request.case_id, decision="approved", reasons=["corrected"])
    (event,) = published(app)
    assert event.causation_id == verified.event_id


def test_a_verification_of_an_older_revision_never_replaces_a_newer_one(
    app: CommitteeApplication,
) -> None:
    request = request_received()
    handle(app, request)
    handle(app, revision_of(request, 2))
    newer = data_verified(request, "verified", revision=2, at=CORRECTED_AT)
    handle(app, newer)
    # The first revision's verification, delivered late and stamped later.
    assert handle(app, data_verified(request, "discrepancies", revision=1, at=CORRECTED_AT + timedelta(days=1))) == 0
    case = case_of(app, request)
    assert case.verification_event_id == newer.event_id
    assert case.verification_outcome == "verified" and case.verified


def test_a_verification_of_a_revision_not_received_yet_counts_once_it_arrives(
    app: CommitteeApplication,
) -> None:
    request = request_received()
    handle(app, request)
    handle(app, data_verified(request, "discrepancies"))
    corrected = revision_of(request, 2)
    handle(app, data_verified(request, "verified", revision=2, at=CORRECTED_AT))
    assert not case_of(app, request).verified
    handle(app, corrected)
    assert case_of(app, request).verified
    assert app.case_status(request.case_id)["verification_outcome"] == "verified"


def test_a_revision_after_the_decision_changes_nothing(app: CommitteeApplication) -> None:
    request = request_received()
    handle(app, request)
    handle(app, data_verified(request, "discrepancies"))
    sitting_id = sitting_votes(app, request.case_id, "reject")
    app.decide(sitting_id, request.case_id, decision="rejected", reasons=["not corrected"])
    assert handle(app, revision_of(request, 2)) == 0
    assert case_of(app, request).revision == 1


def test_the_committees_file_shows_the_revision(app: CommitteeApplication) -> None:
    views = Views()
    request = request_received()
    handle(app, request)
    handle(app, data_verified(request, "discrepancies"))
    assert views.doc(app, request.case_id)["revision"] == 1
    corrected = revision_of(request, 2)
    handle(app, corrected)
    doc = views.doc(app, request.case_id)
    assert doc["revision"] == 2 and app.case_status(request.case_id)["revision"] == 2
    assert [r["revision"] for r in doc["revisions"]] == [1, 2]
    assert doc["revisions"][1]["request_event_id"] == str(corrected.event_id)
    assert doc["revisions"][1]["received_at_display"]["gregorian"] == "2025-03-05"
    assert doc["attestation"]["data_hash"] == "ab" * 32
    assert doc["verification"]["revision"] == 1  # the last verification, of the first revision
    assert doc["verification_outcome"] is None and doc["awaiting_verification"] is True
    assert doc["deadline"] == (RECEIVED_AT + timedelta(days=SIDR_WINDOW)).isoformat()


# The committee's lists -----------------------------------------------------------------------


def test_an_ineligible_case_is_on_the_agenda_for_rejection_with_the_rule(
    app: CommitteeApplication,
) -> None:
    views = Views()
    request = request_received()
    handle(app, request)
    handle(app, data_verified(request, "ineligible"))
    doc = views.doc(app, request.case_id)
    assert doc["on_agenda"] is True and doc["expected_decision"] == "rejected"
    assert doc["ineligible_rule"] == RULE.en
    assert doc["ineligible_reason"] == {"ar": RULE.ar, "en": RULE.en}
    assert doc["awaiting_correction"] is False
    assert str(request.case_id) in views.listed(app, on_agenda=True, verification_outcome="ineligible")

    sitting_id = sitting_votes(app, request.case_id, "approve")
    approve = lambda: app.decide(sitting_id, request.case_id, decision="approved", reasons=["r"])
    assert refused_code(approve) == "not_eligible_for_approval"
    sitting_id = sitting_votes(app, request.case_id, "reject")
    app.decide(sitting_id, request.case_id, decision="rejected", reasons=[RULE.ar])
    doc = views.doc(app, request.case_id)
    assert doc["decision"] == "rejected" and doc["on_agenda"] is False
    assert doc["expected_decision"] is None


def test_a_verified_case_is_on_the_agenda_with_no_expected_decision(
    app: CommitteeApplication,
) -> None:
    views = Views()
    request = request_received()
    handle(app, request)
    handle(app, data_verified(request))
    doc = views.doc(app, request.case_id)
    assert doc["on_agenda"] is True and doc["expected_decision"] is None
    assert doc["ineligible_rule"] is None and doc["ineligible_reason"] is None


def test_a_case_with_discrepancies_awaits_the_correction_while_its_window_runs(
    app: CommitteeApplication,
) -> None:
    views = Views()
    request = request_received()
    handle(app, request)
    first = data_verified(request, "discrepancies")
    handle(app, first)
    doc = views.doc(app, request.case_id)
    assert doc["awaiting_correction"] is True and doc["on_agenda"] is False
    assert doc["corrections"] == [SIGN.model_dump()]
    assert doc["deadline_display"]["gregorian"] == "2025-03-09"
    assert doc["deadline_watch"] is True  # the scanner still flags it as the deadline nears

    handle(app, revision_of(request, 2, corrects=first.event_id))
    doc = views.doc(app, request.case_id)
    assert doc["awaiting_correction"] is False and doc["awaiting_verification"] is True
    assert doc["on_agenda"] is False and doc["corrections"] == []

    handle(app, data_verified(request, revision=2, at=CORRECTED_AT))
    doc = views.doc(app, request.case_id)
    assert doc["on_agenda"] is True and doc["awaiting_verification"] is False
    assert doc["verification_outcome"] == "verified"


def test_every_received_undecided_case_is_on_exactly_one_list(app: CommitteeApplication) -> None:
    views = Views()
    cases = {}
    for outcome in (None, "verified", "ineligible", "discrepancies"):
        request = request_received()
        handle(app, request)
        if outcome:
            handle(app, data_verified(request, outcome))
        cases[outcome] = str(request.case_id)
    for case_id in cases.values():
        doc = views.doc(app, UUID(case_id))
        lists = [doc["on_agenda"], doc["awaiting_correction"], doc["awaiting_verification"]]
        assert lists.count(True) == 1, (case_id, lists)
    assert views.listed(app, awaiting_correction=True) == {cases["discrepancies"]}
    assert views.listed(app, on_agenda=True) == {cases["verified"], cases["ineligible"]}
    assert views.listed(app, awaiting_verification=True) == {cases[None]}


def test_votes_cast_before_a_correction_do_not_decide_the_corrected_request(app, clock) -> None:
    request = request_received()
    handle(app, request)
    handle(app, data_verified(request, "discrepancies"))
    sitting = UUID(app.convene(association_id="sidr", members_present=PRESENT)["sitting_id"])
    for member in PRESENT[:3]:
        app.vote(sitting, request.case_id, member=member, vote="reject")
    handle(app, revision_of(request, 2))
    handle(app, data_verified(request, "verified", revision=2, at=CORRECTED_AT + timedelta(hours=1)))
    with pytest.raises(Refused) as refused:
        app.decide(sitting, request.case_id, decision="rejected", reasons=["stale"])
    assert refused.value.code == "votes_on_an_earlier_revision" and refused.value.ar
    assert case_of(app, request).decision is None
    for member in PRESENT[:3]:
        app.vote(sitting, request.case_id, member=member, vote="approve")
    app.decide(sitting, request.case_id, decision="approved", reasons=["corrected and verified"])
    assert case_of(app, request).decision == "approved"


def test_a_case_with_an_open_referral_waits_for_the_research_note_off_the_agenda(
    app: CommitteeApplication,
) -> None:
    from tests.unit.test_committee_application import referred

    views = Views()
    request = request_received()
    handle(app, request)
    processing = ProcessingEvent(tracking=Tracking("nats:KHIDMA", next(_positions)))
    app.on_referred_to_researcher(referred(request), processing)
    app.record_processing(processing)
    handle(app, data_verified(request))
    doc = views.doc(app, request.case_id)
    assert doc["on_agenda"] is False and doc["awaiting_research"] is True
    app.close_referral(request.case_id, researcher="r-1", answers=["explained"], note="note")
    doc = views.doc(app, request.case_id)
    assert doc["on_agenda"] is True and doc["awaiting_research"] is False
