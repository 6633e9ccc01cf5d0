"""A real service process killed between its commit and its ack leaves one effect.

The verification service runs as its own process with the testing-only fault
injection KHIDMA_FAULT_EXIT_AFTER_COMMIT: it commits the verification a
`RequestReceived` opens (with the stream position, in one transaction) and
exits with code 75 before acknowledging the message. Restarted without the
fault, it receives the message again from the server, skips it because the
position is recorded, and acknowledges it: one verification for the case.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import nats
import pytest
from eventsourcing.persistence import Tracking

from khidma.nats_server import NatsServer
from khidma.processes import ServiceProcess
from services.verification.application import VerificationApplication
from shared.consumer import FAULT_EXIT_CODE
from shared.events import (
    Actor,
    Applicant,
    Attestation,
    RequestReceived,
    encode_event,
)
from shared.store import consumer_tracking_name
from shared.stream import ensure_stream
from shared.subjects import STREAM_NAME, event_subject
from tests import builders
from tests.auth import as_staff
from tests.backends import Backend
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

DURABLE = "verification"


def request() -> RequestReceived:
    event_id = uuid4()
    return builders.request_received(
        event_id=event_id,
        case_ref=f"SID-{event_id.hex[:6]}",
        actor=Actor(kind="adapter", id="test"),
        channel_ref=str(uuid4()),
        service_code="food-basket",
        applicant=Applicant(national_id="1000000008", name="Crash", phone="+966500000000"),
        fields={"family_size": 4},
        attestation=Attestation(attested=True, method="in_person"),
    )


def store_env(backend: Backend) -> dict[str, str]:
    """The variables that point a service process at the backend's store."""
    settings = backend.settings("verification")
    if settings.store == "sqlite":
        return {
            "KHIDMA_STORE": "sqlite",
            "KHIDMA_SQLITE_PATH": str(settings.sqlite_path),
            **backend.keys_env(),
        }
    return {
        **backend.keys_env(),
        "KHIDMA_STORE": "postgres",
        "KHIDMA_POSTGRES_HOST": settings.postgres_host,
        "KHIDMA_POSTGRES_PORT": str(settings.postgres_port),
        "KHIDMA_POSTGRES_DBNAME": settings.postgres_dbname,
        "KHIDMA_POSTGRES_USER": settings.postgres_user,
        "KHIDMA_POSTGRES_SCHEMA": str(settings.postgres_schema),
        "KHIDMA_KEYRING_SCHEMA": settings.keyring_schema,
    }


async def _publish(url: str, event: RequestReceived) -> int:
    connection = await nats.connect(url)
    try:
        js = connection.jetstream()
        await ensure_stream(js)
        ack = await js.publish(
            event_subject(event.association_id, event.case_id, event.event_type),
            encode_event(event),
            headers={"Nats-Msg-Id": str(event.event_id)},
        )
        return int(ack.seq)
    finally:
        await connection.close()


async def _durable_info(url: str) -> Any:
    connection = await nats.connect(url)
    try:
        return await connection.jetstream().consumer_info(STREAM_NAME, DURABLE)
    finally:
        await connection.close()


def durable_info(url: str) -> Any:
    return asyncio.run(_durable_info(url))


def stored(backend: Backend, case_id: Any, sequence: int) -> tuple[int, bool]:
    """The events stored for the case's verification, and whether the position is recorded."""
    app = backend.open(VerificationApplication, "verification")
    try:
        events = len(list(app.recorder.select_events(case_id)))
        recorded = app.position_recorded(Tracking(consumer_tracking_name(STREAM_NAME), sequence))
        return events, recorded
    finally:
        app.close()


def exited_after_commit(crashing: ServiceProcess, log: Path) -> None:
    """The fault-injected process ended after its commit, with the fault's exit code."""
    assert crashing.process is not None
    try:
        exit_code = crashing.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("the service did not exit after its commit")
    assert exit_code == FAULT_EXIT_CODE, log.read_text()


def skipped_after_restart(restarted: ServiceProcess, duplicates: int) -> dict[str, Any]:
    """The restarted service's /ready once nothing is pending and at least `duplicates`
    redeliveries were skipped."""
    return wait_for(
        lambda: (
            ready
            if (ready := httpx.get(f"{restarted.url}/ready").json())["consumer_pending"] == 0
            and ready["duplicates_skipped"] >= duplicates
            else None
        ),
        timeout=30,
        what=f"{duplicates} redelivered message(s) skipped and acknowledged",
    )


def test_a_service_process_killed_between_commit_and_ack_leaves_one_verification(
    nats_server: NatsServer, tmp_path: Path, backend: Backend
) -> None:
    # A short ack wait: the server redelivers the unacknowledged message soon.
    env = {**store_env(backend), "KHIDMA_ACK_WAIT_SECONDS": "2"}
    crashing = ServiceProcess(
        "verification",
        nats_server.url,
        tmp_path / "first",
        env={**env, "KHIDMA_FAULT_EXIT_AFTER_COMMIT": "RequestReceived"},
    ).start()
    try:
        event = request()
        sequence = asyncio.run(_publish(nats_server.url, event))
        exited_after_commit(crashing, tmp_path / "first" / "verification.log")
    finally:
        crashing.kill()

    # Dead after the commit: the verification and the position are in the store...
    events_after_crash, recorded = stored(backend, event.case_id, sequence)
    assert events_after_crash >= 1 and recorded
    # ...and before the ack: the durable has not acknowledged the message.
    info = durable_info(nats_server.url)
    assert info.delivered.stream_seq >= sequence
    assert info.ack_floor.stream_seq < sequence
    assert info.num_ack_pending + info.num_pending == 1

    restarted = ServiceProcess("verification", nats_server.url, tmp_path / "second", env=env)
    try:
        restarted.start()
        report = skipped_after_restart(restarted, 1)
        # The redelivery was recognised by its recorded position, not handled again.
        assert report["duplicates_skipped"] == 1
        assert report["consumed"] == 0
        info = durable_info(nats_server.url)
        assert info.ack_floor.stream_seq >= sequence
        assert info.num_ack_pending == 0 and info.num_pending == 0

        verification = wait_for(
            lambda: (
                response.json()
                if (response := httpx.get(f"{restarted.url}/verifications/{event.case_id}", headers=as_staff()))
                .status_code == 200
                else None
            ),
            timeout=15,
            what="the case's verification in the read model",
        )
        assert verification["case_id"] == str(event.case_id)
        listed = httpx.get(f"{restarted.url}/verifications", headers=as_staff()).json()
        assert [v["case_id"] for v in listed].count(str(event.case_id)) == 1
    finally:
        restarted.stop()

    # One verification: the restarted process wrote nothing more for the case.
    assert stored(backend, event.case_id, sequence) == (events_after_crash, True)

