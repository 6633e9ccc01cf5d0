"""Intake as a real process: the applicant corrects what verification listed, and is told why.

The test plays verification: it publishes the DataVerified that intake consumes.
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import httpx
import nats
import pytest

from khidma.processes import ServiceProcess
from shared.events import (
    CheckResult,
    Correction,
    DataVerified,
    Explanation,
    encode_event,
)
from shared.subjects import event_subject
from tests import builders, personal_data
from tests.auth import as_adapter, as_staff
from tests.helpers import stream_messages_sync, wait_for

pytestmark = pytest.mark.integration

MISTYPED_ID = "1000000001"  # wrong check digit: the typical discrepancy
CORRECT_ID = "1000000008"
SUBMISSION = {
    "association_id": "sidr",
    "channel": "website",
    "channel_ref": "form-77",
    "service_code": "seedlings",
    "applicant": {"national_id": MISTYPED_ID, "name": "علي", "phone": "050 000 0000"},
    "fields": {"planting_site": "وادي حنيفة", "seedling_count": 20},
    "documents": [{"code": "national_id_card", "number": CORRECT_ID, "expires_on": "2030-01-01"}],
    "attestation": {"attested": True, "method": "one_time_code"},
}
ID_CORRECTION = Correction(
    field="national_id",
    ar="رقم الهوية غير صحيح: خانة التحقق لا تطابق (غالبًا خطأ في الكتابة).",
    en="The national ID has a wrong check digit (probably mistyped).",
)


ADAPTER = as_adapter(["website", "phone"])
STAFF = as_staff()


@pytest.fixture
def intake(nats_server, tmp_path):
    process = ServiceProcess("intake", nats_server.url, tmp_path / "data").start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def keyring(intake):
    """The keyring intake seals with (its data folder's), as a consumer opens it."""
    ring = personal_data.keyring_of(intake.data_dir)
    try:
        yield ring
    finally:
        ring.close()


def requests_received(nats_url: str, keyring: Any) -> list[dict[str, Any]]:
    """The RequestReceived on the stream, their personal fields opened with the keyring."""
    return [
        {**event, "payload": personal_data.opened_payload(event["payload"], keyring)}
        for event in (
            m["event"] for m in stream_messages_sync(nats_url, "khidma.*.*.RequestReceived")
        )
    ]


def publish_verification(nats_url: str, received: dict[str, Any], **payload: Any) -> DataVerified:
    """What verification would publish about the request `received`."""
    event = builders.data_verified(
        received,
        checks=[CheckResult(name="national_id_format", passed=False)],
        officer="verifier-1",
        revision=received["payload"]["revision"],
        **payload,
    )

    async def publish() -> None:
        connection = await nats.connect(nats_url)
        try:
            await connection.jetstream().publish(
                event_subject(event.association_id, str(event.case_id), "DataVerified"),
                encode_event(event),
                headers={"Nats-Msg-Id": str(event.event_id)},
            )
        finally:
            await connection.close()

    asyncio.run(publish())
    return event


def case_doc(intake: ServiceProcess, key: str) -> dict[str, Any]:
    return httpx.get(f"{intake.url}/cases/{key}", headers=STAFF).json()


def test_a_corrected_request_is_published_again_as_revision_2_of_the_same_case(
    intake, nats_server, keyring
):
    case = httpx.post(f"{intake.url}/submissions", json=SUBMISSION, headers=ADAPTER).json()
    (first,) = wait_for(lambda: requests_received(nats_server.url, keyring), what="RequestReceived")
    assert first["payload"]["revision"] == 1 and first["payload"]["corrects"] is None
    # Recorded and attested in E.164.
    assert first["payload"]["applicant"]["phone"] == "+966500000000"

    verified = publish_verification(
        nats_server.url, first, outcome="discrepancies", corrections=[ID_CORRECTION]
    )
    told = wait_for(
        lambda: (d := case_doc(intake, case["case_ref"]))["status"] == "discrepancies" and d,
        what="the discrepancies in the read model",
    )
    assert told["corrections"] == [ID_CORRECTION.model_dump()]
    assert told["status_label"]["ar"] and told["revision"] == 1

    # The ID is corrected by the case reference; the declaration must be signed again.
    # The applicant corrects with the secret code they were given.
    code = {"X-Case-Code": case["access_code"]}
    correcting = httpx.post(
        f"{intake.url}/cases/{case['case_ref']}/corrections",
        json={"applicant": {"national_id": CORRECT_ID}},
        headers=code,
    )
    assert correcting.status_code == 200, correcting.text
    assert correcting.json()["status"] == "correcting"
    assert [m["code"] for m in correcting.json()["missing"]] == ["declaration"]
    assert len(requests_received(nats_server.url, keyring)) == 1

    done = httpx.post(
        f"{intake.url}/cases/{case['case_id']}/information",
        json={"attestation": {"attested": True, "method": "in_person", "attested_by": "علي",
                              "data_hash": correcting.json()["data_hash"]}},
        headers=code,
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "received" and done.json()["revision"] == 2

    _, second = wait_for(
        lambda: (events := requests_received(nats_server.url, keyring))[1:] and events,
        what="the corrected RequestReceived",
    )
    assert (second["case_id"], second["case_ref"]) == (first["case_id"], first["case_ref"])
    assert second["event_id"] != first["event_id"]
    assert second["correlation_id"] == first["event_id"] == first["correlation_id"]
    assert second["causation_id"] is None
    assert second["payload"]["revision"] == 2
    assert UUID(second["payload"]["corrects"]) == verified.event_id
    assert second["payload"]["applicant"]["national_id"] == CORRECT_ID
    # The corrected ID is another data subject: sealed under their key, found by their index.
    assert second["payload"]["subject_index"] == keyring.subject_index("sidr", CORRECT_ID)
    assert first["payload"]["subject_index"] == keyring.subject_index("sidr", MISTYPED_ID)
    assert second["payload"]["personal_key"] != first["payload"]["personal_key"]
    # The applicant published it, with their code: not an officer.
    assert second["actor"] == {"kind": "applicant", "id": "applicant"}
    assert second["payload"]["attestation"]["data_hash"] == correcting.json()["data_hash"]

    status = wait_for(
        lambda: (d := case_doc(intake, case["case_ref"]))["revision"] == 2 and d,
        what="revision 2 in the read model",
    )
    assert status["status"] == "received" and status["corrections"] == []
    assert status["history"][-1]["label"]["ar"]

    # Nothing to correct until verification has judged revision 2.
    refused = httpx.post(
        f"{intake.url}/cases/{case['case_ref']}/corrections",
        json={"applicant": {"name": "علي حسن"}},
        headers=code,
    )
    assert refused.status_code == 409
    assert refused.json()["error"] == "no_corrections_asked"
    assert refused.json()["message"]["ar"] and refused.json()["message"]["en"]
    # The corrected ID now holds the applicant's open request.
    linked = httpx.post(
        f"{intake.url}/submissions",
        headers=ADAPTER,
        json={**SUBMISSION, "channel": "phone", "channel_ref": "call-1",
              "applicant": {**SUBMISSION["applicant"], "national_id": CORRECT_ID}},
    ).json()
    assert linked["linked"] is True and linked["case_id"] == case["case_id"]


def test_the_applicant_is_told_why_they_are_not_eligible(intake, nats_server, keyring):
    case = httpx.post(f"{intake.url}/submissions", json=SUBMISSION, headers=ADAPTER).json()
    (received,) = wait_for(lambda: requests_received(nats_server.url, keyring), what="RequestReceived")
    reason = Explanation(ar="هذه الخدمة لأعضاء الجمعية فقط.", en="This service is for members only.")
    publish_verification(
        nats_server.url, received, outcome="ineligible",
        ineligible_rule="members_only", ineligible_reason=reason,
    )
    told = wait_for(
        lambda: (d := case_doc(intake, case["case_id"]))["status"] == "ineligible" and d,
        what="the ineligible outcome in the read model",
    )
    assert told["ineligible_reason"] == reason.model_dump()
    # At the front desk, with the officer's token.
    refused = httpx.post(
        f"{intake.url}/cases/{case['case_id']}/corrections",
        json={"fields": {"seedling_count": 5}},
        headers=STAFF,
    )
    assert refused.status_code == 409 and refused.json()["error"] == "no_corrections_asked"
