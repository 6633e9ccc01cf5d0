"""A submission is capped well under the message size the bus accepts."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from services.intake import api as intake_api
from shared.auth import verifier_from_environment
from shared.http import create_http_app
from shared.submissions import MAX_DOCUMENTS, MAX_FIELDS_BYTES, Submission, SubmissionBody
from tests.auth import as_staff

pytestmark = pytest.mark.unit

REQUEST: dict[str, Any] = {
    "association_id": "sidr",
    "channel": "website",
    "channel_ref": "form-1",
    "service_code": "seedlings",
    "applicant": {"national_id": "1000000008", "name": "Ali"},
    "fields": {"planting_site": "Wadi Hanifa", "seedling_count": 10},
    "documents": [{"code": "national_id_card", "expires_on": "2030-01-01"}],
}


def test_fields_over_the_limit_are_refused_in_both_languages() -> None:
    with pytest.raises(ValidationError) as refused:
        Submission(**{**REQUEST, "fields": {"notes": "x" * MAX_FIELDS_BYTES}})
    (problem,) = refused.value.errors()
    assert problem["type"] == "fields_too_large" and problem["loc"] == ("fields",)
    assert str(MAX_FIELDS_BYTES) in problem["msg"]
    assert "at most" in problem["msg"] and "الحد الأقصى" in problem["msg"]


def test_fields_are_measured_as_encoded_so_arabic_text_counts_its_bytes() -> None:
    # Two bytes a letter in UTF-8: under the limit in characters, over it in bytes.
    arabic = "ع" * (MAX_FIELDS_BYTES // 2 + 10)
    with pytest.raises(ValidationError):
        Submission(**{**REQUEST, "fields": {"notes": arabic}})


def test_fields_just_under_the_limit_are_accepted() -> None:
    # {"notes":"…"} adds 12 bytes around the text.
    Submission(**{**REQUEST, "fields": {"notes": "x" * (MAX_FIELDS_BYTES - 12)}})


def test_too_many_documents_are_refused() -> None:
    documents = [{"code": "national_id_card"}] * (MAX_DOCUMENTS + 1)
    with pytest.raises(ValidationError):
        Submission(**{**REQUEST, "documents": documents})
    Submission(**{**REQUEST, "documents": documents[:MAX_DOCUMENTS]})


def test_the_request_reply_body_has_the_same_limits() -> None:
    body = {k: v for k, v in REQUEST.items() if k not in ("association_id", "channel")}
    with pytest.raises(ValidationError):
        SubmissionBody(**{**body, "fields": {"notes": "x" * MAX_FIELDS_BYTES}})


def test_an_oversized_submission_is_a_bilingual_422_that_does_not_echo_it() -> None:
    # The lifespan (broker, store) never starts: TestClient is not entered.
    http = create_http_app(
        SimpleNamespace(app=SimpleNamespace(packs={})),
        title="intake",
        include=intake_api.include,
        verifier=verifier_from_environment(),
    )  # type: ignore[arg-type]
    big = {**REQUEST, "fields": {"notes": "x" * 600_000}}  # under the body's limit
    response = TestClient(http).post("/submissions", json=big, headers=as_staff())
    assert response.status_code == 422
    body = response.json()
    assert body["message"]["en"] and body["message"]["ar"]
    (problem,) = body["detail"]
    assert problem["loc"] == ["body", "fields"] and problem["type"] == "fields_too_large"
    assert "input" not in problem
    assert len(response.content) < 5000


def test_a_body_over_the_service_s_limit_is_a_bilingual_413_before_it_is_read() -> None:
    http = create_http_app(
        SimpleNamespace(app=SimpleNamespace(packs={})),
        title="intake",
        include=intake_api.include,
        verifier=verifier_from_environment(),
    )  # type: ignore[arg-type]
    client = TestClient(http)
    huge = {**REQUEST, "fields": {"notes": "x" * 1_200_000}}
    response = client.post("/submissions", json=huge, headers=as_staff())
    assert response.status_code == 413
    assert response.json()["error"] == "request_too_large"
    assert response.json()["message"]["ar"] and "1048576" in response.json()["message"]["en"]

    # Without a Content-Length (a chunked body), counted as it is read.
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(12):
            yield b"x" * 100_000

    chunked = client.post(
        "/submissions", content=chunks(), headers={**as_staff(), "Content-Type": "application/json"}
    )
    assert chunked.status_code == 413 and chunked.json()["error"] == "request_too_large"


@pytest.mark.parametrize(
    "path, body, headers",
    [
        ("/cases/5f0c7b8e-2a61-4c1e-9d4e-3b2a1c0d9e8f/information", {}, as_staff()),
        ("/cases/SDR-1448-000001/corrections", {}, as_staff()),
        # The applicant, with the request's secret code instead of a token.
        ("/cases/5f0c7b8e-2a61-4c1e-9d4e-3b2a1c0d9e8f/information", {}, {"X-Case-Code": "A"}),
        ("/cases/SDR-1448-000001/corrections", {}, {"X-Case-Code": "A"}),
        ("/eligibility", {"association_id": "sidr", "service_code": "seedlings"}, {}),
    ],
)
def test_every_way_in_for_fields_has_the_same_limit(
    path: str, body: dict[str, Any], headers: dict[str, str]
) -> None:
    # Information and corrections are merged into the request published whole.
    http = create_http_app(
        SimpleNamespace(app=SimpleNamespace(packs={})),
        title="intake",
        include=intake_api.include,
        verifier=verifier_from_environment(),
    )  # type: ignore[arg-type]
    client = TestClient(http, headers=headers)
    big = {**body, "fields": {"notes": "x" * MAX_FIELDS_BYTES}}
    response = client.post(path, json=big)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["type"] == "fields_too_large"
    assert response.json()["detail"][0]["loc"] == ["body", "fields"]
    many = {**body, "documents": [{"code": "national_id_card"}] * (MAX_DOCUMENTS + 1)}
    response = client.post(path, json=many)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "documents"]


def test_a_referral_has_a_bounded_list_of_questions() -> None:
    http = create_http_app(
        SimpleNamespace(app=SimpleNamespace(packs={})),
        title="intake",
        include=intake_api.include,
        verifier=verifier_from_environment(),
    )  # type: ignore[arg-type]
    client = TestClient(http, headers=as_staff())
    referral = {"reason": "unclear"}
    response = client.post(
        "/cases/5f0c7b8e-2a61-4c1e-9d4e-3b2a1c0d9e8f/referral",
        json={**referral, "questions": ["?" * 5000]},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "questions", 0]
    response = client.post(
        "/cases/5f0c7b8e-2a61-4c1e-9d4e-3b2a1c0d9e8f/referral",
        json={**referral, "questions": ["?"] * 51},
    )
    assert response.status_code == 422
