from datetime import datetime, timezone
from uuid import UUID, uuid4

import pytest

from services.intake.domain import (
    Case,
    CaseNumbering,
    ChannelRef,
    OpenRequest,
    applicant_as_recorded,
    attested_data_hash,
    case_reference,
    channel_ref_id,
    explained_ineligibility,
    missing_information,
    normalise_phone,
    numbering_id,
    parse_case_reference,
)
from shared.errors import Refused
from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 22, tzinfo=timezone.utc)
PACKS = load_packs(DEFAULT_POLICIES_DIR)
SEEDLINGS = PACKS["sidr"].service("seedlings")
APPLICANT = {"national_id": "1000000008", "name": "Ali", "phone": None, "email": None}
FIELDS = {"planting_site": "Wadi Hanifa", "seedling_count": 20}
DOCUMENTS = [{"code": "national_id_card", "number": "1000000008", "issued_on": None, "expires_on": "2030-01-01"}]


OFFICER = {"kind": "officer", "id": "o1", "name": "Officer One", "role": "front_desk"}


def attestation(fields=FIELDS, documents=DOCUMENTS, **extra):
    return {
        "attested": True,
        "attested_by": "Ali",
        "attested_at": NOW.isoformat(),
        "method": "in_person",
        "data_hash": attested_data_hash(APPLICANT, "seedlings", fields, documents),
        **extra,
    }


def submitted_case(fields=FIELDS, documents=DOCUMENTS, attest=None, **subject) -> Case:
    return Case(
        case_id=uuid4(),
        received_event_id=uuid4(),
        association_id="sidr",
        case_ref="SDR-1448-000001",
        channel="website",
        channel_ref="form-1",
        service_code="seedlings",
        applicant=APPLICANT,
        fields=dict(fields),
        documents=list(documents),
        attestation=attest,
        actor={"kind": "adapter", "id": "website"},
        submitted_at=datetime(2026, 11, 21, tzinfo=timezone.utc),
        access_code_hash=None,
        **{"personal_key": None, "subject_index": None, "policy_version": 1, **subject},
    )


def received_case() -> Case:
    case = submitted_case(attest=attestation())
    case.check_completeness(SEEDLINGS, at=NOW, actor={"kind": "adapter", "id": "w"})
    assert case.complete
    return case


def test_the_data_hash_is_sha256_of_the_canonical_json():
    import hashlib
    import json

    data = {"applicant": APPLICANT, "service_code": "seedlings", "fields": FIELDS, "documents": DOCUMENTS}
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert attested_data_hash(APPLICANT, "seedlings", FIELDS, DOCUMENTS) == hashlib.sha256(
        canonical.encode("utf-8")
    ).hexdigest()
    changed = attested_data_hash(APPLICANT, "seedlings", {**FIELDS, "seedling_count": 21}, DOCUMENTS)
    assert changed != attested_data_hash(APPLICANT, "seedlings", FIELDS, DOCUMENTS)


def test_case_references_can_be_read_on_the_phone():
    assert case_reference("SDR", 1448, 123) == "SDR-1448-000123"


def test_missing_lists_fields_documents_and_the_declaration_in_both_languages():
    missing = missing_information(
        SEEDLINGS, applicant=APPLICANT, fields={"planting_site": " "}, documents=[], attestation=None
    )
    assert [(m["kind"], m["code"]) for m in missing] == [
        ("field", "planting_site"),
        ("field", "seedling_count"),
        ("document", "national_id_card"),
        ("attestation", "declaration"),
    ]
    assert all(m["ar"] and m["en"] for m in missing)


def test_a_document_with_expiry_needs_its_expiry_date():
    docs = [{"code": "national_id_card", "expires_on": None}]
    missing = missing_information(
        SEEDLINGS, applicant=APPLICANT, fields=FIELDS, documents=docs, attestation=None,
        include_attestation=False,
    )
    assert [(m["kind"], m["code"]) for m in missing] == [("document", "national_id_card")]


