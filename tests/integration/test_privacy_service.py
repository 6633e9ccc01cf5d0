"""The privacy service as a process on a real JetStream server.

Its scheduled sweep runs on the clock file (`KHIDMA_CLOCK_FILE`), as the other
services' jobs do: a test moves the clock past the association's retention and
the service erases the subject by itself. An erasure, requested or for
retention, reaches the stream as `PersonalDataErased` with the destroyed key ids.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from khidma.nats_server import NatsServer
from khidma.processes import ServiceProcess
from services.privacy.main import PrivacySettings
from shared.events import Applicant, IntegrationEvent, RequestReceived, Sealed, encode_event
from shared.personal import MasterKeys, Sealer, SubjectKeyring, open_keyring
from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs
from shared.roles import PRIVACY_OFFICER
from shared.subjects import event_subject
from tests import builders
from tests.auth import as_role
from tests.helpers import stream_messages_sync, wait_for

pytestmark = pytest.mark.integration

NATIONAL_ID = "1029384756"


@pytest.fixture
def clock_file(tmp_path: Path) -> Path:
    return tmp_path / "clock-offset"


@pytest.fixture
def keyring(tmp_path: Path) -> Iterator[SubjectKeyring]:
    """The keyring the service opens (its data folder's), as intake would share it."""
    settings = PrivacySettings(nats_url="nats://unused:4222", data_dir=tmp_path / "data")
    MasterKeys.ensure(settings.master_key_path)
    opened = open_keyring(settings)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def privacy(
    nats_server: NatsServer, tmp_path: Path, clock_file: Path, keyring: SubjectKeyring
) -> Iterator[ServiceProcess]:
    service = ServiceProcess(
        "privacy",
        nats_server.url,
        tmp_path / "data",
        env={
            "KHIDMA_POLL_INTERVAL_SECONDS": "0.05",
            "KHIDMA_CLOCK_FILE": str(clock_file),
            "KHIDMA_RETENTION_SWEEP_SECONDS": "0.1",
        },
    )
    service.start()
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


def sealed_request(keyring: SubjectKeyring) -> RequestReceived:
    key = keyring.key_for("sidr", NATIONAL_ID)
    applicant = Applicant(national_id=NATIONAL_ID, name="Nura", phone="0551234567")
    return builders.request_received(
        association_id="sidr",
        applicant=Sealed(**Sealer(keyring).seal(key, applicant.model_dump(mode="json"))),
        personal_key=key,
        subject_index=keyring.subject_index("sidr", NATIONAL_ID),
    )


def destroyed(keyring: SubjectKeyring, key: str) -> bool:
    # The records, not `key()`: the test's own keyring caches a key it opened.
    return any(r.key_id == key and r.destroyed_at for r in keyring.records())


def erased_on_stream(nats_url: str) -> list[dict[str, Any]]:
    return [m["event"] for m in stream_messages_sync(nats_url, "khidma.*.*.PersonalDataErased")]


def sweeps(service: ServiceProcess) -> int:
    """How many sweeps the service has finished (its /ready says)."""
    return int(httpx.get(f"{service.url}/ready", timeout=5).json()["sweeps"])


def consumed(service: ServiceProcess, count: int) -> bool:
    ready = httpx.get(f"{service.url}/ready", timeout=5).json()
    return bool(ready.get("consumed", 0) >= count)


def test_the_retention_job_erases_on_the_moved_clock_and_not_before(
    nats_server: NatsServer, privacy: ServiceProcess, keyring: SubjectKeyring, clock_file: Path
) -> None:
    retention = load_packs(DEFAULT_POLICIES_DIR)["sidr"].retention_days
    request = sealed_request(keyring)
    key = str(request.payload.personal_key)
    publish(nats_server.url, request, builders.service_delivered(request))
    wait_for(lambda: consumed(privacy, 2), what="the request and its delivery consumed")

    # A day short of the retention: sweeps run on the moved clock, nothing is erased.
    clock_file.write_text(str((retention - 1) * 86400))
    swept = sweeps(privacy)
    wait_for(lambda: sweeps(privacy) >= swept + 2, what="two sweeps on the moved clock")
    assert not destroyed(keyring, key) and erased_on_stream(nats_server.url) == []

    clock_file.write_text(str((retention + 1) * 86400))
    [event] = wait_for(lambda: erased_on_stream(nats_server.url), what="PersonalDataErased")
    assert event["association_id"] == "sidr"
    assert event["payload"]["reason_code"] == "retention"
    assert event["payload"]["key_ids"] == [key]
    assert event["payload"]["case_ids"] == [str(request.case_id)]
    assert NATIONAL_ID not in str(event)
    assert destroyed(keyring, key)


def test_an_erasure_request_reaches_the_stream_as_personal_data_erased(
    nats_server: NatsServer, privacy: ServiceProcess, keyring: SubjectKeyring
) -> None:
    request = sealed_request(keyring)
    key = str(request.payload.personal_key)
    publish(nats_server.url, request)
    wait_for(lambda: consumed(privacy, 1), what="the request consumed")
    response = httpx.post(
        f"{privacy.url}/associations/sidr/erasures",
        json={"national_id": NATIONAL_ID, "reason": "asked", "legal_basis": "PDPL article 18"},
        headers=as_role(PRIVACY_OFFICER, "sidr"),
        timeout=10,
    )
    assert response.status_code == 201, response.text
    assert destroyed(keyring, key)
    [event] = wait_for(lambda: erased_on_stream(nats_server.url), what="PersonalDataErased")
    assert event["payload"]["reason_code"] == "request"
    assert event["payload"]["erasure_id"] == response.json()["erasure_id"]
    assert event["case_id"] == response.json()["erasure_id"]
    assert NATIONAL_ID not in (privacy.data_dir / "privacy.log").read_text()
