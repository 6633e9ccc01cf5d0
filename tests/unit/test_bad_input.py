"""Bad input a person or an adapter can send: read once at the boundary, refused in
both languages, and never seen by a rule (shared/inputs.py, shared/submissions.py)."""

from __future__ import annotations

import importlib
import json
import math
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from services.intake import api as intake_api
from services.intake.domain import fields_as_taken, has_kind
from services.verification.domain import check_national_id_format
from services.web.request_form import typed
from shared.auth import verifier_from_environment
from shared.errors import Invalid
from shared.events import decode_event, encode_event
from shared.http import MAX_OFFSET, MAX_PAGE, create_http_app
from shared.inputs import (
    MAX_DEPTH,
    ascii_digits,
    finite_number,
    is_integer,
    plain_data_problem,
    printable,
)
from shared.policy import EligibilityRule, eligibility_failures
from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs
from shared.submissions import Submission, SubmissionBody
from tests import builders
from tests.auth import as_staff

pytestmark = pytest.mark.unit

PACKS = load_packs(DEFAULT_POLICIES_DIR)
SEEDLINGS = PACKS["sidr"].service("seedlings")
SCHOLARSHIP = next(
    s for s in PACKS["elites"].services if any(r.field == "gpa" for r in s.eligibility)
)
REQUEST: dict[str, Any] = {
    "association_id": "sidr",
    "channel": "website",
    "channel_ref": "form-1",
    "service_code": "seedlings",
    "applicant": {"national_id": "1000000008", "name": "Ali"},
    "fields": {"planting_site": "Wadi Hanifa", "seedling_count": 10},
}


# Numbers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, "NaN", "nan", "Infinity", "-inf", "1e999", 10**400]
)
def test_nan_and_infinity_are_no_numbers(value: Any) -> None:
    assert finite_number(value) is None
    assert not has_kind(value, "number")


@pytest.mark.parametrize(
    ("value", "number"),
    [(4.5, 4.5), (5, 5.0), ("4.75", 4.75), ("٤٫٧٥", 4.75), ("۴.۵", 4.5), (" 3 ", 3.0)],
)
def test_finite_numbers_read_in_either_digits(value: Any, number: float) -> None:
    assert finite_number(value) == number


@pytest.mark.parametrize("gpa", [math.nan, "NaN", math.inf, "Infinity", True])
def test_a_gpa_that_is_no_finite_number_is_never_eligible(gpa: Any) -> None:
    assert SCHOLARSHIP is not None
    assert [rule.field for rule in eligibility_failures(SCHOLARSHIP, {"gpa": gpa})] == ["gpa"]
    assert not eligibility_failures(SCHOLARSHIP, {"gpa": "٤٫٨"})


@pytest.mark.parametrize("raw", ['{"seedling_count": NaN}', '{"seedling_count": -Infinity}'])
def test_a_submission_with_nan_or_infinity_is_refused_in_both_languages(raw: str) -> None:
    body = json.dumps({**REQUEST, "fields": "@"}).replace('"@"', raw)
    for parse in (Submission.model_validate_json, lambda text: Submission(**json.loads(text))):
        with pytest.raises(ValidationError) as refused:
            parse(body)
        (problem,) = refused.value.errors()
        assert problem["type"] == "input_not_finite"
        assert "fields.seedling_count" in problem["msg"] and "رقم" in problem["msg"]


def test_no_contract_carries_nan_in_a_number_field() -> None:
    with pytest.raises(ValidationError):
        EligibilityRule.model_validate(
            {"field": "gpa", "minimum": math.nan, "reason": {"ar": "س", "en": "r"}}
        )


def test_the_event_decoder_refuses_nan_in_a_requests_fields() -> None:
    event = builders.request_received(fields={"seedling_count": 1})
    wire = encode_event(event).decode().replace('"seedling_count":1', '"seedling_count":NaN')
    assert "NaN" in wire
    with pytest.raises(ValidationError):
        decode_event(wire)
    assert decode_event(encode_event(event)) == event


# Digits --------------------------------------------------------------------------


def test_one_table_reads_arabic_indic_and_persian_digits() -> None:
    assert ascii_digits("١٢٣٤٥٦٧٨٩٠ ۱۲۳۴۵۶۷۸۹۰ abc") == "1234567890 1234567890 abc"