def test_a_complete_submission_completes_at_once():
    case = submitted_case(attest=attestation())
    missing = case.check_completeness(SEEDLINGS, at=NOW, actor={"kind": "adapter", "id": "w"})
    assert missing == [] and case.complete and case.status == "received"
    completed = case.collect_events()[-1]
    assert isinstance(completed, Case.Completed)
    assert completed.event_id == case.received_event_id
    assert completed.submitted_at < completed.at


def test_an_incomplete_submission_stays_open_until_the_information_arrives():
    case = submitted_case(fields={"planting_site": "Wadi"}, documents=[], attest=None)
    missing = case.check_completeness(SEEDLINGS, at=NOW, actor={"kind": "adapter", "id": "w"})
    assert {m["code"] for m in missing} == {"seedling_count", "national_id_card", "declaration"}
    assert not case.complete and case.status == "incomplete"
    assert not any(isinstance(e, Case.Completed) for e in case.collect_events())

    case.add_information(
        fields={"seedling_count": 20}, documents=DOCUMENTS, attestation=None,
        actor={"kind": "applicant", "id": "a"}, at=NOW,
    )
    assert [m["code"] for m in case.check_completeness(SEEDLINGS, at=NOW, actor={"kind": "applicant", "id": "a"})] == ["declaration"]
    case.add_information(
        fields={}, documents=[], attestation={"attested": True, "method": "one_time_code"},
        actor={"kind": "applicant", "id": "a"}, at=NOW,
    )
    assert case.attestation["data_hash"] == attested_data_hash(
        APPLICANT, "seedlings", {**{"planting_site": "Wadi"}, "seedling_count": 20}, DOCUMENTS
    )
    assert case.attestation["attested_by"] == "Ali" and case.attestation["attested_at"]
    assert case.check_completeness(SEEDLINGS, at=NOW, actor={"kind": "applicant", "id": "a"}) == []
    assert case.complete


def test_an_attestation_of_other_data_is_not_valid():
    stale = attestation(fields={**FIELDS, "seedling_count": 999})
    case = submitted_case(attest=stale)
    missing = case.check_completeness(SEEDLINGS, at=NOW, actor={"kind": "adapter", "id": "w"})
    assert [(m["kind"], m["code"]) for m in missing] == [("attestation", "declaration_outdated")]
    assert not case.complete


def test_data_changed_after_attesting_needs_a_new_declaration():
    case = submitted_case(documents=[], attest=attestation(documents=[]))
    assert [m["code"] for m in case.check_completeness(SEEDLINGS, at=NOW, actor={"kind": "a", "id": "a"})] == ["national_id_card"]
    case.add_information(fields={}, documents=DOCUMENTS, attestation=None, actor={"kind": "applicant", "id": "a"}, at=NOW)
    missing = case.check_completeness(SEEDLINGS, at=NOW, actor={"kind": "applicant", "id": "a"})
    assert [m["code"] for m in missing] == ["declaration_outdated"]


def test_an_attestation_without_method_or_not_attested_is_missing():
    for bad in ({"attested": False}, {"attested": True}):
        case = submitted_case(attest=bad)
        missing = case.check_completeness(SEEDLINGS, at=NOW, actor={"kind": "a", "id": "a"})
        assert missing and missing[-1]["kind"] == "attestation"


def test_information_for_a_complete_case_is_refused():
    case = received_case()
    with pytest.raises(Refused) as refused:
        case.add_information(fields={"x": 1}, documents=[], attestation=None, actor={"kind": "a", "id": "a"}, at=NOW)
    assert refused.value.code == "already_complete" and refused.value.ar


def test_an_incomplete_case_can_be_referred():
    case = submitted_case(documents=[], attest=None)
    case.check_completeness(SEEDLINGS, at=NOW, actor={"kind": "a", "id": "a"})
    case.refer_to_researcher(event_id=uuid4(), at=NOW, reason="unclear", questions=["q"], referred_by="o1", actor=OFFICER)
    referred = case.collect_events()[-1]
    assert isinstance(referred, Case.ReferredToResearcher)
    assert referred.correlation_id == case.received_event_id
    assert case.referred and not case.complete


