"""Intake as a real process: HTTP and request/reply submissions, bad input, delivery rules."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from uuid import uuid4

import httpx
import nats
import pytest

from khidma.processes import ServiceProcess
from shared.events import (
    Actor,
    CommitteeDecided,
    CommitteeDecidedPayload,
    Vote,
    encode_event,
)
from shared.subjects import event_subject, submission_subject
from tests.helpers import stream_messages_sync, wait_for

pytestmark = pytest.mark.integration

SUBMISSION = {
    "association_id": "sidr",
    "channel": "website",
    "channel_ref": "form-42",
    "service_code": "food-basket",
    "applicant": {"national_id": "1000000008", "name": "علي", "phone": "0500000000"},
    "fields": {"family_size": 5},
    "attestation": {"attested": True, "method": "one_time_code"},
}


@pytest.fixture
def intake(nats_server, tmp_path):
    process = ServiceProcess("intake", nats_server.url, tmp_path / "data").start()
    try:
        yield process
    finally:
        process.stop()


def store_position(intake: ServiceProcess) -> int:
    return int(httpx.get(f"{intake.url}/ready").json()["store_position"])


def test_a_submission_creates_a_case_and_publishes_request_received(intake, nats_server):
    response = httpx.post(f"{intake.url}/submissions", json=SUBMISSION)
    assert response.status_code == 201
    case = response.json()
    messages = wait_for(
        lambda: stream_messages_sync(nats_server.url, "khidma.*.*.RequestReceived"),
        what="RequestReceived on the stream",
    )
    (event,) = [m["event"] for m in messages]
    assert event["case_id"] == case["case_id"]
    assert event["case_ref"] == case["case_ref"]
    assert event["payload"]["applicant"]["name"] == "علي"
    assert event["payload"]["channel_ref"] == "form-42"


def test_the_same_channel_reference_twice_is_one_request(intake, nats_server):
    first = httpx.post(f"{intake.url}/submissions", json=SUBMISSION).json()
    again = httpx.post(f"{intake.url}/submissions", json=SUBMISSION)
    assert again.status_code == 200
    assert again.json() == {**first, "duplicate": True}
    other_channel = httpx.post(f"{intake.url}/submissions", json={**SUBMISSION, "channel": "phone"})
    assert other_channel.status_code == 201
    wait_for(
        lambda: len(stream_messages_sync(nats_server.url, "khidma.*.*.RequestReceived")) == 2,
        what="two requests on the stream",
    )


def test_a_malformed_submission_is_refused_with_the_field_and_nothing_is_recorded(intake):
    before = store_position(intake)
    broken = {**SUBMISSION, "applicant": {"name": "no id"}, "channel": "carrier-pigeon"}
    response = httpx.post(f"{intake.url}/submissions", json=broken)
    assert response.status_code == 422
    fields = {tuple(problem["loc"]) for problem in response.json()["detail"]}
    assert ("body", "applicant", "national_id") in fields
    assert ("body", "channel") in fields
    assert store_position(intake) == before


def test_submissions_over_request_reply_get_the_case_or_a_clear_error(intake):
    async def scenario() -> tuple[dict, dict, dict]:
        connection = await nats.connect(intake.nats_url)
        try:
            body = {k: v for k, v in SUBMISSION.items() if k not in ("association_id", "channel")}
            accepted = await connection.request(
                submission_subject("sidr", "phone"), json.dumps(body).encode(), timeout=5
            )
            duplicate = await connection.request(
                submission_subject("sidr", "phone"), json.dumps(body).encode(), timeout=5
            )
            refused = await connection.request(
                submission_subject("sidr", "phone"), b'{"channel_ref": ""}', timeout=5
            )
            return json.loads(accepted.data), json.loads(duplicate.data), json.loads(refused.data)
        finally:
            await connection.close()

    before = store_position(intake)
    accepted, duplicate, refused = asyncio.run(scenario())
    assert accepted["ok"] is True and accepted["case_ref"]
    assert duplicate["case_id"] == accepted["case_id"] and duplicate["duplicate"] is True
    assert refused["ok"] is False
    assert refused["message"]["ar"] and refused["message"]["en"]
    assert {p["field"] for p in refused["problems"]} >= {"channel_ref", "applicant"}
    status = httpx.get(f"{intake.url}/cases/{accepted['case_id']}").json()
    assert status["channel"] == "phone"
    # One case (two events: the case and its channel-reference index), nothing for the refusal.
    assert store_position(intake) == before + 2


def test_delivery_is_refused_until_the_committee_approves(intake, nats_server):
    case = httpx.post(f"{intake.url}/submissions", json=SUBMISSION).json()
    refused = httpx.post(
        f"{intake.url}/cases/{case['case_id']}/delivery",
        json={"delivered": "basket", "delivered_by": "officer-1"},
    )
    assert refused.status_code == 409
    assert refused.json()["error"] == "not_approved"
    assert refused.json()["message"]["ar"]

    received = wait_for(
        lambda: stream_messages_sync(nats_server.url, "khidma.*.*.RequestReceived"),
        what="RequestReceived",
    )[0]["event"]
    decision = CommitteeDecided(
        event_id=uuid4(),
        occurred_at=datetime.now(timezone.utc),
        association_id="sidr",
        case_id=case["case_id"],
        case_ref=case["case_ref"],
        correlation_id=received["correlation_id"],
        causation_id=uuid4(),
        actor=Actor(kind="committee", id="committee"),
        payload=CommitteeDecidedPayload(
            decision="approved", reasons=["ok"], votes=[Vote(member="m1", vote="approve")],
            window_days=14, within_window=True,
        ),
    )

    async def publish() -> None:
        connection = await nats.connect(nats_server.url)
        await connection.jetstream().publish(
            event_subject("sidr", case["case_id"], "CommitteeDecided"),
            encode_event(decision),
            headers={"Nats-Msg-Id": str(decision.event_id)},
        )
        await connection.close()

    asyncio.run(publish())
    wait_for(
        lambda: httpx.get(f"{intake.url}/cases/{case['case_id']}").json()["status"] == "approved",
        what="the approval to reach intake",
    )
    delivered = httpx.post(
        f"{intake.url}/cases/{case['case_id']}/delivery",
        json={"delivered": "basket", "delivered_by": "officer-1"},
    )
    assert delivered.status_code == 202
    (message,) = wait_for(
        lambda: stream_messages_sync(nats_server.url, "khidma.*.*.ServiceDelivered"),
        what="ServiceDelivered",
    )
    assert message["event"]["causation_id"] == str(decision.event_id)


def test_an_unknown_case_is_a_bilingual_404(intake):
    response = httpx.get(f"{intake.url}/cases/SID-NOPE")
    assert response.status_code == 404
    assert response.json()["message"]["ar"]
