"""Verification of a corrected request: one round per revision, each confirmed and published
with its revision; and the rule an ineligible applicant is told, in both languages."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import ProcessingEvent

from services.verification.application import VerificationApplication
from services.verification.domain import Verification
from services.verification.integration import translators
from services.verification.views import VERIFICATIONS, project
from shared.clock import FrozenClock
from shared.errors import Refused
from shared.events import (
    Applicant,
    Attestation,
    DataVerified,
    Document,
    RequestReceived,
)
from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs
from tests import builders
from tests.unit.verification_keys import sealer_in

pytestmark = pytest.mark.unit

PACKS = load_packs(DEFAULT_POLICIES_DIR)
CITIZEN = "1000000008"
SUBMITTED_AT = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)  # 1 March in Riyadh
CORRECTED_AT = datetime(2025, 3, 6, 9, 30, tzinfo=UTC)  # 6 March in Riyadh
NOW = datetime(2025, 3, 7, 12, 0, tzinfo=UTC)
SEEDLINGS = {"planting_site": "Wadi Hanifa", "seedling_count": 20}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[VerificationApplication]:
    with sealer_in(tmp_path) as sealer:
        yield VerificationApplication(
            env={"PERSISTENCE_MODULE": "eventsourcing.popo"},
            clock=FrozenClock(NOW),
            packs=PACKS,
            sealer=sealer,
        )


def first_request(
    *,
    service_code: str = "seedlings",
    fields: dict[str, Any] | None = None,
    card_expires_on: date = date(2027, 1, 1),
    attested: bool = True,
) -> RequestReceived:
    return builders.request_received(
        occurred_at=SUBMITTED_AT + timedelta(minutes=5),
        case_ref="SDR-1446-000001",
        service_code=service_code,
        applicant=Applicant(national_id=CITIZEN, name="Aisha", phone="0501234567"),
        fields=dict(SEEDLINGS if fields is None else fields),
        documents=[Document(code="national_id_card", expires_on=card_expires_on)],
        attestation=Attestation(attested=True) if attested else None,
        submitted_at=SUBMITTED_AT,
    )


def revision_of(
    request: RequestReceived,
    revision: int,
    *,
    corrects: UUID | None = None,
    submitted_at: datetime = CORRECTED_AT,
    **payload: Any,
) -> RequestReceived:
    """The request published again, whole, as intake does after the applicant corrects it."""
    return request.model_copy(
        update={
            "event_id": uuid4(),
            "occurred_at": submitted_at + timedelta(minutes=1),
            "payload": request.payload.model_copy(
                update={
                    "revision": revision,
                    "corrects": corrects or uuid4(),
                    "submitted_at": submitted_at,
                    **payload,
                }
            ),
        }
    )


def handle(app: VerificationApplication, event: RequestReceived) -> int:
    """Runs the handler as the consumer does; returns how many events it recorded."""
    processing = ProcessingEvent()
    app.on_request_received(event, processing)
    app.record_processing(processing)
    return len(processing.events)


def verification(app: VerificationApplication, request: RequestReceived) -> Verification:
    found: Verification = app.repository.get(request.case_id)
    return found


def published(app: VerificationApplication) -> list[DataVerified]:
    sealing = translators(app.sealer)
    return [
        sealing[n.topic](app.mapper.to_domain_event(n))  # type: ignore[misc]
        for n in app.read_notifications(0, 1000, tuple(sealing))
    ]


class Views:
    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}

    def get(self, view: str, key: str) -> dict[str, Any] | None:
        assert view == VERIFICATIONS
        return self.docs.get(key)

    def put(self, view: str, key: str, doc: dict[str, Any]) -> None:
        self.docs[key] = doc

    def of(self, app: VerificationApplication, case_id: UUID) -> dict[str, Any]:
        self.docs.clear()
        for notification in app.read_notifications(0, 1000):
            project(app.mapper.to_domain_event(notification), self)  # type: ignore[arg-type]
        return self.docs[str(case_id)]


def refused_code(action: Any) -> str:
    with pytest.raises(Refused) as caught:
        action()
    assert caught.value.en and caught.value.ar, "every refusal is bilingual"
    return caught.value.code


# Rounds ---------------------------------------------------------------------------------------


def test_a_newer_revision_opens_a_new_round_checked_on_the_corrected_data(
    app: VerificationApplication,
) -> None:
    request = first_request(attested=False)
    handle(app, request)
    assert app.confirm(request.case_id, officer="officer-7") == "discrepancies"

    corrected = revision_of(request, 2, attestation=Attestation(attested=True))
    assert handle(app, corrected) == 1
    current = verification(app, request)
    assert current.revision == 2
    assert current.request_event_id == corrected.event_id
    assert current.submitted_at == CORRECTED_AT
    assert current.suggested_outcome == "verified"
    assert current.status == "pending" and current.outcome is None
    (first,) = current.earlier_rounds
    assert first["revision"] == 1 and first["request_event_id"] == request.event_id
    assert first["outcome"] == "discrepancies" and first["status"] == "confirmed"
    assert [c["field"] for c in first["corrections"]] == ["attestation"]


def test_the_same_or_an_older_revision_changes_nothing(app: VerificationApplication) -> None:
    request = first_request(attested=False)
    handle(app, request)
    app.confirm(request.case_id, officer="officer-7")
    corrected = revision_of(request, 2, attestation=Attestation(attested=True))
    assert handle(app, corrected) == 1
    version = verification(app, request).version

    assert handle(app, corrected) == 0  # redelivered
    assert handle(app, revision_of(request, 2)) == 0  # the same revision under another id
    assert handle(app, request) == 0  # the first revision, late
    assert verification(app, request).version == version
    assert verification(app, request).revision == 2


def test_a_later_revision_seen_first_opens_the_verification_at_that_revision(
    app: VerificationApplication,
) -> None:
    request = first_request(attested=False)
    corrected = revision_of(request, 2, attestation=Attestation(attested=True))
    handle(app, corrected)
    assert handle(app, request) == 0
    assert verification(app, request).revision == 2
    assert verification(app, request).earlier_rounds == []


def test_each_round_is_published_with_its_revision_and_caused_by_that_revision(
    app: VerificationApplication,
) -> None:
    request = first_request(attested=False)
    handle(app, request)
    app.confirm(request.case_id, officer="officer-7")
    corrected = revision_of(request, 2, attestation=Attestation(attested=True))
    handle(app, corrected)
    assert app.confirm(request.case_id, officer="officer-8", revision=2) == "verified"

    first, second = published(app)
    assert (first.payload.revision, first.payload.outcome) == (1, "discrepancies")
    assert first.causation_id == request.event_id
    assert (second.payload.revision, second.payload.outcome) == (2, "verified")
    assert second.causation_id == corrected.event_id
    assert second.correlation_id == request.correlation_id == first.correlation_id
    assert second.case_id == request.case_id and second.event_id != first.event_id


def test_validity_is_judged_at_the_revisions_submission(app: VerificationApplication) -> None:
    # The card expires on 3 March: valid at the first submission, expired at the correction.
    request = first_request(fields={"planting_site": "Wadi Hanifa"}, card_expires_on=date(2025, 3, 3))
    handle(app, request)
    checks = {c["name"]: c for c in verification(app, request).checks}
    assert checks["document:national_id_card"]["passed"]
    app.confirm(request.case_id, officer="officer-7")

    handle(app, revision_of(request, 2, fields=dict(SEEDLINGS)))
    current = verification(app, request)
    checks = {c["name"]: c for c in current.checks}
    assert checks["required_fields"]["passed"]
    assert not checks["document:national_id_card"]["passed"]
    assert current.suggested_outcome == "discrepancies"


def test_membership_standing_is_judged_at_the_revisions_submission(
    app: VerificationApplication,
) -> None:
    # A member in good standing until 4 March, suspended from then.
    app.register_member(
        "sidr", CITIZEN, name="Aisha", joined_on="2020-01-01", status="good",
        status_since="2020-01-01",
    )
    app.register_member(
        "sidr", CITIZEN, name="Aisha", joined_on="2020-01-01", status="suspended",
        status_since="2025-03-04",
    )
    request = first_request(service_code="member-service", fields={})
    handle(app, request)
    checks = {c["name"]: c for c in verification(app, request).checks}
    assert checks["membership_standing"]["passed"]
    assert verification(app, request).suggested_outcome == "discrepancies"  # details missing
    app.confirm(request.case_id, officer="officer-7")

    handle(app, revision_of(request, 2, fields={"request_details": "help"}))
    current = verification(app, request)
    assert current.suggested_outcome == "ineligible"
    assert current.ineligible_rule and current.ineligible_rule.startswith("Members only")


def test_confirming_a_revision_the_officer_did_not_review_is_refused(
    app: VerificationApplication,
) -> None:
    request = first_request(attested=False)
    handle(app, request)
    app.confirm(request.case_id, officer="officer-7", revision=1)
    handle(app, revision_of(request, 2, attestation=Attestation(attested=True)))
    assert (
        refused_code(lambda: app.confirm(request.case_id, officer="officer-7", revision=1))
        == "revision_changed"
    )
    assert verification(app, request).status == "pending"
    assert app.confirm(request.case_id, officer="officer-7", revision=2) == "verified"
    assert (
        refused_code(lambda: app.confirm(request.case_id, officer="officer-7"))
        == "already_confirmed"
    )


def test_a_round_superseded_before_confirmation_is_kept_unconfirmed(
    app: VerificationApplication,
) -> None:
    request = first_request(attested=False)
    handle(app, request)
    handle(app, revision_of(request, 2, attestation=Attestation(attested=True)))
    (first,) = verification(app, request).earlier_rounds
    assert first["status"] == "pending" and first["outcome"] is None
    assert first["data_verified_event_id"] is None
    app.confirm(request.case_id, officer="officer-7")
    assert [event.payload.revision for event in published(app)] == [2]


def test_the_officer_sees_the_current_round_and_the_earlier_ones(
    app: VerificationApplication,
) -> None:
    request = first_request(attested=False)
    handle(app, request)
    app.confirm(request.case_id, officer="officer-7")
    corrected = revision_of(request, 2, attestation=Attestation(attested=True))
    handle(app, corrected)

    doc = Views().of(app, request.case_id)
    assert doc["revision"] == 2 and doc["status"] == "pending"
    assert doc["suggested_outcome"] == "verified" and doc["outcome"] is None
    assert doc["request_event_id"] == str(corrected.event_id)
    assert doc["submitted_at_display"]["gregorian"] == "2025-03-06"
    assert doc["sort_key"] == SUBMITTED_AT.isoformat()  # keeps its place in the queue
    (first,) = doc["earlier_rounds"]
    assert first["revision"] == 1 and first["status"] == "confirmed"
    assert first["outcome"] == "discrepancies" and first["officer"] == "officer-7"
    assert first["submitted_at_display"]["gregorian"] == "2025-03-01"
    assert first["confirmed_at_display"]["gregorian"] == "2025-03-07"
    assert [c["field"] for c in first["corrections"]] == ["attestation"]
    assert first["data_verified_event_id"] == str(published(app)[0].event_id)

    app.confirm(request.case_id, officer="officer-8")
    doc = Views().of(app, request.case_id)
    assert doc["status"] == "confirmed" and doc["outcome"] == "verified"
    assert len(doc["earlier_rounds"]) == 1

    status = app.verification_status(request.case_id)
    assert status["revision"] == 2 and status["outcome"] == "verified"
    (earlier,) = status["earlier_rounds"]
    assert earlier["outcome"] == "discrepancies"
    assert earlier["submitted_at_display"]["gregorian"] == "2025-03-01"


# The rule an ineligible applicant is told -----------------------------------------------------


def test_a_failed_eligibility_rule_is_published_in_both_languages(
    app: VerificationApplication,
) -> None:
    request = first_request(fields={"planting_site": "Wadi Hanifa", "seedling_count": 900})
    handle(app, request)
    assert app.confirm(request.case_id, officer="officer-7") == "ineligible"
    (event,) = published(app)
    assert event.payload.ineligible_rule == "One request may ask for 1 to 500 seedlings"
    assert event.payload.ineligible_reason is not None
    assert event.payload.ineligible_reason.en == "One request may ask for 1 to 500 seedlings"
    assert event.payload.ineligible_reason.ar == "يصرف من ١ إلى ٥٠٠ شتلة للطلب الواحد"
    doc = Views().of(app, request.case_id)
    assert doc["ineligible_reason"]["ar"] == "يصرف من ١ إلى ٥٠٠ شتلة للطلب الواحد"


def test_the_members_only_rule_is_published_in_both_languages(
    app: VerificationApplication,
) -> None:
    request = first_request(service_code="member-service", fields={"request_details": "help"})
    handle(app, request)  # not a member
    doc = Views().of(app, request.case_id)
    assert doc["ineligible_reason"]["ar"].startswith("للأعضاء فقط")  # shown before confirming
    app.confirm(request.case_id, officer="officer-7")
    (event,) = published(app)
    reason = event.payload.ineligible_reason
    assert reason is not None and reason.en == event.payload.ineligible_rule
    assert reason.en.startswith("Members only")
    assert reason.ar.startswith("للأعضاء فقط") and PACKS["sidr"].clients.plural.ar in reason.ar


def test_an_officers_ineligible_override_gives_their_reason_as_written(
    app: VerificationApplication,
) -> None:
    request = first_request()
    handle(app, request)
    app.confirm(
        request.case_id, officer="officer-7", outcome="ineligible", reason="المتقدم متوفى"
    )
    (event,) = published(app)
    assert event.payload.ineligible_rule == "المتقدم متوفى"
    assert event.payload.ineligible_reason is not None
    assert event.payload.ineligible_reason.model_dump() == {"ar": "المتقدم متوفى", "en": "المتقدم متوفى"}


def test_an_outcome_other_than_ineligible_has_no_reason(app: VerificationApplication) -> None:
    request = first_request()
    handle(app, request)
    app.confirm(request.case_id, officer="officer-7")
    (event,) = published(app)
    assert event.payload.outcome == "verified"
    assert event.payload.ineligible_rule is None and event.payload.ineligible_reason is None
