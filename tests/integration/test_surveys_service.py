"""Surveys as a real process on a real JetStream server: invitation, answer, publication."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import nats
import pytest

from khidma.nats_server import NatsServer
from khidma.processes import ServiceProcess
from shared.events import (
    Applicant,
    CommitteeDecided,
    IntegrationEvent,
    RequestReceived,
    ServiceDelivered,
    encode_event,
)
from shared.roles import SURVEYS_OFFICER
from shared.subjects import event_subject
from tests import builders
from tests.auth import as_role
from tests.helpers import stream_messages_sync, survey_token, wait_for

pytestmark = pytest.mark.integration

ASSOCIATION = "sidr"
# The surveys officer reads the invitations and the results (tests/auth.py).
OFFICER = as_role(SURVEYS_OFFICER, ASSOCIATION)


@pytest.fixture
def surveys(nats_server: NatsServer, tmp_path: Path) -> Iterator[ServiceProcess]:
    # Started before anything is published: it creates the KHIDMA stream.
    service = ServiceProcess("surveys", nats_server.url, tmp_path / "data").start()
    try:
        yield service
    finally:
        service.stop()


def publish(nats_url: str, *events: IntegrationEvent) -> None:
    async def send() -> None:
        connection = await nats.connect(nats_url)
        try:
            js = connection.jetstream()
            for event in events:
                await js.publish(
                    event_subject(event.association_id, event.case_id, event.event_type),
                    encode_event(event),
                    headers={"Nats-Msg-Id": str(event.event_id)},
                )
        finally:
            await connection.close()

    asyncio.run(send())


def request_received(
    channel: str = "website", service_code: str = "food-basket", phone: str | None = "0500000001"
) -> RequestReceived:
    case_id = uuid4()
    return builders.request_received(
        association_id=ASSOCIATION,
        case_id=case_id,
        case_ref=f"SID-{case_id.hex[:8].upper()}",
        channel=channel,
        channel_ref=f"ref-{case_id.hex}",
        service_code=service_code,
        applicant=Applicant(national_id="1000000001", name="Applicant", phone=phone),
    )


def service_delivered(received: RequestReceived) -> ServiceDelivered:
    return builders.service_delivered(
        received,
        service_code=received.payload.service_code,
        delivered="one food basket",
        delivered_by="officer-7",
    )


def committee_decided(received: RequestReceived, decision: str) -> CommitteeDecided:
    return builders.committee_decided(received, decision=decision, reasons=["per policy"])


def invitation(service: ServiceProcess, case_id: UUID) -> dict[str, Any]:
    def invited() -> dict[str, Any] | None:
        response = httpx.get(
            f"{service.url}/surveys/by-case/{case_id}", headers=OFFICER, timeout=2.0
        )
        return response.json() if response.status_code == 200 else None

    return wait_for(invited, timeout=15.0, what=f"the invitation of case {case_id}")


def answer(service: ServiceProcess, token: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{service.url}/surveys/{token}/answers", json=body, timeout=5.0)


def test_an_anonymous_answer_after_delivery_is_published_once_and_names_no_case(
    nats_server: NatsServer, surveys: ServiceProcess
) -> None:
    received = request_received()
    delivered = service_delivered(received)
    publish(nats_server.url, received, delivered)

    invited = invitation(surveys, received.case_id)
    token = survey_token(surveys.data_dir / "surveys-outbox.jsonl", received.case_id)
    assert invited["stage"] == "delivered"
    assert invited["answered"] is False

    out_of_range = answer(surveys, token, {"ratings": {"satisfaction": 6}})
    assert out_of_range.status_code == 422
    assert ["body", "ratings", "satisfaction"] in [
        problem["loc"] for problem in out_of_range.json()["detail"]
    ]

    answered = answer(
        surveys,
        token,
        {"ratings": {"satisfaction": 5, "recommend": 9}, "comment": "شكرًا"},
    )
    assert answered.status_code == 202
    assert answered.json() == {"case_id": str(received.case_id), "status": "answered"}

    again = answer(surveys, token, {"ratings": {"satisfaction": 1}})
    assert again.status_code == 409
    assert again.json()["error"] == "already_answered"
    assert again.json()["message"]["en"] and again.json()["message"]["ar"]

    wait_for(
        lambda: stream_messages_sync(nats_server.url, "khidma.*.*.SurveyAnswered"),
        what="SurveyAnswered on the stream",
    )
    wait_for(
        lambda: httpx.get(f"{surveys.url}/ready").json().get("outbox_lag") == 0,
        what="the outbox relay to catch up",
    )
    published = stream_messages_sync(nats_server.url, "khidma.*.*.SurveyAnswered")
    assert len(published) == 1
    event = published[0]["event"]
    assert published[0]["headers"]["Nats-Msg-Id"] == event["event_id"]
    # Nothing leads back to the case (decision 16): its own id, no cause, no correlation.
    assert event["case_id"] != str(received.case_id)
    assert str(received.case_id) not in published[0]["subject"]
    assert event["case_ref"] == "anonymous" and received.case_ref not in str(event)
    assert event["causation_id"] is None and str(delivered.event_id) not in str(event)
    assert event["correlation_id"] != str(received.correlation_id)
    assert event["actor"] == {"kind": "applicant", "id": "anonymous"}
    assert event["payload"] == {
        "ratings": {"satisfaction": 5, "recommend": 9},
        "comment": "شكرًا",
        "anonymous": True,
        "stage": "delivered",
        "service_code": received.payload.service_code,
        "channel": received.payload.channel,
    }


def test_a_named_answer_is_published_on_its_case_caused_by_the_delivery(
    nats_server: NatsServer, surveys: ServiceProcess
) -> None:
    received = request_received()
    delivered = service_delivered(received)
    publish(nats_server.url, received, delivered)
    invitation(surveys, received.case_id)
    token = survey_token(surveys.data_dir / "surveys-outbox.jsonl", received.case_id)

    body = {"ratings": {"satisfaction": 4}, "anonymous": False}
    assert answer(surveys, token, body).status_code == 202

    [message] = wait_for(
        lambda: stream_messages_sync(nats_server.url, "khidma.*.*.SurveyAnswered"),
        what="SurveyAnswered on the stream",
    )
    event = message["event"]
    assert event["case_id"] == str(received.case_id)
    assert event["causation_id"] == str(delivered.event_id)
    assert event["correlation_id"] == str(received.correlation_id)
    assert event["actor"] == {"kind": "applicant", "id": received.case_ref}
    assert event["payload"]["anonymous"] is False


def test_a_rejection_invites_the_applicant_and_an_approval_does_not(
    nats_server: NatsServer, surveys: ServiceProcess
) -> None:
    approved = request_received()
    rejected = request_received()
    rejection = committee_decided(rejected, "rejected")
    # The approval is published first: once the later rejection is visible,
    # the approval was handled too (one consumer, in stream order).
    publish(
        nats_server.url,
        approved,
        rejected,
        committee_decided(approved, "approved"),
        rejection,
    )

    invited = invitation(surveys, rejected.case_id)
    assert invited["stage"] == "rejected"
    token = survey_token(surveys.data_dir / "surveys-outbox.jsonl", rejected.case_id)
    # The case's own page shows no token either: only the applicant's link holds it.
    assert "token" not in invited and token not in str(invited)

    not_invited = httpx.get(f"{surveys.url}/surveys/by-case/{approved.case_id}", headers=OFFICER)
    assert not_invited.status_code == 404
    assert not_invited.json()["message"]["en"] and not_invited.json()["message"]["ar"]
    waiting = httpx.get(
        f"{surveys.url}/surveys", params={"answered": "false"}, headers=OFFICER
    ).json()
    assert [doc["case_id"] for doc in waiting] == [str(rejected.case_id)]
    # The list shows no token: a token answers the survey in the applicant's name.
    assert "token" not in waiting[0] and token not in str(waiting)

    unknown = answer(surveys, "no-such-token", {"ratings": {"satisfaction": 3}})
    assert unknown.status_code == 404
    assert unknown.json()["message"]["en"] and unknown.json()["message"]["ar"]


def test_results_hide_a_small_group_and_the_sibling_that_would_reveal_it_by_subtraction(
    nats_server: NatsServer, surveys: ServiceProcess
) -> None:
    cases = [request_received("website") for _ in range(5)] + [request_received("phone")]
    publish(nats_server.url, *cases, *(service_delivered(case) for case in cases))

    # Five website answers average 4.6, the one phone answer is 1: the total is 4.0.
    ratings = [(5, 10), (5, 9), (5, 9), (4, 7), (4, 0), (1, 0)]
    for case, (satisfaction, recommend) in zip(cases, ratings):
        invitation(surveys, case.case_id)
        token = survey_token(surveys.data_dir / "surveys-outbox.jsonl", case.case_id)
        body = {"ratings": {"satisfaction": satisfaction, "recommend": recommend}}
        assert answer(surveys, token, body).status_code == 202

    def all_counted() -> dict[str, Any] | None:
        report = httpx.get(f"{surveys.url}/results", headers=OFFICER).json()
        by_service = report["by_service_code"]
        return report if by_service and by_service[0].get("answers") == 6 else None

    report = wait_for(all_counted, what="six answers in the results")
    # Showing website (5 at 4.6) beside the total (6 at 4.0) would give the phone
    # applicant's 1 back: both channels are hidden, each saying why.
    assert [row["channel"] for row in report["by_channel"]] == ["phone", "website"]
    for row in report["by_channel"]:
        assert row["suppressed"] is True and "answers" not in row
        assert row["why"]["en"] and row["why"]["ar"]
    assert [row["why"]["code"] for row in report["by_channel"]] == [
        "too_few_answers",
        "protects_a_smaller_group",
    ]
    recommend = {
        "suppressed": False,
        "answers": 6,
        "average": 5.83,
        "net_promoter_score": 16.7,  # 3 promoters, 2 detractors of 6
    }
    whole = {"suppressed": False, "answers": 6, "average_satisfaction": 4.0, "recommend": recommend}
    assert report["by_service_code"] == [{"service_code": "food-basket", **whole}]
    assert report["by_stage"] == [{"stage": "delivered", **whole}]
    assert report["by_association_id"] == [{"association_id": ASSOCIATION, **whole}]
    assert report["note"]["en"] and report["note"]["ar"]
    assert "officer" not in str(report)


def test_a_named_answers_comment_is_sealed_on_the_stream_under_the_applicants_key(
    nats_server: NatsServer, surveys: ServiceProcess
) -> None:
    from tests.personal_data import keyring_sealer, sealed

    # The service's own keyring (make run's runner made its master key in its folder).
    sealer = keyring_sealer(surveys.data_dir)
    received = sealed(request_received(), sealer)
    delivered = service_delivered(received)
    publish(nats_server.url, received, delivered)
    invitation(surveys, received.case_id)
    token = survey_token(surveys.data_dir / "surveys-outbox.jsonl", received.case_id)
    words = "شكرًا يا فاطمة، وصلت الشتلات"
    body = {"ratings": {"satisfaction": 5}, "comment": words, "anonymous": False}
    assert answer(surveys, token, body).status_code == 202

    [message] = wait_for(
        lambda: stream_messages_sync(nats_server.url, "khidma.*.*.SurveyAnswered"),
        what="SurveyAnswered on the stream",
    )
    payload = message["event"]["payload"]
    assert words not in str(message) and payload["personal_key"] == received.payload.personal_key
    assert payload["comment"]["sealed"] == "v1"
    assert sealer.open(payload["comment"]) == words