def test_the_submission_reads_the_applicants_digits_as_ascii() -> None:
    applicant = {"national_id": "١٠١٢٣٤٥٦٧٢", "name": "علي", "phone": "۰۵۰۱۲۳۴۵۶۷"}
    for model, extra in ((Submission, {}), (SubmissionBody, None)):
        data = {**REQUEST, "applicant": applicant}
        if extra is None:
            data = {k: v for k, v in data.items() if k not in ("association_id", "channel")}
        read = model.model_validate(data).applicant
        assert (read.national_id, read.phone) == ("1012345672", "0501234567")
    # What verification then checks is ten ASCII digits, not a misleading "10 digits".
    assert check_national_id_format("1012345672").passed


def test_the_correction_reads_the_applicants_digits_as_ascii() -> None:
    correction = intake_api.ApplicantCorrection(national_id="١٠١٢٣٤٥٦٧٢", phone="٠٥٠١")
    assert (correction.national_id, correction.phone) == ("1012345672", "0501")


def test_number_and_date_fields_are_taken_with_ascii_digits_and_text_as_typed() -> None:
    assert SEEDLINGS is not None
    taken = fields_as_taken(SEEDLINGS, {"seedling_count": "٢٠", "planting_site": "شارع ١٢"})
    assert taken == {"seedling_count": "20", "planting_site": "شارع ١٢"}
    assert has_kind(taken["seedling_count"], "integer")


def test_only_digits_make_an_integer() -> None:
    assert is_integer("٢٠") and is_integer("-3") and is_integer(7)
    assert not is_integer("²") and not is_integer("1.5") and not is_integer(True)


def test_the_web_form_never_types_nan_or_an_unreadable_integer() -> None:
    assert typed("nan", "number") == "nan"
    assert typed("٤٫٥", "number") == 4.5
    assert typed("7" * 5000, "integer") == "7" * 5000
    assert typed("٢٠", "integer") == 20


