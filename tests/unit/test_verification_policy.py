"""Verification against the association's pack, at submission time.

Identity numbers with their check digit, the service's documents judged on the
day of submission (Riyadh), its fields and eligibility rules, membership
standing for member-only services, and the corrections / rule the applicant is told.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.application import ProcessingEvent
from eventsourcing.utils import get_topic

from services.verification.application import VerificationApplication
from services.verification.domain import (
    NOT_A_MEMBER,
    Standing,
    Verification,
    check_national_id_format,
    id_kind,
    saudi_id_check_digit_valid,
)
from services.verification.integration import TRANSLATORS
from services.verification.views import project
from shared.clock import FrozenClock
from shared.events import (
    Applicant,
    Attestation,
    Document,
    RequestReceived,
)
from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs
from tests import builders
from tests.unit.verification_keys import sealer_in

pytestmark = pytest.mark.unit

PACKS = load_packs(DEFAULT_POLICIES_DIR)
CITIZEN = "1000000008"
RESIDENT = "2000000006"
# 2025-03-01 09:30 UTC is 12:30 in Riyadh, on 1 March.
SUBMITTED_AT = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
ID_CARD = {"code": "national_id_card", "number": "x", "expires_on": "2027-01-01"}


def open_with(
    *,
    association_id: str = "sidr",
    service_code: str = "seedlings",
    fields: dict[str, Any] | None = None,
    documents: list[dict[str, Any]] | None = None,
    national_id: str = CITIZEN,
    standing: Standing = NOT_A_MEMBER,
    submitted_at: datetime = SUBMITTED_AT,
) -> Verification:
    return Verification.open(
        case_id=uuid4(),
        request_event_id=uuid4(),
        association_id=association_id,
        case_ref="SDR-1446-000001",
        correlation_id=uuid4(),
        service_code=service_code,
        channel="website",
        submitted_at=submitted_at,
        applicant={"national_id": national_id, "name": "Aisha", "phone": "0501234567"},
        attestation={"attested": True},
        fields={"planting_site": "Wadi Hanifa", "seedling_count": 20} if fields is None else fields,
        documents=[ID_CARD] if documents is None else documents,
        pack=PACKS.get(association_id),
        standing=standing,
    )


def checks_of(verification: Verification) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in verification.checks}


# Saudi identity numbers ----------------------------------------------------------------


@pytest.mark.parametrize(
    "number, kind",
    [(CITIZEN, "citizen"), ("1012345672", "citizen"), (RESIDENT, "resident"), ("2987654320", "resident")],
)
def test_valid_ids_pass_and_say_whether_national_id_or_iqama(number: str, kind: str) -> None:
    assert saudi_id_check_digit_valid(number)
    assert id_kind(number) == kind
    check = check_national_id_format(number)
    assert check.passed
    assert ("iqama" in check.detail) == (kind == "resident")
    assert check.detail_ar


@pytest.mark.parametrize("number", ["1000000001", "1012345678", "2000000001", "2987654321"])
def test_a_wrong_check_digit_fails_with_a_correction(number: str) -> None:
    assert not saudi_id_check_digit_valid(number)
    check = check_national_id_format(number)
    assert not check.passed
    assert "check digit" in check.detail
    assert check.correction and check.correction["field"] == "national_id"
    assert number not in check.detail + check.detail_ar


def test_a_valid_check_digit_starting_with_another_digit_is_not_a_saudi_id() -> None:
    assert saudi_id_check_digit_valid("3000000004")
    assert not check_national_id_format("3000000004").passed
    assert id_kind("3000000004") is None


# The pack: service, fields ----------------------------------------------------------------


def test_a_complete_valid_request_is_verified_with_every_check_recorded() -> None:
    verification = open_with()
    assert verification.suggested_outcome == "verified"
    assert list(checks_of(verification)) == [
        "national_id_format",
        "name_present",
        "phone_format",
        "attestation_signed",
        "service_known",
        "required_fields",
        "document:national_id_card",
        "eligibility:seedling_count",
    ]
    for check in verification.checks:
        assert check["passed"] and check["detail"] and check["detail_ar"]
    assert "501234567" not in str(verification.checks)  # checks never repeat the phone


@pytest.mark.parametrize(
    "association_id, service_code, field",
    [("no-such-association", "seedlings", "association_id"), ("sidr", "food-basket", "service_code")],
)
def test_an_unknown_association_or_service_is_a_discrepancy_not_a_crash(
    association_id: str, service_code: str, field: str
) -> None:
    verification = open_with(association_id=association_id, service_code=service_code)
    assert verification.suggested_outcome == "discrepancies"
    check = checks_of(verification)["service_known"]
    assert not check["passed"] and check["detail_ar"]
    assert [c["field"] for c in verification.corrections] == [field]


def test_a_missing_required_field_is_a_discrepancy_naming_it_in_both_languages() -> None:
    verification = open_with(fields={"seedling_count": 20})
    assert verification.suggested_outcome == "discrepancies"
    (correction,) = verification.corrections
    assert correction["field"] == "planting_site"
    assert "Planting site" in correction["en"] and "موقع الزراعة" in correction["ar"]


# Documents, judged on the day of submission -------------------------------------------------


def test_a_missing_required_document_is_a_discrepancy() -> None:
    verification = open_with(documents=[])
    check = checks_of(verification)["document:national_id_card"]
    assert not check["passed"]
    assert verification.suggested_outcome == "discrepancies"
    assert verification.corrections[0]["field"] == "national_id_card"


def test_a_document_that_expired_after_submission_but_before_now_is_still_valid() -> None:
    # Expired in 2026, long before "now", but valid on the submission day in 2025.
    document = {**ID_CARD, "expires_on": "2025-06-30"}
    verification = open_with(documents=[document])
    check = checks_of(verification)["document:national_id_card"]
    assert check["passed"], check
    assert verification.suggested_outcome == "verified"


def test_a_document_expired_before_submission_is_a_discrepancy() -> None:
    document = {**ID_CARD, "expires_on": "2025-02-28"}
    verification = open_with(documents=[document])
    check = checks_of(verification)["document:national_id_card"]
    assert not check["passed"]
    assert "expired" in check["detail"] and "AH" in check["detail"]
    assert verification.suggested_outcome == "discrepancies"


def test_the_submission_day_is_the_day_in_riyadh() -> None:
    # 22:30 UTC on 28 February is already 1 March in Riyadh: a card expiring
    # on 28 February had expired on the applicant's day of submission.
    late_evening = datetime(2025, 2, 28, 22, 30, tzinfo=UTC)
    document = {**ID_CARD, "expires_on": "2025-02-28"}
    assert not checks_of(open_with(documents=[document], submitted_at=late_evening))[
        "document:national_id_card"
    ]["passed"]
    day_before = datetime(2025, 2, 28, 20, 59, tzinfo=UTC)  # 23:59 Riyadh
    assert checks_of(open_with(documents=[document], submitted_at=day_before))[
        "document:national_id_card"
    ]["passed"]


def test_a_document_expiring_on_the_submission_day_is_valid_that_day() -> None:
    document = {**ID_CARD, "expires_on": "2025-03-01"}
    assert checks_of(open_with(documents=[document]))["document:national_id_card"]["passed"]


def test_a_required_document_with_expiry_needs_its_expiry_date() -> None:
    document = {"code": "national_id_card", "number": "x"}
    check = checks_of(open_with(documents=[document]))["document:national_id_card"]
    assert not check["passed"] and "expiry" in check["detail"]


def test_a_document_issued_after_the_submission_is_not_the_one_submitted() -> None:
    document = {**ID_CARD, "issued_on": "2025-04-01"}
    assert not checks_of(open_with(documents=[document]))["document:national_id_card"]["passed"]


def test_every_provided_document_is_a_recorded_check() -> None:
    extra = {"code": "photo", "expires_on": "2024-01-01"}
    checks = checks_of(open_with(documents=[ID_CARD, extra]))
    assert checks["document:national_id_card"]["passed"]
    assert not checks["document:photo"]["passed"]


# Eligibility rules of the pack -------------------------------------------------------------


def test_failing_an_eligibility_rule_is_ineligible_with_the_rule() -> None:
    verification = open_with(fields={"planting_site": "Wadi Hanifa", "seedling_count": 900})
    assert verification.suggested_outcome == "ineligible"
    assert verification.ineligible_rule == "One request may ask for 1 to 500 seedlings"
    check = checks_of(verification)["eligibility:seedling_count"]
    assert not check["passed"]
    assert "٥٠٠" in check["detail_ar"]


def test_an_eligibility_rule_of_another_pack_applies_to_its_own_association() -> None:
    verification = open_with(
        association_id="elites",
        service_code=PACKS["elites"].services[0].code,
        fields={},
        documents=[],
    )
    assert verification.suggested_outcome in ("discrepancies", "ineligible")
    elites = next(s for s in PACKS["elites"].services if s.eligibility)
    fields = {f.name: "x" for f in elites.required_fields} | {"gpa": 3.9}
    verification = open_with(
        association_id="elites",
        service_code=elites.code,
        fields=fields,
        documents=[ID_CARD, {"code": "transcript"}],
    )
    assert verification.suggested_outcome == "ineligible"
    assert verification.ineligible_rule == "The scholarship needs a GPA of at least 4.5 out of 5"


def test_an_eligibility_field_not_given_is_a_discrepancy_not_a_verdict() -> None:
    verification = open_with(fields={"planting_site": "Wadi Hanifa"})
    assert verification.suggested_outcome == "discrepancies"
    assert verification.ineligible_rule is None
    assert "seedling_count" in [c["field"] for c in verification.corrections]


# Membership standing at submission time ------------------------------------------------------


def member_service(standing: Standing, national_id: str = CITIZEN) -> Verification:
    return open_with(
        service_code="member-service",
        fields={"request_details": "help"},
        standing=standing,
        national_id=national_id,
    )


def test_a_member_in_good_standing_on_the_day_is_verified() -> None:
    verification = member_service(Standing("good", date(2020, 1, 1)))
    assert verification.suggested_outcome == "verified"
    assert checks_of(verification)["membership_standing"]["passed"]


@pytest.mark.parametrize(
    "standing", [Standing(), Standing("suspended", date(2025, 1, 1)), Standing("left", date(2024, 5, 1))]
)
def test_a_non_member_or_member_not_in_good_standing_is_ineligible(standing: Standing) -> None:
    verification = member_service(standing)
    assert verification.suggested_outcome == "ineligible"
    assert verification.ineligible_rule.startswith("Members only")
    check = checks_of(verification)["membership_standing"]
    assert not check["passed"] and check["detail_ar"]


@pytest.mark.parametrize("expires_on", ["2080-01-01", "2090-06-30", "2099-12-31"])
def test_a_document_expiring_beyond_the_hijri_table_is_judged_and_shown_in_gregorian(
    expires_on: str,
) -> None:
    # Recorded before such dates were refused at the door (decision 28).
    check = checks_of(open_with(documents=[{**ID_CARD, "expires_on": expires_on}]))[
        "document:national_id_card"
    ]
    assert check["passed"], check
    expiry = check["detail"].split("(expires ")[1]
    assert expires_on[:4] in expiry and "AH" not in expiry


@pytest.mark.parametrize("since", [date(1441, 5, 20), date(2099, 1, 1)])
def test_a_standing_dated_beyond_the_hijri_table_is_judged_and_shown_in_gregorian(
    since: date,
) -> None:
    good = member_service(Standing("good", since))
    assert checks_of(good)["membership_standing"]["passed"]
    suspended = member_service(Standing("suspended", since))
    check = checks_of(suspended)["membership_standing"]
    assert not check["passed"] and str(since.year) in check["detail"]


def test_membership_is_not_judged_on_an_invalid_id() -> None:
    verification = member_service(Standing(), national_id="1000000001")
    assert verification.suggested_outcome == "discrepancies"
    assert not checks_of(verification)["membership_standing"]["passed"]


def test_a_service_open_to_all_does_not_check_membership() -> None:
    assert "membership_standing" not in checks_of(open_with())


# The application: the registry and the request together ----------------------------------------


@pytest.fixture
def app(tmp_path: Path) -> Iterator[VerificationApplication]:
    with sealer_in(tmp_path) as sealer:
        yield VerificationApplication(
            env={"PERSISTENCE_MODULE": "eventsourcing.popo"},
            clock=FrozenClock(NOW),
            packs=PACKS,
            sealer=sealer,
        )


def received(
    *,
    service_code: str = "member-service",
    fields: dict[str, Any] | None = None,
    documents: list[Document] | None = None,
    submitted_at: datetime | None = SUBMITTED_AT,
    occurred_at: datetime = SUBMITTED_AT + timedelta(days=3),
    national_id: str = CITIZEN,
) -> RequestReceived:
    return builders.request_received(
        occurred_at=occurred_at,
        case_ref="SDR-1446-000001",
        service_code=service_code,
        applicant=Applicant(national_id=national_id, name="Aisha", phone="0501234567"),
        fields={"request_details": "help"} if fields is None else fields,
        documents=(
            [Document(code="national_id_card", expires_on=date(2025, 3, 2))]
            if documents is None
            else documents
        ),
        attestation=Attestation(attested=True),
        submitted_at=submitted_at,
    )


def handle(app: VerificationApplication, event: RequestReceived) -> Verification:
    processing = ProcessingEvent()
    app.on_request_received(event, processing)
    app.record_processing(processing)
    return app.repository.get(event.case_id)


REGISTRY = (
    "national_id,name,joined_on,status,status_since\n"
    f"{CITIZEN},Aisha,2020-01-01,suspended,2025-02-15\n"
    f"{RESIDENT},Omar,2019-05-01,good,2019-05-01\n"
)


def test_standing_is_judged_at_submission_not_at_processing(app: VerificationApplication) -> None:
    app.import_members("sidr", REGISTRY)
    # Submitted on 1 March 2025 while suspended (since 15 February).
    assert handle(app, received()).suggested_outcome == "ineligible"
    # Submitted on 1 February, before the suspension: good standing then.
    early = received(submitted_at=datetime(2025, 2, 1, 9, tzinfo=UTC))
    assert handle(app, early).suggested_outcome == "verified"
    assert handle(app, received(national_id=RESIDENT)).suggested_outcome == "verified"


def test_without_submitted_at_the_time_the_request_occurred_is_used(
    app: VerificationApplication,
) -> None:
    # The card expires on 2 March 2025: valid on 1 March, expired on 4 March.
    event = received(service_code="seedlings", fields={"planting_site": "x", "seedling_count": 3}, submitted_at=None)
    verification = handle(app, event)
    assert verification.submitted_at == event.occurred_at
    assert not checks_of(verification)["document:national_id_card"]["passed"]
    with_submission = received(service_code="seedlings", fields={"planting_site": "x", "seedling_count": 3})
    verification = handle(app, with_submission)
    assert verification.submitted_at == SUBMITTED_AT
    assert checks_of(verification)["document:national_id_card"]["passed"]


def test_the_published_event_carries_corrections_and_rule(app: VerificationApplication) -> None:
    bad = handle(app, received(service_code="seedlings", fields={"seedling_count": 3}))
    app.confirm(bad.id, officer="officer-7")
    ineligible = handle(app, received())  # not a member
    app.confirm(ineligible.id, officer="officer-7")
    notifications = app.read_notifications(0, 100, tuple(TRANSLATORS))
    published = {
        n.originator_id: TRANSLATORS[n.topic](app.mapper.to_domain_event(n))
        for n in notifications
    }
    discrepancies = published[bad.id].payload
    assert discrepancies.outcome == "discrepancies"
    assert [c.field for c in discrepancies.corrections] == ["planting_site"]
    assert discrepancies.corrections[0].ar and discrepancies.corrections[0].en
    assert discrepancies.ineligible_rule is None
    rejected = published[ineligible.id].payload
    assert rejected.outcome == "ineligible"
    assert rejected.ineligible_rule.startswith("Members only")
    assert rejected.corrections == []
    assert rejected.override_reason is None


def test_the_view_shows_dates_in_both_calendars_and_what_the_applicant_is_told(
    app: VerificationApplication,
) -> None:
    verification = handle(app, received(service_code="seedlings", fields={"seedling_count": 3}))
    app.confirm(verification.id, officer="officer-7")
    docs: dict[str, dict[str, Any]] = {}

    class Views:
        def get(self, view: str, key: str) -> dict[str, Any] | None:
            return docs.get(key)

        def put(self, view: str, key: str, doc: dict[str, Any]) -> None:
            docs[key] = doc

    for notification in app.read_notifications(0, 100):
        project(app.mapper.to_domain_event(notification), Views())  # type: ignore[arg-type]
    doc = docs[str(verification.id)]
    assert doc["submitted_at_display"]["hijri"] == "1446-09-01"
    assert doc["submitted_at_display"]["gregorian"] == "2025-03-01"
    assert doc["confirmed_at_display"]["gregorian"] == "2026-11-21"
    assert doc["confirmed_at_display"]["ar"] and doc["confirmed_at_display"]["en"]
    assert doc["corrections"][0]["field"] == "planting_site"
    assert doc["outcome"] == "discrepancies"


def test_topic_of_the_confirmation_is_translated() -> None:
    assert get_topic(Verification.Confirmed) in TRANSLATORS
