"""The committee as a real process against a real JetStream server.

Events are crafted here as the other services would publish them; the
committee's answers are read over HTTP and from the stream.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator
from uuid import uuid4

import httpx
import nats
import pytest

from khidma.nats_server import NatsServer
from khidma.processes import ServiceProcess
from shared.events import (
    Actor,
    Applicant,
    DataVerified,
    DataVerifiedPayload,
    IntegrationEvent,
    ReferredToResearcher,
    ReferredToResearcherPayload,
    RequestReceived,
    RequestReceivedPayload,
    encode_event,
)
from shared.subjects import event_subject
from tests.helpers import stream_messages_sync, wait_for

pytestmark = pytest.mark.integration


# Crafted events ------------------------------------------------------------------------


def request_received() -> RequestReceived:
    event_id = uuid4()
    return RequestReceived(
        event_id=event_id,
        occurred_at=datetime.now(timezone.utc),
        association_id="sidr",
        case_id=uuid4(),
        case_ref="SID-TEST0001",
        correlation_id=event_id,
        actor=Actor(kind="adapter", id="http:website"),
        payload=RequestReceivedPayload(
            channel="website",
            channel_ref=f"form-{uuid4().hex[:8]}",
            service_code="food-basket",
            applicant=Applicant(national_id="1000000001", name="Applicant"),
        ),
    )


def data_verified(request: RequestReceived, outcome: str = "verified") -> DataVerified:
    return DataVerified(
        event_id=uuid4(),
        occurred_at=datetime.now(timezone.utc),
        association_id=request.association_id,
        case_id=request.case_id,
        case_ref=request.case_ref,
        correlation_id=request.correlation_id,
        causation_id=request.event_id,
        actor=Actor(kind="officer", id="verifier-1"),
        payload=DataVerifiedPayload(outcome=outcome, checks=[], officer="verifier-1"),  # type: ignore[arg-type]
    )


def referred(request: RequestReceived) -> ReferredToResearcher:
    return ReferredToResearcher(
        event_id=uuid4(),
        occurred_at=datetime.now(timezone.utc),
        association_id=request.association_id,
        case_id=request.case_id,
        case_ref=request.case_ref,
        correlation_id=request.correlation_id,
        causation_id=request.event_id,
        actor=Actor(kind="officer", id="officer-7"),
        payload=ReferredToResearcherPayload(
            reason="the procedures are unclear to the applicant",
            questions=["which documents are needed?"],
            referred_by="officer-7",
        ),
    )


def publish(nats_url: str, *events: IntegrationEvent, msg_id_suffix: str = "") -> None:
    """Publishes as a producing service's relay does: Nats-Msg-Id = event id."""

    async def go() -> None:
        connection = await nats.connect(nats_url)
        try:
            js = connection.jetstream()
            for event in events:
                await js.publish(
                    event_subject(event.association_id, event.case_id, event.event_type),
                    encode_event(event),
                    headers={"Nats-Msg-Id": f"{event.event_id}{msg_id_suffix}"},
                )
        finally:
            await connection.close()

    asyncio.run(go())


# The service ---------------------------------------------------------------------------------


@pytest.fixture
def committee(nats_server: NatsServer, tmp_path: Path) -> Iterator[ServiceProcess]:
    service = ServiceProcess(
        "committee",
        nats_server.url,
        tmp_path / "data",
        # Redelivery of an event that came before its request must not dead-letter it.
        env={"KHIDMA_MAX_DELIVERIES": "50", "KHIDMA_POLL_INTERVAL_SECONDS": "0.05"},
    )
    service.start()
    try:
        yield service
    finally:
        service.stop()


def get_json(url: str) -> Any:
    response = httpx.get(url, timeout=5.0)
    response.raise_for_status()
    return response.json()


def case_ids(url: str) -> set[str]:
    return {doc["case_id"] for doc in get_json(url)}


def committee_decided(nats_url: str) -> list[dict[str, Any]]:
    return stream_messages_sync(nats_url, "khidma.*.*.CommitteeDecided")


# Tests --------------------------------------------------------------------------------------


