"""The verification service as a real process, against a real JetStream server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
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
    Attestation,
    RequestReceived,
    encode_event,
)
from shared.personal import Sealer
from shared.subjects import event_subject
from tests import builders
from tests.auth import as_role, as_staff
from tests.helpers import stream_messages_sync, wait_for
from tests.personal_data import keyring_of

pytestmark = pytest.mark.integration

DATA_VERIFIED = "khidma.*.*.DataVerified"


@pytest.fixture
def verification(nats_server: NatsServer, tmp_path: Path) -> Iterator[ServiceProcess]:
    # The service declares the KHIDMA stream on start: start it before publishing.
    service = ServiceProcess("verification", nats_server.url, tmp_path / "data").start()
    try:
        yield service
    finally:
        # A clean stop takes well under a second. Until the shared consumer
        # unsubscribes its pull subscription on shutdown, the broker's drain can
        # wait on it (a nats-py fetch leaves a queue item unfinished): bound it.
        service.stop(timeout=5)


SIGNED = Attestation(attested=True)


def request_received(*, attestation: Attestation | None = SIGNED) -> RequestReceived:
    return builders.request_received(
        occurred_at=datetime(2025, 3, 1, 9, 30, tzinfo=UTC),
        case_ref="SID-0001",
        service_code="volunteering",
        applicant=Applicant(national_id="1012345672", name="Aisha", phone="0501234567"),
        fields={"availability": "weekends"},
        attestation=attestation,
    )


def publish(nats_url: str, event: RequestReceived, msg_id: str | None = None) -> None:
    async def go() -> None:
        connection = await nats.connect(nats_url)
        try:
            ack = await connection.jetstream().publish(
                event_subject(event.association_id, event.case_id, event.event_type),
                encode_event(event),
                headers={"Nats-Msg-Id": msg_id or str(event.event_id)},
            )
            assert not ack.duplicate
        finally:
            await connection.close()

    asyncio.run(go())


def pending_with(service: ServiceProcess, case_id: UUID, suggested: str) -> dict[str, Any]:
    def shown() -> dict[str, Any] | None:
        response = httpx.get(f"{service.url}/verifications/{case_id}", timeout=2.0, headers=as_staff())
        if response.status_code != 200:
            return None
        doc: dict[str, Any] = response.json()
        return doc if doc["status"] == "pending" else None

    doc = wait_for(shown, timeout=10, what=f"verification {case_id} pending")
    assert doc["suggested_outcome"] == suggested
    return doc


def confirm(
    service: ServiceProcess, case_id: UUID, body: Any, officer: str = "officer-7"
) -> httpx.Response:
    """The confirmation, sent by the verifier `officer` signed in (sidr's verifier)."""
    return httpx.post(
        f"{service.url}/verifications/{case_id}/confirmation",
        json=body,
        timeout=5.0,
        headers=as_role("verifier", subject=officer, name=f"Officer {officer}"),
    )


def readiness(service: ServiceProcess) -> dict[str, Any]:
    return httpx.get(f"{service.url}/ready", timeout=2.0, headers=as_staff()).json()  # type: ignore[no-any-return]


def published_once(nats_url: str, service: ServiceProcess) -> dict[str, Any]:
    """The one DataVerified on the stream, once the outbox has nothing left to publish."""
    wait_for(
        lambda: readiness(service).get("outbox_lag") == 0
        and stream_messages_sync(nats_url, DATA_VERIFIED),
        timeout=10,
        what="DataVerified published",
    )
    messages = stream_messages_sync(nats_url, DATA_VERIFIED)
    assert len(messages) == 1, messages
    return messages[0]


def test_a_received_request_is_confirmed_and_published_as_data_verified(
    nats_server: NatsServer, verification: ServiceProcess
) -> None:
    received = request_received(attestation=None)
    publish(nats_server.url, received)

    doc = pending_with(verification, received.case_id, "discrepancies")
    assert doc["case_ref"] == "SID-0001"
    assert doc["submitted_at"].startswith("2025-03-01T09:30:00")
    assert doc["submitted_at_display"]["hijri"] == "1446-09-01"
    assert doc["corrections"][0]["field"] == "attestation"
    assert {c["name"]: c["passed"] for c in doc["checks"]}["attestation_signed"] is False
    queue = httpx.get(f"{verification.url}/verifications", params={"status": "pending"}, headers=as_staff()).json()
    assert [d["case_id"] for d in queue] == [str(received.case_id)]

    # The body names another officer: it has no effect on who is recorded.
    response = confirm(verification, received.case_id, {"officer": "someone-else"})
    assert response.status_code == 202, response.text
    assert response.json() == {"case_id": str(received.case_id), "outcome": "discrepancies"}

    message = published_once(nats_server.url, verification)
    event = message["event"]
    assert message["subject"] == f"khidma.sidr.{received.case_id}.DataVerified"
    assert message["headers"]["Nats-Msg-Id"] == event["event_id"]
    assert event["causation_id"] == str(received.event_id)
    assert event["correlation_id"] == str(received.correlation_id)
    assert event["case_id"] == str(received.case_id)
    # The signed-in verifier, with the role it acted in: not the body's "officer".
    assert event["actor"] == {
        "kind": "officer", "id": "officer-7", "name": "Officer officer-7", "role": "verifier"
    }
    assert event["payload"]["outcome"] == "discrepancies"
    assert event["payload"]["officer"] == "officer-7"
    assert [c["name"] for c in event["payload"]["checks"]] == [
        "national_id_format",
        "name_present",
        "phone_format",
        "attestation_signed",
        "service_known",
        "required_fields",
    ]
    # The published checks never repeat the applicant's phone number (personal data).
    assert "501234567" not in str(event["payload"]["checks"])
    assert [c["field"] for c in event["payload"]["corrections"]] == ["attestation"]
    assert event["payload"]["ineligible_rule"] is None

    wait_for(
        lambda: httpx.get(f"{verification.url}/verifications/{received.case_id}", headers=as_staff()).json()[
            "status"
        ]
        == "confirmed",
        timeout=10,
        what="verification shown confirmed",
    )
    again = confirm(verification, received.case_id, {"officer": "officer-8"})
    assert again.status_code == 409
    assert again.json()["error"] == "already_confirmed"


def test_the_same_request_delivered_twice_is_verified_once(
    nats_server: NatsServer, verification: ServiceProcess
) -> None:
    received = request_received()
    publish(nats_server.url, received)
    # The same content again under another message id: beyond the server's
    # duplicate window, the stream holds it twice and the service sees both.
    publish(nats_server.url, received, msg_id=f"{received.event_id}-again")
    wait_for(
        lambda: readiness(verification).get("consumed") == 2,
        timeout=10,
        what="both deliveries consumed",
    )

    pending_with(verification, received.case_id, "verified")
    assert len(httpx.get(f"{verification.url}/verifications", headers=as_staff()).json()) == 1
    response = confirm(verification, received.case_id, {"officer": "officer-7"})
    assert response.status_code == 202, response.text

    message = published_once(nats_server.url, verification)
    assert message["event"]["causation_id"] == str(received.event_id)
    assert message["event"]["payload"]["outcome"] == "verified"


def test_an_override_without_reason_is_refused_in_english_and_arabic(
    nats_server: NatsServer, verification: ServiceProcess, tmp_path: Path
) -> None:
    received = request_received()
    publish(nats_server.url, received)
    pending_with(verification, received.case_id, "verified")

    response = confirm(
        verification, received.case_id, {"officer": "officer-7", "outcome": "ineligible"}
    )
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "override_needs_reason"
    assert body["message"]["en"] and body["message"]["ar"]

    overridden = confirm(
        verification,
        received.case_id,
        {"officer": "officer-7", "outcome": "ineligible", "reason": "Applicant is deceased"},
    )
    assert overridden.status_code == 202, overridden.text
    event = published_once(nats_server.url, verification)["event"]
    assert event["payload"]["outcome"] == "ineligible"
    # The officer's reason is sealed under the applicant's key (decision 24): the
    # published check says that they overrode, the reason opens with the keyring.
    assert event["payload"]["checks"][-1] == {
        "name": "officer_override",
        "passed": True,
        "detail": "The officer overrode the suggested outcome, for the reason they gave.",
    }
    sealed = event["payload"]["override_reason"]
    assert event["payload"]["personal_key"] == sealed["key"]
    keyring = keyring_of(tmp_path / "data")
    try:
        assert Sealer(keyring).open(sealed) == "Applicant is deceased"
    finally:
        keyring.close()
    # What the applicant is told when no rule failed is the officer's words, as sent.
    assert event["payload"]["ineligible_rule"] == "Applicant is deceased"


def test_a_malformed_confirmation_is_rejected_naming_the_field(
    verification: ServiceProcess,
) -> None:
    case_id = uuid4()
    misspelt = confirm(verification, case_id, {"outcom": "verified"})
    assert misspelt.status_code == 422
    assert ["body", "outcom"] in [problem["loc"] for problem in misspelt.json()["detail"]]

    bad_outcome = confirm(verification, case_id, {"officer": "officer-7", "outcome": "maybe"})
    assert bad_outcome.status_code == 422
    assert ["body", "outcome"] in [problem["loc"] for problem in bad_outcome.json()["detail"]]


def test_an_unknown_case_is_not_found_in_english_and_arabic(
    verification: ServiceProcess,
) -> None:
    case_id = uuid4()
    for response in (
        httpx.get(f"{verification.url}/verifications/{case_id}", headers=as_staff()),
        confirm(verification, case_id, {"officer": "officer-7"}),
    ):
        assert response.status_code == 404
        body = response.json()
        assert body["error"] == "verification_not_found"
        assert body["message"]["en"] and body["message"]["ar"]


def test_a_corrected_revision_is_verified_again_and_published_with_its_revision(
    nats_server: NatsServer, verification: ServiceProcess
) -> None:
    first = request_received(attestation=None)
    publish(nats_server.url, first)
    pending_with(verification, first.case_id, "discrepancies")
    assert confirm(verification, first.case_id, {"officer": "officer-7"}).status_code == 202
    first_verified = published_once(nats_server.url, verification)["event"]
    assert first_verified["payload"]["revision"] == 1

    # The applicant signs; intake publishes the whole request again, revision 2.
    corrected = first.model_copy(
        update={
            "event_id": uuid4(),
            "occurred_at": datetime(2025, 3, 4, 8, 0, tzinfo=UTC),
            "payload": first.payload.model_copy(
                update={
                    "attestation": Attestation(attested=True),
                    "revision": 2,
                    "corrects": UUID(first_verified["event_id"]),
                    "submitted_at": datetime(2025, 3, 4, 7, 55, tzinfo=UTC),
                }
            ),
        }
    )
    publish(nats_server.url, corrected)

    def second_round() -> dict[str, Any] | None:
        doc: dict[str, Any] = httpx.get(
            f"{verification.url}/verifications/{first.case_id}", timeout=2.0, headers=as_staff()
        ).json()
        return doc if doc.get("revision") == 2 else None

    doc = wait_for(second_round, timeout=10, what="the second round")
    assert doc["status"] == "pending" and doc["suggested_outcome"] == "verified"
    assert doc["submitted_at_display"]["gregorian"] == "2025-03-04"
    (earlier,) = doc["earlier_rounds"]
    assert earlier["revision"] == 1 and earlier["outcome"] == "discrepancies"
    assert earlier["data_verified_event_id"] == first_verified["event_id"]

    stale = confirm(verification, first.case_id, {"officer": "officer-7", "revision": 1})
    assert stale.status_code == 409 and stale.json()["error"] == "revision_changed"
    response = confirm(verification, first.case_id, {"officer": "officer-8", "revision": 2})
    assert response.status_code == 202, response.text
    assert response.json()["outcome"] == "verified"

    wait_for(
        lambda: readiness(verification).get("outbox_lag") == 0
        and len(stream_messages_sync(nats_server.url, DATA_VERIFIED)) == 2,
        timeout=10,
        what="the second DataVerified published",
    )
    events = [m["event"] for m in stream_messages_sync(nats_server.url, DATA_VERIFIED)]
    assert [e["payload"]["revision"] for e in events] == [1, 2]
    assert [e["payload"]["outcome"] for e in events] == ["discrepancies", "verified"]
    assert [e["causation_id"] for e in events] == [str(first.event_id), str(corrected.event_id)]
    assert {e["correlation_id"] for e in events} == {str(first.correlation_id)}
    assert {e["case_id"] for e in events} == {str(first.case_id)}

    # The corrected request delivered again, and the first one again: nothing changes.
    publish(nats_server.url, corrected, msg_id=f"{corrected.event_id}-again")
    publish(nats_server.url, first, msg_id=f"{first.event_id}-again")
    wait_for(
        lambda: readiness(verification).get("consumed") == 4,
        timeout=10,
        what="the repeats consumed",
    )
    doc = httpx.get(f"{verification.url}/verifications/{first.case_id}", headers=as_staff()).json()
    assert doc["revision"] == 2 and doc["status"] == "confirmed"
    assert len(doc["earlier_rounds"]) == 1
    assert len(stream_messages_sync(nats_server.url, DATA_VERIFIED)) == 2
