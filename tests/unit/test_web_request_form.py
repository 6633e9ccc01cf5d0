"""The request form: a pack's service as inputs, and a posted form as intake's body."""

from __future__ import annotations

import pytest

from services.web import request_form as rf

pytestmark = pytest.mark.unit

SERVICE = {
    "code": "seedlings",
    "required_fields": [
        {"name": "planting_site", "label": {"ar": "موقع", "en": "Site"}},
        {"name": "seedling_count", "label": {"ar": "العدد", "en": "Count"}, "kind": "integer"},
    ],
    "required_documents": [{"code": "national_id_card", "has_expiry": True}],
    "eligibility": [{"field": "seedling_count", "maximum": 100}],
}

POSTED = {
    "channel_ref": "web-1",
    "applicant.national_id": "1098765432",
    "applicant.name": "سارة",
    "applicant.phone": "",
    "field.planting_site": "  وادي حنيفة ",
    "field.seedling_count": "٤٠",
    "doc.national_id_card.number": "1098765432",
    "doc.national_id_card.expires_on": "2031-01-01",
    "attested": "on",
}


def test_a_posted_form_becomes_intakes_submission_typed_as_the_pack_says() -> None:
    body = rf.submission_of(
        POSTED, rf.whole_form(SERVICE), association_id="sidr", service_code="seedlings",
        channel="website", method="one_time_code",
    )
    assert body["applicant"] == {"national_id": "1098765432", "name": "سارة"}
    # Arabic-Indic digits read as the number the pack's kind asks for.
    assert body["fields"] == {"planting_site": "وادي حنيفة", "seedling_count": 40}
    assert body["documents"] == [
        {"code": "national_id_card", "number": "1098765432", "expires_on": "2031-01-01"}
    ]
    assert body["attestation"] == {"attested": True, "method": "one_time_code"}
    assert body["channel_ref"] == "web-1"


def test_without_the_declaration_ticked_none_is_sent() -> None:
    body = rf.submission_of(
        {**POSTED, "attested": ""}, rf.whole_form(SERVICE), association_id="sidr",
        service_code="seedlings", channel="website", method="one_time_code",
    )
    assert "attestation" not in body


def test_a_value_that_is_not_of_its_kind_is_sent_as_typed_for_intake_to_refuse() -> None:
    assert rf.typed("forty", "integer") == "forty"
    assert rf.typed("4.5", "number") == 4.5


def test_completing_asks_only_for_what_intake_listed_and_the_declaration_again() -> None:
    spec = rf.missing_form(SERVICE, [{"code": "national_id_card"}])
    assert [d["code"] for d in spec.documents] == ["national_id_card"]
    assert spec.fields == [] and spec.attestation


def test_the_eligibility_question_asks_only_for_the_fields_its_rules_read() -> None:
    assert [f["name"] for f in rf.eligibility_form(SERVICE).fields] == ["seedling_count"]


def test_intakes_refusal_is_placed_beside_the_input_it_names() -> None:
    detail = [
        {"loc": ["body", "applicant", "phone"], "type": "string_pattern_mismatch"},
        {"loc": ["body", "documents", 0, "expires_on"], "type": "date_from_datetime_parsing"},
        {"loc": ["body", "fields", "planting_site"], "type": "missing"},
    ]
    problems = rf.problems_of(detail, SERVICE["required_documents"])
    assert problems["applicant.phone"]["kind"] == "pattern"
    assert problems["doc.national_id_card.expires_on"]["kind"] == "date"
    assert problems["field.planting_site"]["kind"] == "missing"


def test_a_links_known_values_fill_the_inputs_the_form_has_and_nothing_else() -> None:
    known = {
        "applicant": {"phone": "+966500000123", "name": "سارة", "iban": "SA00"},
        "fields": {"seedling_count": "20", "not_a_field": "x"},
        "documents": [
            {"code": "national_id_card", "number": "1098765432", "expires_on": "2031-01-01"},
            {"code": "not_a_document", "number": "1"},
            "not a document",
        ],
    }
    values = rf.values_of_submission(known, rf.whole_form(SERVICE))
    assert values == {
        "applicant.phone": "+966500000123",
        "applicant.name": "سارة",
        "field.seedling_count": "20",
        "doc.national_id_card.number": "1098765432",
        "doc.national_id_card.expires_on": "2031-01-01",
    }
    # The same inputs a posted form fills: what was known reads back as a submission.
    body = rf.submission_of(
        values, rf.whole_form(SERVICE), association_id="sidr", service_code="seedlings",
        channel="website", method="one_time_code",
    )
    assert body["applicant"] == {"name": "سارة", "phone": "+966500000123"}
    assert body["fields"] == {"seedling_count": 20}


def test_known_values_of_the_wrong_shape_fill_nothing() -> None:
    spec = rf.whole_form(SERVICE)
    assert rf.values_of_submission({}, spec) == {}
    assert rf.values_of_submission({"applicant": "x", "fields": [], "documents": {}}, spec) == {}
