"""Verification's rules: the automatic checks, the suggested outcome, the confirmation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import ProcessingEvent
from eventsourcing.utils import get_topic

from services.verification.application import VerificationApplication
from services.verification.domain import (
    Check,
    Verification,
    automatic_checks,
    check_attestation_signed,
    check_name_present,
    check_national_id_format,
    check_phone_format,
    corrections_of,
    ineligible_rule_of,
    normalise_phone,
    suggested_outcome,
)
from services.verification.integration import TRANSLATORS
from shared.clock import FrozenClock
from shared.errors import NotFound, Refused
from shared.events import (
    Applicant,
    Attestation,
    DataVerified,
    RequestReceived,
)
from shared.http import refusal_status
from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs
from tests import builders
from tests.unit.verification_keys import sealer_in

pytestmark = pytest.mark.unit

SUBMITTED_AT = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
CONFIRMED_AT = SUBMITTED_AT + timedelta(days=1)
GOOD_APPLICANT = {"national_id": "1012345672", "name": "Aisha", "phone": "+966 50 123 4567"}
SIGNED = {"attested": True}
PACKS = load_packs(DEFAULT_POLICIES_DIR)


def open_verification(
    applicant: dict[str, Any] | None = None,
    attestation: dict[str, Any] | None = SIGNED,
    request_event_id: UUID | None = None,
) -> Verification:
    request_event_id = request_event_id or uuid4()
    return Verification.open(
        case_id=uuid4(),
        request_event_id=request_event_id,
        association_id="sidr",
        case_ref="SID-0001",
        correlation_id=request_event_id,
        service_code="volunteering",
        channel="website",
        submitted_at=SUBMITTED_AT,
        applicant=applicant or GOOD_APPLICANT,
        attestation=attestation,
        fields={"availability": "weekends"},
        pack=PACKS["sidr"],
    )


def confirm(verification: Verification, **kwargs: Any) -> None:
    verification.confirm(
        event_id=kwargs.pop("event_id", uuid4()),
        officer=kwargs.pop("officer", "officer-7"),
        confirmed_at=CONFIRMED_AT,
        **kwargs,
    )


def by_name(checks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in checks}


# National id ------------------------------------------------------------------


@pytest.mark.parametrize("national_id", ["1012345672", "2987654320"])
def test_a_ten_digit_id_of_a_citizen_or_resident_passes(national_id: str) -> None:
    check = check_national_id_format(national_id)
    assert check.passed
    assert check.name == "national_id_format"


def test_the_id_detail_says_whether_citizen_or_resident() -> None:
    assert "citizen" in check_national_id_format("1012345672").detail
    assert "resident" in check_national_id_format("2000000006").detail


@pytest.mark.parametrize(
    "national_id",
    ["3012345678", "0012345678", "101234567", "10123456789", "10123x5678", "", None, "١٠١٢٣٤٥٦٧٨"],
)
def test_an_id_not_ten_digits_starting_with_1_or_2_fails(national_id: str | None) -> None:
    check = check_national_id_format(national_id)
    assert not check.passed
    assert check.detail


def test_a_check_detail_never_repeats_the_national_id() -> None:
    for national_id in ("1012345672", "3012345678"):
        assert national_id not in check_national_id_format(national_id).detail


# Name ------------------------------------------------------------------------


def test_a_name_is_present_when_it_has_a_visible_character() -> None:
    assert check_name_present("عائشة").passed


@pytest.mark.parametrize("name", ["", "   ", None])
def test_a_blank_or_missing_name_fails(name: str | None) -> None:
    assert not check_name_present(name).passed


# Phone ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "phone",
    [
        "+966501234567",
        "0501234567",
        "501234567",
        "966501234567",
        "00966501234567",
        "+966 50-123-4567",
        "050 123 4567",
        "(050) 123.4567",
        "٠٥٠١٢٣٤٥٦٧",
        "+966 0501234567",
    ],
)
def test_a_saudi_mobile_in_any_usual_form_is_normalised_to_e164(phone: str) -> None:
    assert normalise_phone(phone) == "+966501234567"
    check = check_phone_format(phone)
    assert check.passed
    # The check is kept unsealed and published: it says the number is valid, not what it is.
    assert "E.164" in check.detail
    for text in (check.detail, check.detail_ar):
        assert "501234567" not in text and "٥٠١٢٣٤٥٦٧" not in text


@pytest.mark.parametrize(
    "phone, e164",
    [
        ("0114567890", "+966114567890"),
        ("+44 20 7946 0958", "+442079460958"),
        ("0044 20 7946 0958", "+442079460958"),
    ],
)
def test_landlines_and_international_numbers_are_normalised(phone: str, e164: str) -> None:
    assert normalise_phone(phone) == e164


@pytest.mark.parametrize("phone", [None, "", "  "])
def test_a_missing_phone_passes_because_it_is_optional(phone: str | None) -> None:
    check = check_phone_format(phone)
    assert check.passed
    assert "optional" in check.detail.lower()


@pytest.mark.parametrize(
    "phone",
    [
        "12345678",
        "123456789",
        "1234567890123456",
        "+966-50-12a-4567",
        "966+501234567",
        "++966501234567",
        "05012345",
        "+96650123456",
        "+9665012345678",
        "+0501234567",
    ],
)
def test_a_number_that_cannot_be_a_phone_fails_with_a_correction(phone: str) -> None:
    check = check_phone_format(phone)
    assert not check.passed
    assert check.correction is not None and check.correction["field"] == "phone"
    assert check.correction["ar"] and check.correction["en"]


# Attestation ------------------------------------------------------------------


def test_a_signed_attestation_passes() -> None:
    assert check_attestation_signed({"attested": True, "method": "signature"}).passed


@pytest.mark.parametrize("attestation", [None, {"attested": False}, {}])
def test_a_missing_or_unaffirmed_attestation_fails(attestation: dict[str, Any] | None) -> None:
    assert not check_attestation_signed(attestation).passed


# Suggested outcome ------------------------------------------------------------


def test_all_checks_run_in_a_stable_order() -> None:
    names = [check.name for check in automatic_checks(GOOD_APPLICANT, SIGNED)]
    assert names == ["national_id_format", "name_present", "phone_format", "attestation_signed"]


def test_everything_passing_suggests_verified() -> None:
    assert suggested_outcome(automatic_checks(GOOD_APPLICANT, SIGNED)) == "verified"


def test_a_bad_national_id_is_a_discrepancy_the_applicant_must_correct() -> None:
    # A wrong number is most often mistyped: the applicant corrects it; it is no verdict.
    applicant = {"national_id": "1012345678", "name": "Aisha"}
    checks = automatic_checks(applicant, SIGNED)
    assert suggested_outcome(checks) == "discrepancies"
    assert [c["field"] for c in corrections_of(checks)] == ["national_id"]


def test_a_failed_rule_suggests_ineligible_even_when_others_fail_too() -> None:
    checks = [
        Check(
            "national_id_format",
            False,
            "bad",
            correction={"field": "national_id", "ar": "x", "en": "x"},
        ),
        Check("eligibility:gpa", False, "too low", rule="GPA at least 4.5"),
    ]
    assert suggested_outcome(checks) == "ineligible"
    assert ineligible_rule_of(checks) == "GPA at least 4.5"


@pytest.mark.parametrize(
    "applicant, attestation",
    [
        ({**GOOD_APPLICANT, "name": " "}, SIGNED),
        ({**GOOD_APPLICANT, "phone": "12-34"}, SIGNED),
        (GOOD_APPLICANT, None),
        (GOOD_APPLICANT, {"attested": False}),
    ],
)
def test_any_other_failed_check_suggests_discrepancies(
    applicant: dict[str, Any], attestation: dict[str, Any] | None
) -> None:
    assert suggested_outcome(automatic_checks(applicant, attestation)) == "discrepancies"


def test_no_failed_check_is_verified_whatever_the_details() -> None:
    assert suggested_outcome([Check("anything", True, "")]) == "verified"


# Opening a verification -------------------------------------------------------


def test_opening_records_the_request_checks_and_suggestion() -> None:
    request_event_id = uuid4()
    verification = open_verification(
        applicant={**GOOD_APPLICANT, "phone": "bad"}, request_event_id=request_event_id
    )
    (opened,) = verification.collect_events()
    assert isinstance(opened, Verification.Opened)
    assert opened.request_event_id == request_event_id
    assert opened.correlation_id == request_event_id
    assert opened.submitted_at == SUBMITTED_AT
    assert (opened.association_id, opened.case_ref) == ("sidr", "SID-0001")
    assert (opened.service_code, opened.channel) == ("volunteering", "website")
    assert opened.suggested_outcome == "discrepancies"
    assert by_name(opened.checks)["phone_format"]["passed"] is False
    assert verification.status == "pending"
    assert verification.outcome is None


def test_the_verification_id_is_the_case_id() -> None:
    case_id = uuid4()
    verification = Verification.open(
        case_id=case_id,
        request_event_id=uuid4(),
        association_id="sidr",
        case_ref="SID-0001",
        correlation_id=uuid4(),
        service_code="volunteering",
        channel="website",
        submitted_at=SUBMITTED_AT,
        applicant=GOOD_APPLICANT,
        attestation=SIGNED,
    )
    assert verification.id == case_id


# Confirmation -----------------------------------------------------------------


def test_confirming_without_an_outcome_takes_the_suggested_one() -> None:
    verification = open_verification(attestation=None)
    confirm(verification)
    assert verification.outcome == "discrepancies"
    assert verification.status == "confirmed"


def test_the_confirmation_is_caused_by_the_received_request() -> None:
    request_event_id = uuid4()
    verification = open_verification(request_event_id=request_event_id)
    event_id = uuid4()
    confirm(verification, event_id=event_id, officer="officer-7")
    confirmed = verification.collect_events()[-1]
    assert isinstance(confirmed, Verification.Confirmed)
    assert confirmed.event_id == event_id
    assert confirmed.causation_id == request_event_id
    assert confirmed.correlation_id == request_event_id
    assert (confirmed.association_id, confirmed.case_ref) == ("sidr", "SID-0001")
    assert confirmed.officer == "officer-7"
    assert confirmed.outcome == "verified"
    assert confirmed.confirmed_at == CONFIRMED_AT
    assert [c["name"] for c in confirmed.checks] == [
        "national_id_format",
        "name_present",
        "phone_format",
        "attestation_signed",
        "service_known",
        "required_fields",
    ]
    assert (confirmed.corrections, confirmed.ineligible_rule, confirmed.override_reason) == (
        [],
        None,
        None,
    )


def test_confirming_the_suggested_outcome_explicitly_needs_no_reason() -> None:
    verification = open_verification()
    confirm(verification, outcome="verified")
    assert verification.outcome == "verified"


def test_override_without_reason_is_refused() -> None:
    verification = open_verification(attestation=None)
    for reason in (None, "", "   "):
        with pytest.raises(Refused) as refused:
            confirm(verification, outcome="verified", reason=reason)
        assert refused.value.code == "override_needs_reason"
        assert refusal_status(refused.value) == 409
        assert refused.value.en and refused.value.ar
        # The Arabic names the outcomes in Arabic, not by their codes.
        assert "«البيانات مستوفاة»" in refused.value.ar and "verified" not in refused.value.ar
    assert verification.status == "pending"


def test_override_with_reason_adds_an_officer_override_check() -> None:
    verification = open_verification(attestation=None)
    confirm(verification, outcome="verified", reason="Signed on paper at the branch office")
    confirmed = verification.collect_events()[-1]
    assert confirmed.outcome == "verified"
    assert confirmed.suggested_outcome == "discrepancies"
    assert {k: confirmed.checks[-1][k] for k in ("name", "passed", "detail")} == {
        "name": "officer_override",
        "passed": True,
        "detail": "Signed on paper at the branch office",
    }
    assert confirmed.override_reason == "Signed on paper at the branch office"
    assert confirmed.corrections == []
    assert by_name(confirmed.checks)["attestation_signed"]["passed"] is False


def test_confirming_twice_is_refused() -> None:
    verification = open_verification()
    confirm(verification)
    with pytest.raises(Refused) as refused:
        confirm(verification, outcome="ineligible", reason="changed my mind")
    assert refused.value.code == "already_confirmed"
    assert verification.outcome == "verified"


def test_an_unnamed_officer_is_refused() -> None:
    verification = open_verification()
    with pytest.raises(Refused) as refused:
        confirm(verification, officer="  ")
    assert refused.value.code == "officer_required"


def test_an_unknown_outcome_is_refused() -> None:
    verification = open_verification()
    with pytest.raises(Refused) as refused:
        confirm(verification, outcome="maybe", reason="why not")
    assert refused.value.code == "unknown_outcome"


# Translation to the integration event ---------------------------------------------


def test_the_confirmation_is_published_as_data_verified() -> None:
    request_event_id = uuid4()
    verification = open_verification(attestation=None, request_event_id=request_event_id)
    confirm(verification, outcome="ineligible", reason="Deceased applicant", officer="officer-7")
    confirmed = verification.collect_events()[-1]
    published = TRANSLATORS[get_topic(Verification.Confirmed)](confirmed)
    assert isinstance(published, DataVerified)
    assert published.event_id == confirmed.event_id
    assert published.causation_id == request_event_id
    assert published.correlation_id == request_event_id
    assert published.case_id == verification.id
    assert published.occurred_at == CONFIRMED_AT
    assert published.actor.model_dump() == {"kind": "officer", "id": "officer-7"}
    assert published.payload.outcome == "ineligible"
    assert published.payload.officer == "officer-7"
    assert published.payload.checks[-1].name == "officer_override"
    assert published.payload.override_reason == "Deceased applicant"
    # No rule failed: the officer's reason is the rule the applicant is told.
    assert published.payload.ineligible_rule == "Deceased applicant"
    assert published.payload.corrections == []


# The application, on an in-memory store -------------------------------------------


def request_received(**payload_overrides: Any) -> RequestReceived:
    payload = {
        "channel": "website",
        "channel_ref": "form-1",
        "service_code": "volunteering",
        "fields": {"availability": "weekends"},
        "applicant": Applicant(**GOOD_APPLICANT),
        "attestation": Attestation(attested=True),
        **payload_overrides,
    }
    return builders.request_received(occurred_at=SUBMITTED_AT, case_ref="SID-0001", **payload)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[VerificationApplication]:
    with sealer_in(tmp_path) as sealer:
        yield VerificationApplication(
            env={"PERSISTENCE_MODULE": "eventsourcing.popo"},
            clock=FrozenClock(CONFIRMED_AT),
            packs=PACKS,
            sealer=sealer,
        )


def handle(app: VerificationApplication, event: RequestReceived) -> ProcessingEvent:
    processing = ProcessingEvent()
    app.on_request_received(event, processing)
    app.record_processing(processing)
    return processing


def test_the_same_request_received_twice_opens_one_verification(
    app: VerificationApplication,
) -> None:
    event = request_received()
    assert len(handle(app, event).events) == 1
    assert handle(app, event).events == []
    assert app.verification_status(event.case_id)["version"] == 1


def test_the_application_confirms_with_the_clock_time(app: VerificationApplication) -> None:
    event = request_received(attestation=None)
    handle(app, event)
    assert app.confirm(event.case_id, officer="officer-7") == "discrepancies"
    (notification,) = app.read_notifications(0, 10, tuple(TRANSLATORS))
    published = TRANSLATORS[notification.topic](app.mapper.to_domain_event(notification))
    assert published.occurred_at == CONFIRMED_AT
    assert published.causation_id == event.event_id


def test_confirming_an_unknown_case_is_not_found(app: VerificationApplication) -> None:
    with pytest.raises(NotFound) as not_found:
        app.confirm(uuid4(), officer="officer-7")
    assert refusal_status(not_found.value) == 404
    assert not_found.value.en and not_found.value.ar