def test_referral_verification_and_decision_publish_one_committee_decided(
    nats_server: NatsServer, committee: ServiceProcess
) -> None:
    request = request_received()
    referral = referred(request)
    publish(nats_server.url, request, referral)
    # The same request re-published beyond the duplicate window opens one case.
    publish(nats_server.url, request, msg_id_suffix=":again")
    case_id = str(request.case_id)

    wait_for(lambda: case_id in case_ids(f"{committee.url}/researcher/queue"), what="queue")
    doc = get_json(f"{committee.url}/cases/{case_id}")
    assert doc["referral"]["open"] is True
    assert doc["referral"]["questions"] == ["which documents are needed?"]
    assert doc["on_agenda"] is False
    received = datetime.fromisoformat(doc["received_at"])
    assert datetime.fromisoformat(doc["deadline"]) == received + timedelta(days=14)

    closure = httpx.post(
        f"{committee.url}/referrals/{case_id}/closure",
        json={"researcher": "researcher-1", "answers": ["the ID card"], "note": "six in the family"},
    )
    assert closure.status_code == 202, closure.text
    wait_for(lambda: case_id not in case_ids(f"{committee.url}/researcher/queue"), what="closed")
    again = httpx.post(
        f"{committee.url}/referrals/{case_id}/closure",
        json={"researcher": "researcher-1", "answers": [], "note": ""},
    )
    assert again.status_code == 409
    assert again.json()["error"] == "no_open_referral"

    verification = data_verified(request)
    publish(nats_server.url, verification)
    wait_for(lambda: case_id in case_ids(f"{committee.url}/agenda"), what="agenda")

    decision = {
        "decision": "approved",
        "reasons": ["the file is complete and the need is shown"],
        "votes": [
            {"member": "chair", "vote": "approve"},
            {"member": "member-2", "vote": "approve"},
            {"member": "member-3", "vote": "reject"},
        ],
    }
    response = httpx.post(f"{committee.url}/cases/{case_id}/decision", json=decision)
    assert response.status_code == 202, response.text
    assert response.json() == {"case_id": case_id, "decision": "approved", "within_window": True}
    twice = httpx.post(f"{committee.url}/cases/{case_id}/decision", json=decision)
    assert twice.status_code == 409
    assert twice.json()["error"] == "already_decided"

    wait_for(lambda: committee_decided(nats_server.url), what="CommitteeDecided")
    wait_for(
        lambda: get_json(f"{committee.url}/ready").get("outbox_lag") == 0, what="outbox drained"
    )
    published = committee_decided(nats_server.url)
    assert len(published) == 1
    message = published[0]
    event = message["event"]
    assert message["subject"] == f"khidma.sidr.{case_id}.CommitteeDecided"
    assert message["headers"]["Nats-Msg-Id"] == event["event_id"]
    assert event["causation_id"] == str(verification.event_id)
    assert event["correlation_id"] == str(request.correlation_id)
    assert event["case_ref"] == request.case_ref
    assert event["actor"] == {"kind": "committee", "id": "committee"}
    assert event["payload"]["decision"] == "approved"
    assert event["payload"]["window_days"] == 14
    assert event["payload"]["within_window"] is True
    assert len(event["payload"]["votes"]) == 3

    doc = wait_for(
        lambda: (d := get_json(f"{committee.url}/cases/{case_id}"))["decision"] and d,
        what="decision in the read model",
    )
    assert doc["on_agenda"] is False
    assert doc["referral"]["note"] == "six in the family"
    assert case_id not in case_ids(f"{committee.url}/agenda")
    ready = get_json(f"{committee.url}/ready")
    assert ready["dead_letters"] == 0


def test_a_verification_published_before_its_request_is_recorded(
    nats_server: NatsServer, committee: ServiceProcess
) -> None:
    request = request_received()
    verification = data_verified(request)
    publish(nats_server.url, verification)
    # The committee sees the verification and cannot place it yet: it naks it.
    log = committee.data_dir / "committee.log"
    wait_for(lambda: "RetryLater" in log.read_text(errors="replace"), what="a RetryLater")
    publish(nats_server.url, request)
    case_id = str(request.case_id)
    wait_for(lambda: case_id in case_ids(f"{committee.url}/agenda"), what="agenda")
    doc = get_json(f"{committee.url}/cases/{case_id}")
    assert doc["verification_outcome"] == "verified"
    wait_for(lambda: get_json(f"{committee.url}/ready")["consumer_pending"] == 0, what="drained")
    assert get_json(f"{committee.url}/ready")["dead_letters"] == 0


def test_approving_an_ineligible_case_is_refused_in_english_and_arabic(
    nats_server: NatsServer, committee: ServiceProcess
) -> None:
    request = request_received()
    publish(nats_server.url, request, data_verified(request, "ineligible"))
    case_id = str(request.case_id)
    wait_for(
        lambda: get_json(f"{committee.url}/cases/{case_id}")["verification_outcome"]
        == "ineligible",
        what="ineligible outcome",
    )
    assert case_id not in case_ids(f"{committee.url}/agenda")
    response = httpx.post(
        f"{committee.url}/cases/{case_id}/decision",
        json={
            "decision": "approved",
            "reasons": ["sympathy"],
            "votes": [{"member": "chair", "vote": "approve"}],
        },
    )
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "not_eligible_for_approval"
    assert body["message"]["en"] and body["message"]["ar"]
    rejected = httpx.post(
        f"{committee.url}/cases/{case_id}/decision",
        json={
            "decision": "rejected",
            "reasons": ["not eligible for this service"],
            "votes": [{"member": "chair", "vote": "reject"}],
        },
    )
    assert rejected.status_code == 202, rejected.text


def test_malformed_or_misdirected_requests_are_answered_clearly(
    committee: ServiceProcess,
) -> None:
    case_id = str(uuid4())
    decision_url = f"{committee.url}/cases/{case_id}/decision"
    valid = {
        "decision": "approved",
        "reasons": ["ok"],
        "votes": [{"member": "chair", "vote": "approve"}],
    }

    def problem_fields(body: dict[str, Any]) -> list[list[Any]]:
        response = httpx.post(decision_url, json=body)
        assert response.status_code == 422, response.text
        return [problem["loc"] for problem in response.json()["detail"]]

    assert ["body", "decision"] in problem_fields({**valid, "decision": "maybe"})
    assert ["body", "votes"] in problem_fields({**valid, "votes": []})
    assert ["body", "reasons"] in problem_fields({k: v for k, v in valid.items() if k != "reasons"})
    assert any(
        loc[:2] == ["body", "votes"] and loc[-1] == "vote"
        for loc in problem_fields({**valid, "votes": [{"member": "chair", "vote": "yes"}]})
    )

    unknown = httpx.post(decision_url, json=valid)
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "case_not_found"
    assert unknown.json()["message"]["ar"]
    missing = httpx.get(f"{committee.url}/cases/{case_id}")
    assert missing.status_code == 404
    assert missing.json()["message"]["en"] and missing.json()["message"]["ar"]
    closure = httpx.post(
        f"{committee.url}/referrals/{case_id}/closure", json={"answers": ["no researcher"]}
    )
    assert closure.status_code == 422
    assert ["body", "researcher"] in [p["loc"] for p in closure.json()["detail"]]