def test_referral_is_caused_by_the_request():
    case = received_case()
    case.refer_to_researcher(event_id=uuid4(), at=NOW, reason="unclear", questions=["q"], referred_by="o1", actor=OFFICER)
    referred = case.collect_events()[-1]
    assert referred.causation_id == case.received_event_id
    assert referred.correlation_id == case.correlation_id


def test_delivery_before_approval_is_refused_with_the_reason():
    case = received_case()
    with pytest.raises(Refused) as refused:
        case.deliver(event_id=uuid4(), at=NOW, delivered="x", delivered_by="o1", actor=OFFICER)
    assert refused.value.code == "not_approved"
    assert "not decided" in refused.value.en and refused.value.ar


def test_delivery_after_rejection_is_refused():
    case = received_case()
    case.note_decision(source_event_id=uuid4(), decision="rejected")
    with pytest.raises(Refused) as refused:
        case.deliver(event_id=uuid4(), at=NOW, delivered="x", delivered_by="o1", actor=OFFICER)
    assert "rejected" in refused.value.en


def test_delivery_after_approval_is_caused_by_the_decision():
    case = received_case()
    decision_id = uuid4()
    case.note_verification(source_event_id=uuid4(), outcome="verified")
    case.note_decision(source_event_id=decision_id, decision="approved")
    case.deliver(event_id=uuid4(), at=NOW, delivered="20 seedlings", delivered_by="o1", actor=OFFICER)
    delivered = case.collect_events()[-1]
    assert isinstance(delivered, Case.ServiceDelivered)
    assert delivered.causation_id == decision_id
    assert case.status == "delivered" and case.closed


def test_a_service_is_delivered_once():
    case = received_case()
    case.note_decision(source_event_id=uuid4(), decision="approved")
    case.deliver(event_id=uuid4(), at=NOW, delivered="x", delivered_by="o1", actor=OFFICER)
    with pytest.raises(Refused) as refused:
        case.deliver(event_id=uuid4(), at=NOW, delivered="x", delivered_by="o1", actor=OFFICER)
    assert refused.value.code == "already_delivered"


def test_the_same_upstream_event_is_noted_once():
    case = received_case()
    source = uuid4()
    case.note_verification(source_event_id=source, outcome="verified")
    case.note_verification(source_event_id=source, outcome="verified")
    noted = [e for e in case.collect_events() if isinstance(e, Case.VerificationNoted)]
    assert len(noted) == 1


def test_a_late_verification_does_not_hide_the_decision():
    case = received_case()
    case.note_decision(source_event_id=uuid4(), decision="approved")
    case.note_verification(source_event_id=uuid4(), outcome="verified")
    assert case.status == "approved"


def test_the_channel_reference_index_is_derived_from_channel_and_reference():
    index = ChannelRef(association_id="sidr", channel="website", channel_ref="f1", case_id=uuid4())
    assert index.id == channel_ref_id("sidr", "website", "f1")
    assert index.id != channel_ref_id("sidr", "phone", "f1")


def test_numbering_takes_consecutive_numbers_per_association_and_year():
    numbering = CaseNumbering(association_id="sidr", hijri_year=1448)
    assert numbering.id == numbering_id("sidr", 1448) != numbering_id("sidr", 1449)
    assert [numbering.take_number(uuid4()) for _ in range(3)] == [1, 2, 3]


def test_the_open_request_index_is_released_only_for_its_case():
    first, other = uuid4(), uuid4()
    index = OpenRequest(
        association_id="sidr", service_code="seedlings", case_id=first, subject_index="ab" * 20,
        national_id=None,
    )
    index.release(other)
    assert index.case_id == first
    index.release(first)
    assert index.case_id is None
    index.reopen(other)
    assert index.case_id == other


