"""Verification as a real process: the member registry, the packs, checks at submission time."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import nats
import pytest

from khidma.nats_server import NatsServer
from khidma.processes import ServiceProcess
from shared.events import (
    Applicant,
    Attestation,
    Document,
    RequestReceived,
    encode_event,
)
from shared.policy_loader import DEFAULT_POLICIES_DIR
from shared.subjects import event_subject
from tests import builders
from tests.auth import as_staff
from tests.helpers import stream_messages_sync, wait_for

pytestmark = pytest.mark.integration

MEMBER = "1000000008"
STRANGER = "2000000006"
SUBMITTED_AT = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
REGISTRY = (
    "national_id,name,joined_on,status,status_since\n"
    f"{MEMBER},Aisha,2020-01-01,good,2020-01-01\n"
    "1000000001,Bad Id,2020-01-01,good,2020-01-01\n"
)


@pytest.fixture
def verification(nats_server: NatsServer, tmp_path: Path) -> Iterator[ServiceProcess]:
    service = ServiceProcess("verification", nats_server.url, tmp_path / "data").start()
    try:
        yield service
    finally:
        service.stop(timeout=5)


def request_received(national_id: str, expires_on: date) -> RequestReceived:
    return builders.request_received(
        # Intake recorded it days later (completed then); validity is judged at submission.
        occurred_at=datetime(2025, 3, 20, 9, 30, tzinfo=UTC),
        case_ref="SDR-1446-000001",
        service_code="member-service",
        applicant=Applicant(national_id=national_id, name="Aisha", phone="050 123 4567"),
        fields={"request_details": "A seedling nursery visit"},
        documents=[Document(code="national_id_card", number="x", expires_on=expires_on)],
        attestation=Attestation(attested=True),
        submitted_at=SUBMITTED_AT,
    )


def publish(nats_url: str, *events: RequestReceived) -> None:
    async def go() -> None:
        connection = await nats.connect(nats_url)
        try:
            for event in events:
                await connection.jetstream().publish(
                    event_subject(event.association_id, event.case_id, event.event_type),
                    encode_event(event),
                    headers={"Nats-Msg-Id": str(event.event_id)},
                )
        finally:
            await connection.close()

    asyncio.run(go())


def shown(service: ServiceProcess, case_id: UUID) -> dict[str, Any]:
    def get() -> dict[str, Any] | None:
        response = httpx.get(f"{service.url}/verifications/{case_id}", timeout=2.0, headers=as_staff())
        return response.json() if response.status_code == 200 else None  # type: ignore[no-any-return]

    return wait_for(get, timeout=10, what=f"verification {case_id}")  # type: ignore[no-any-return]


def import_registry(service: ServiceProcess, text: str, association_id: str = "sidr") -> httpx.Response:
    return httpx.post(
        f"{service.url}/members/import",
        params={"association_id": association_id},
        content=text.encode("utf-8"),
        headers={"Content-Type": "text/csv", **as_staff()},
        timeout=5.0,
    )


def test_a_member_only_service_checks_standing_and_documents_at_submission(
    nats_server: NatsServer, verification: ServiceProcess
) -> None:
    response = import_registry(verification, REGISTRY)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["imported"], report["updated"], report["unchanged"]) == (1, 0, 0)
    assert [e["line"] for e in report["errors"]] == [3]
    assert report["errors"][0]["problem"]["ar"] and report["errors"][0]["problem"]["en"]
    assert import_registry(verification, REGISTRY).json()["unchanged"] == 1

    member = httpx.get(f"{verification.url}/members/sidr/{MEMBER}", headers=as_staff()).json()
    assert member["status"] == "good"
    assert member["history"][0]["since_display"]["hijri"] == "1441-05-06"

    # The card expired in 2025, after the submission and long before today.
    member_request = request_received(MEMBER, date(2025, 3, 10))
    stranger_request = request_received(STRANGER, date(2030, 1, 1))
    publish(nats_server.url, member_request, stranger_request)

    member_doc = shown(verification, member_request.case_id)
    assert member_doc["suggested_outcome"] == "verified", member_doc["checks"]
    assert member_doc["submitted_at"].startswith("2025-03-01T09:30:00")
    checks = {c["name"]: c for c in member_doc["checks"]}
    assert checks["document:national_id_card"]["passed"]
    assert checks["membership_standing"]["passed"]
    assert checks["phone_format"]["passed"] and "501234567" not in str(checks)

    stranger_doc = shown(verification, stranger_request.case_id)
    assert stranger_doc["suggested_outcome"] == "ineligible"
    assert stranger_doc["ineligible_rule"].startswith("Members only")

    confirmed = httpx.post(
        f"{verification.url}/verifications/{stranger_request.case_id}/confirmation",
        json={"officer": "officer-7"}, headers=as_staff(),
    )
    assert confirmed.status_code == 202, confirmed.text
    wait_for(
        lambda: stream_messages_sync(nats_server.url, "khidma.*.*.DataVerified"),
        timeout=10,
        what="DataVerified published",
    )
    (message,) = stream_messages_sync(nats_server.url, "khidma.*.*.DataVerified")
    payload = message["event"]["payload"]
    assert payload["outcome"] == "ineligible"
    assert payload["ineligible_rule"].startswith("Members only")
    assert "membership_standing" in [c["name"] for c in payload["checks"]]
    doc = wait_for(
        lambda: (d := shown(verification, stranger_request.case_id))["status"] == "confirmed"
        and d,
        timeout=10,
        what="shown confirmed",
    )
    assert doc["confirmed_at_display"]["ar"] and doc["confirmed_at_display"]["en"]


def test_a_registry_that_cannot_be_read_is_refused_in_both_languages(
    verification: ServiceProcess,
) -> None:
    for response, status, code in (
        (import_registry(verification, "id,name\n"), 422, "bad_registry_header"),
        (import_registry(verification, REGISTRY, "nowhere"), 404, "association_not_found"),
        (httpx.get(f"{verification.url}/members/sidr/{STRANGER}", headers=as_staff()), 404, "member_not_found"),
    ):
        assert response.status_code == status, response.text
        body = response.json()
        assert body["error"] == code
        assert body["message"]["ar"] and body["message"]["en"]


def test_a_broken_policy_pack_stops_the_service_naming_file_and_key(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(DEFAULT_POLICIES_DIR, policies)
    pack = policies / "sidr.toml"
    pack.write_text(
        pack.read_text(encoding="utf-8").replace("decision_window_days = 14", "decision_window_days = 0"),
        encoding="utf-8",
    )
    service = ServiceProcess(
        "verification",
        nats_server.url,
        tmp_path / "data",
        env={"KHIDMA_POLICIES_DIR": str(policies)},
    )
    with pytest.raises(RuntimeError) as failed:
        service.start(timeout=15)
    assert service.process is not None
    assert service.process.wait(timeout=5) == 2
    assert "sidr.toml" in str(failed.value)
    assert "decision_window_days" in str(failed.value)


def test_one_member_is_registered_and_suspended_over_http(verification: ServiceProcess) -> None:
    url = f"{verification.url}/members/health-coop/{STRANGER}"
    entry = {"name": "Omar", "joined_on": "2019-05-01", "status": "good", "status_since": "2019-05-01"}
    assert httpx.put(url, json=entry, headers=as_staff()).status_code == 200
    response = httpx.put(url, json={**entry, "status": "suspended", "status_since": "2025-01-01"}, headers=as_staff())
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "suspended"
    assert response.json()["status_since_display"]["gregorian"] == "2025-01-01"
    assert [h["status"] for h in httpx.get(url, headers=as_staff()).json()["history"]] == ["good", "suspended"]
    bad = httpx.put(url, json={**entry, "status": "expelled"}, headers=as_staff())
    assert bad.status_code == 422
