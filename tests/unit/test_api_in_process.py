"""The services' HTTP APIs in process: real application, routes and read models
on a temporary SQLite store, without NATS (the `in_process` fixture)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.events import Applicant, Attestation
from tests import builders
from tests.auth import as_adapter, as_staff
from tests.in_process import InProcessService

pytestmark = pytest.mark.unit

Start = Callable[..., Awaitable[InProcessService]]

# Intake's callers: the website's adapter submits, the staff read.
ADAPTER = as_adapter(["website"])
STAFF = as_staff()

SUBMISSION: dict[str, Any] = {
    "association_id": "sidr",
    "channel": "website",
    "channel_ref": "form-42",
    "service_code": "seedlings",
    "applicant": {"national_id": "1000000008", "name": "علي", "phone": "0500000000"},
    "fields": {"planting_site": "وادي حنيفة", "seedling_count": 20},
    "documents": [{"code": "national_id_card", "number": "1000000008", "expires_on": "2030-01-01"}],
    "attestation": {"attested": True, "method": "one_time_code"},
}


def assert_bilingual_refusal(body: dict[str, Any], code: str) -> None:
    assert body["error"] == code
    assert body["message"]["en"] and body["message"]["ar"]
    assert body["message"]["en"] != body["message"]["ar"]


async def test_a_submission_over_http_opens_a_case_that_its_reference_then_shows(
    in_process: Start,
) -> None:
    intake = await in_process("intake")
    response = await intake.client.post("/submissions", json=SUBMISSION, headers=ADAPTER)
    assert response.status_code == 201, response.text
    opened = response.json()
    assert opened["duplicate"] is False and opened["complete"] is True
    assert opened["case_ref"].startswith("SDR-")

    await intake.settle()
    by_ref = await intake.client.get(f"/cases/{opened['case_ref']}", headers=STAFF)
    assert by_ref.status_code == 200, by_ref.text
    case = by_ref.json()
    assert case["case_id"] == opened["case_id"]
    assert (case["status"], case["service_code"], case["channel"]) == (
        "received",
        "seedlings",
        "website",
    )
    assert case["status_label"]["ar"] and case["status_label"]["en"]
    assert case["history"][0]["what"] == "submitted"
    by_id = await intake.client.get(f"/cases/{opened['case_id']}", headers=STAFF)
    assert by_id.json()["case_ref"] == opened["case_ref"]


async def test_the_same_submission_again_is_the_same_case_with_200(in_process: Start) -> None:
    intake = await in_process("intake")
    first = (await intake.client.post("/submissions", json=SUBMISSION, headers=ADAPTER)).json()
    again = await intake.client.post("/submissions", json=SUBMISSION, headers=ADAPTER)
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["case_id"] == first["case_id"]


async def test_a_refused_submission_is_a_bilingual_422_and_opens_no_case(
    in_process: Start,
) -> None:
    intake = await in_process("intake")
    response = await intake.client.post(
        "/submissions", json={**SUBMISSION, "association_id": "nowhere"}, headers=ADAPTER
    )
    assert response.status_code == 422
    assert_bilingual_refusal(response.json(), "unknown_association")
    await intake.settle()
    assert (await intake.client.get("/cases", headers=STAFF)).json() == []


async def test_an_unknown_case_is_a_bilingual_404(in_process: Start) -> None:
    intake = await in_process("intake")
    response = await intake.client.get("/cases/SDR-1448-999999", headers=STAFF)
    assert response.status_code == 404
    assert_bilingual_refusal(response.json(), "case_not_found")
    assert "SDR-1448-999999" in response.json()["message"]["en"]


async def test_the_agenda_of_an_empty_store_is_empty(in_process: Start) -> None:
    committee = await in_process("committee")
    response = await committee.client.get("/agenda", headers=as_staff())
    assert response.status_code == 200
    assert response.json() == []


async def test_the_agenda_lists_an_attested_verified_request_and_not_an_unsigned_one(
    in_process: Start,
) -> None:
    committee = await in_process("committee")
    now = datetime.now(UTC)
    signed = builders.request_received(
        case_ref="SDR-1448-000001",
        applicant=Applicant(national_id="1000000001", name="Applicant"),
        attestation=Attestation(
            attested=True, attested_by="Applicant", attested_at=now, data_hash="ef" * 32
        ),
    )
    unsigned = builders.request_received(case_ref="SDR-1448-000002", attestation=None)
    await committee.deliver(
        signed, builders.data_verified(signed), unsigned, builders.data_verified(unsigned)
    )
    await committee.settle()

    agenda = (await committee.client.get("/agenda", headers=as_staff())).json()
    assert [case["case_ref"] for case in agenda] == ["SDR-1448-000001"]
    assert agenda[0]["case_id"] == str(signed.case_id)
    assert agenda[0]["verification_outcome"] == "verified"


async def test_an_unknown_committee_case_is_a_bilingual_404(in_process: Start) -> None:
    committee = await in_process("committee")
    case = builders.request_received()
    response = await committee.client.get(f"/cases/{case.case_id}", headers=as_staff())
    assert response.status_code == 404
    assert response.json()["message"]["en"] and response.json()["message"]["ar"]


async def test_verification_shows_a_request_it_received(in_process: Start) -> None:
    verification = await in_process("verification")
    request = builders.request_received(
        service_code="volunteering",
        applicant=Applicant(national_id="1012345672", name="Aisha", phone="0501234567"),
        fields={"availability": "weekends"},
        attestation=Attestation(attested=True),
    )
    await verification.deliver(request)
    await verification.settle()
    response = await verification.client.get(f"/verifications/{request.case_id}", headers=as_staff())
    assert response.status_code == 200, response.text
    assert response.json()["case_ref"] == request.case_ref