def test_a_field_of_the_wrong_kind_is_still_missing():
    missing = missing_information(
        SEEDLINGS, applicant=APPLICANT, fields={**FIELDS, "seedling_count": "many"},
        documents=DOCUMENTS, attestation=None, include_attestation=False,
    )
    assert [(m["code"], m["en"]) for m in missing] == [
        ("seedling_count", "Required field: Number of seedlings (a whole number)")
    ]
    assert missing_information(
        SEEDLINGS, applicant=APPLICANT, fields={**FIELDS, "seedling_count": "20"},
        documents=DOCUMENTS, attestation=None, include_attestation=False,
    ) == []


# Corrections after verification ---------------------------------------------------------

LATER = datetime(2026, 11, 25, tzinfo=timezone.utc)
APPLICANT_ACTOR = {"kind": "applicant", "id": "a"}
NAME_CORRECTION = [{"field": "name", "ar": "أدخل اسمك الكامل.", "en": "Give your full name."}]


def with_discrepancies(case: Case, revision: int = 1) -> UUID:
    verified = uuid4()
    case.note_verification(
        source_event_id=verified, outcome="discrepancies", revision=revision,
        corrections=NAME_CORRECTION,
    )
    return verified


def new_declaration(**extra):
    return {"attested": True, "method": "one_time_code", **extra}


def correct(case: Case, *, at=LATER, attest=True, **changes):
    case.correct(
        applicant=changes.pop("applicant", {}),
        fields=changes.pop("fields", {}),
        documents=changes.pop("documents", []),
        attestation=new_declaration() if attest else None,
        actor=APPLICANT_ACTOR, at=at,
    )
    return case.check_completeness(SEEDLINGS, at=at, actor=APPLICANT_ACTOR, event_id=uuid4())


def refusal_code(case: Case) -> str:
    with pytest.raises(Refused) as refused:
        correct(case, applicant={"name": "Ali Hasan"})
    assert refused.value.en and refused.value.ar
    return refused.value.code


def test_corrections_are_refused_until_verification_asks_for_them():
    incomplete = submitted_case(documents=[], attest=None)
    incomplete.check_completeness(SEEDLINGS, at=NOW, actor={"kind": "a", "id": "a"})
    assert refusal_code(incomplete) == "still_incomplete"
    assert refusal_code(received_case()) == "no_corrections_asked"
    for outcome in ("verified", "ineligible"):
        case = received_case()
        case.note_verification(source_event_id=uuid4(), outcome=outcome)
        assert refusal_code(case) == "no_corrections_asked"


def test_corrections_are_refused_once_the_committee_decided():
    case = received_case()
    with_discrepancies(case)
    case.note_decision(source_event_id=uuid4(), decision="rejected")
    assert refusal_code(case) == "already_decided"


def test_a_correction_must_change_something():
    case = received_case()
    with_discrepancies(case)
    with pytest.raises(Refused) as refused:
        correct(case, attest=False)
    assert refused.value.code == "nothing_corrected" and refused.value.ar


def test_the_national_id_can_be_corrected_but_not_removed():
    case = received_case()
    with_discrepancies(case)
    with pytest.raises(Refused) as refused:
        correct(case, applicant={"national_id": " "})
    assert refused.value.code == "applicant_detail_required" and refused.value.ar