# Strings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        {"applicant": {"national_id": "1000000008", "name": "\ud800"}},
        {"channel_ref": "x\udfff"},
        {"fields": {"planting_site": ["\ud83d"]}},
        {"fields": {"\ud800": 1}},
    ],
)
def test_a_lone_surrogate_anywhere_is_refused(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as refused:
        Submission(**{**REQUEST, **data})
    assert refused.value.errors()[0]["type"] == "input_lone_surrogate"


def test_nesting_is_bounded_without_recursion() -> None:
    deep: Any = []
    for _ in range(50_000):
        deep = [deep]
    problem = plain_data_problem({"a": deep})
    assert problem is not None and problem.code == "too_deep"
    assert plain_data_problem({"a": [[1.5, "ok", {"b": None}]]}) is None
    shallow: Any = 1
    for _ in range(MAX_DEPTH - 1):
        shallow = [shallow]
    assert plain_data_problem({"a": shallow}) is None


def test_what_a_refusal_repeats_is_always_writable() -> None:
    shown = printable({"name": "\ud800", "gpa": math.nan, "deep": [[[[]]]]})
    json.dumps(shown, allow_nan=False).encode("utf-8")
    assert shown["name"] == "\\ud800" and shown["gpa"] == "nan"


# Unknown field keys --------------------------------------------------------------


def test_fields_the_service_does_not_name_are_refused_naming_them() -> None:
    assert SEEDLINGS is not None
    with pytest.raises(Invalid) as refused:
        fields_as_taken(SEEDLINGS, {"seedling_count": 1, "password": "x", "<script>": 1})
    assert refused.value.code == "unknown_fields"
    for text in (refused.value.en, refused.value.ar):
        assert "password" in text and "<script>" in text and "seedling_count" in text


# Over HTTP -----------------------------------------------------------------------


def _client() -> TestClient:
    # The lifespan (broker, store) never starts: TestClient is not entered.
    http = create_http_app(
        SimpleNamespace(app=SimpleNamespace(packs={})),  # type: ignore[arg-type]
        title="intake",
        include=intake_api.include,
        verifier=verifier_from_environment(),
    )
    return TestClient(http, raise_server_exceptions=False)


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({**REQUEST, "fields": "@"}).replace('"@"', '{"seedling_count": NaN}'),
        # Refused for its channel, and the refusal repeats a name no UTF-8 can write.
        json.dumps(
            {**REQUEST, "channel": "pigeon", "applicant": {"national_id": "1", "name": "\udfff"}}
        ),
        json.dumps({**REQUEST, "applicant": {"national_id": "1000000008", "name": "\ud800"}}),
    ],
)
def test_bad_numbers_and_text_over_http_are_a_bilingual_422(body: str) -> None:
    response = _client().post(
        "/submissions",
        content=body.encode(),
        headers={**as_staff(), "content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["message"]["ar"] and response.json()["message"]["en"]


@pytest.mark.parametrize(
    "query",
    [f"offset={MAX_OFFSET + 1}", "offset=-1", "limit=-1", "limit=0", f"limit={MAX_PAGE + 1}"],
)
def test_list_parameters_out_of_bounds_are_a_bilingual_422(query: str) -> None:
    response = _client().get(f"/cases?{query}", headers=as_staff())
    assert response.status_code == 422
    assert response.json()["message"]["ar"]


SERVICES_WITH_LISTS = ("intake", "committee", "verification", "surveys", "privacy")


def test_every_list_route_of_every_service_takes_the_one_bounded_page() -> None:
    lists = 0
    for service in SERVICES_WITH_LISTS:
        api = FastAPI()
        importlib.import_module(f"services.{service}.api").include(api)
        for path, operations in api.openapi()["paths"].items():
            for operation in operations.values():
                query = {p["name"]: p["schema"] for p in operation.get("parameters", [])}
                if "offset" not in query and "limit" not in query:
                    continue
                lists += 1
                assert query["limit"]["minimum"] == 1, path
                assert query["limit"]["maximum"] == MAX_PAGE, path
                assert query["offset"]["minimum"] == 0, path
                assert query["offset"]["maximum"] == MAX_OFFSET, path
    assert lists >= 10  # the issue found seven routes that overflowed; there are more lists


@pytest.mark.parametrize(
    "fields",
    ['{"a": ' + "[" * 20_000 + "]" * 20_000 + "}", '{"seedling_count": ' + "7" * 5_000 + "}"],
)
def test_json_the_parser_gives_up_on_is_a_bilingual_422(fields: str) -> None:
    body = json.dumps({**REQUEST, "fields": "@"}).replace('"@"', fields)
    response = _client().post(
        "/submissions",
        content=body.encode(),
        headers={**as_staff(), "content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["message"]["ar"] and response.json()["message"]["en"]


def test_other_http_errors_keep_their_status() -> None:
    assert _client().get("/no-such-route").status_code == 404
    assert _client().delete("/submissions", headers=as_staff()).status_code == 405


def test_whatsapp_reads_typed_fields_as_the_web_form_does() -> None:
    from services.channels.whatsapp import conversation

    lines = {
        "service": "seedlings",
        "national_id": "1000000008",
        "name": "علي",
        "planting_site": "وادي حنيفة",
        "seedling_count": "٢٠",
    }
    body = conversation.submission(PACKS["sidr"], lines, wamid="wamid-1", sender="966501234567")
    assert body["fields"] == {"planting_site": "وادي حنيفة", "seedling_count": 20}
    nan = conversation.submission(
        PACKS["sidr"], {**lines, "seedling_count": "nan"}, wamid="wamid-2", sender="966501234567"
    )
    assert nan["fields"]["seedling_count"] == "nan"  # text, for intake to name


@pytest.mark.parametrize(
    "service, path, body",
    [
        (
            "surveys",
            "/surveys/no-such-token/answers",
            '{"ratings": {"satisfaction": 4}, "comment": "\\ud800"}',
        ),
        (
            "privacy",
            "/associations/sidr/erasures",
            '{"national_id": "1000000008", "reason": "\\ud800", "legal_basis": "x"}',
        ),
        (
            "verification",
            "/members/sidr/1000000008",
            '{"name": "\\udfff", "joined_on": "2020-01-01", "status": "good", '
            '"status_since": "2020-01-01"}',
        ),
    ],
)
async def test_every_service_refuses_a_lone_surrogate_in_its_bodies(
    in_process: Any, service: str, path: str, body: str
) -> None:
    running = await in_process(service)
    method = "PUT" if service == "verification" else "POST"
    answer = await running.client.request(
        method, path, content=body, headers={**as_staff(), "Content-Type": "application/json"}
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["message"]["ar"]