def test_an_attested_correction_publishes_the_whole_request_as_the_next_revision():
    case = received_case()
    verified = with_discrepancies(case)
    assert case.status == "discrepancies" and case.corrections == NAME_CORRECTION

    assert correct(case, applicant={"name": "Ali Hasan"}, fields={"seedling_count": 25}) == []

    resubmitted = case.collect_events()[-1]
    assert isinstance(resubmitted, Case.Resubmitted)
    assert resubmitted.revision == 2 and resubmitted.corrects == verified
    # A new event, in the same conversation as the first request.
    assert resubmitted.event_id != case.received_event_id
    assert resubmitted.correlation_id == case.received_event_id and resubmitted.causation_id is None
    assert resubmitted.submitted_at == LATER
    assert resubmitted.applicant["name"] == "Ali Hasan"
    assert resubmitted.fields == {**FIELDS, "seedling_count": 25}
    assert resubmitted.attestation["data_hash"] == attested_data_hash(
        {**APPLICANT, "name": "Ali Hasan"}, "seedlings", {**FIELDS, "seedling_count": 25}, DOCUMENTS
    )
    assert case.revision == 2 and case.status == "received" and case.corrections == []


def test_corrections_without_a_new_declaration_wait_for_it():
    case = received_case()
    with_discrepancies(case)
    missing = correct(case, attest=False, applicant={"name": "Ali Hasan"})
    assert [(m["kind"], m["code"]) for m in missing] == [("attestation", "declaration")]
    assert case.status == "correcting" and case.missing == missing
    assert not any(isinstance(e, Case.Resubmitted) for e in case.collect_events())

    case.add_information(fields={}, documents=[], attestation=new_declaration(), actor=APPLICANT_ACTOR, at=LATER)
    assert case.check_completeness(SEEDLINGS, at=LATER, actor=APPLICANT_ACTOR) == []
    (resubmitted,) = [e for e in case.collect_events() if isinstance(e, Case.Resubmitted)]
    assert resubmitted.revision == 2 and resubmitted.applicant["name"] == "Ali Hasan"


def test_the_earlier_declaration_does_not_cover_a_correction_that_changes_nothing():
    case = received_case()
    with_discrepancies(case)
    # The same document again: the data hash is unchanged, the declaration is not.
    missing = correct(case, attest=False, documents=DOCUMENTS)
    assert [m["code"] for m in missing] == ["declaration"]
    assert case.status == "correcting"


def test_a_declaration_on_other_data_does_not_publish_the_correction():
    case = received_case()
    with_discrepancies(case)
    case.correct(
        applicant={"name": "Ali Hasan"}, fields={}, documents=[],
        attestation=new_declaration(data_hash=attested_data_hash(APPLICANT, "seedlings", FIELDS, DOCUMENTS)),
        actor=APPLICANT_ACTOR, at=LATER,
    )
    missing = case.check_completeness(SEEDLINGS, at=LATER, actor=APPLICANT_ACTOR)
    assert [m["code"] for m in missing] == ["declaration_outdated"]


def test_each_correction_answers_the_verification_of_the_latest_revision():
    case = received_case()
    with_discrepancies(case)
    correct(case, applicant={"name": "Ali Hasan"})
    # Revision 2 is not verified yet: no correction until it is.
    assert refusal_code(case) == "no_corrections_asked"
    second = with_discrepancies(case, revision=2)
    correct(case, fields={"seedling_count": 30})
    resubmitted = [e for e in case.collect_events() if isinstance(e, Case.Resubmitted)]
    assert [(e.revision, e.corrects) for e in resubmitted][-1] == (3, second)
    assert len({e.event_id for e in resubmitted}) == 2
    assert {e.correlation_id for e in resubmitted} == {case.received_event_id}


def test_a_verification_of_an_older_revision_is_ignored():
    case = received_case()
    first = with_discrepancies(case)
    correct(case, applicant={"name": "Ali Hasan"})
    case.collect_events()
    # Late or redelivered: the verification of revision 1 says nothing about revision 2.
    case.note_verification(source_event_id=uuid4(), outcome="verified", revision=1)
    assert case.collect_events() == []
    assert case.status == "received" and case.verification_event_id == first
    case.note_verification(source_event_id=uuid4(), outcome="verified", revision=2)
    assert case.status == "verified" and case.verification_revision == 2


def test_the_ineligible_reason_is_kept_in_both_languages_with_the_rule_as_fallback():
    case = received_case()
    reason = {"ar": "الخدمة للأعضاء فقط", "en": "Members only"}
    case.note_verification(
        source_event_id=uuid4(), outcome="ineligible", ineligible_reason=reason, ineligible_rule="members_only"
    )
    assert explained_ineligibility(case.ineligible_reason, case.ineligible_rule) == reason
    assert explained_ineligibility(None, "Members only") == {"ar": "Members only", "en": "Members only"}
    assert explained_ineligibility(None, None) is None


# Phone numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given, e164",
    [
        ("0501234567", "+966501234567"),
        ("501234567", "+966501234567"),
        ("966501234567", "+966501234567"),
        ("+966501234567", "+966501234567"),
        ("+966 0501234567", "+966501234567"),
        ("00966 50 123 4567", "+966501234567"),
        ("٠٥٠١٢٣٤٥٦٧", "+966501234567"),
        ("+44 20 7946 0958", "+442079460958"),
        ("0112345678", "+966112345678"),
    ],
)
def test_phone_numbers_are_read_into_e164(given, e164):
    assert normalise_phone(given) == e164


@pytest.mark.parametrize("given", ["12345", "call me", "+966 12", "05012345678"])
def test_a_number_that_cannot_be_read_is_not_normalised(given):
    assert normalise_phone(given) is None


def test_the_applicant_is_recorded_with_the_phone_in_e164_or_as_given():
    assert applicant_as_recorded({**APPLICANT, "phone": "05 0123 4567"})["phone"] == "+966501234567"
    assert applicant_as_recorded({**APPLICANT, "phone": "call me"})["phone"] == "call me"
    assert applicant_as_recorded(APPLICANT) == APPLICANT


def test_a_corrected_phone_is_recorded_in_e164_and_attested_so():
    case = received_case()
    with_discrepancies(case)
    correct(case, applicant={"phone": "0501234567"})
    resubmitted = case.collect_events()[-1]
    assert resubmitted.applicant["phone"] == "+966501234567"
    assert resubmitted.attestation["data_hash"] == attested_data_hash(
        {**APPLICANT, "phone": "+966501234567"}, "seedlings", FIELDS, DOCUMENTS
    )


def test_case_references_are_read_back():
    assert parse_case_reference("SDR-1448-000123") == ("SDR", 1448, 123)
    assert parse_case_reference("sdr-1448-000123") == ("SDR", 1448, 123)
    assert parse_case_reference("SDR-1448-12") is None


INDEX = "a" * 40  # the applicant's blind index, as the keyring would give it


def test_a_retry_is_recognised_by_the_applicants_blind_index_not_the_number():
    case = submitted_case(personal_key="sk-1", subject_index=INDEX)
    assert case.is_retry_of("1000000008", "seedlings", INDEX)
    # Another index is another person, whatever number is given.
    assert not case.is_retry_of("1000000008", "seedlings", "b" * 40)
    assert not case.is_retry_of("1000000008", "volunteering", INDEX)
    # Events holding the applicant's data carry their key; the store seals them.
    case.check_completeness(SEEDLINGS, at=NOW, actor={"kind": "adapter", "id": "w"})
    for pending in case.collect_events():
        if getattr(type(pending), "personal_attributes", ()):
            assert pending.personal_key == "sk-1", type(pending).__name__


def test_a_case_from_before_the_blind_index_is_recognised_by_the_number_until_keyed():
    case = submitted_case()
    assert case.is_retry_of("1000000008", "seedlings", INDEX)
    assert not case.is_retry_of("1000000016", "seedlings", INDEX)
    case.key_subject(personal_key="sk-2", subject_index=INDEX)
    assert case.personal_key == "sk-2" and case.subject_index == INDEX
    # Keyed once: a second key is not taken.
    case.key_subject(personal_key="sk-3", subject_index="c" * 40)
    assert case.personal_key == "sk-2"
    # The number it was submitted with still names it (it was recorded without an index).
    assert case.is_retry_of("1000000008", "seedlings", "d" * 40)
