"""Intake as it runs: a contradicted event is dead-lettered at once, the case it names
says it is held (staff and applicant alike), and /ready and /metrics count both, from
the stream and the store, so a restart does not reset them."""

from __future__ import annotations

import re
from uuid import uuid4

import httpx
import pytest

from khidma.processes import ServiceProcess
from shared.events import encode_event
from shared.subjects import dead_letter_subject, event_subject
from tests import builders
from tests.helpers import stream_messages_sync, wait_for
from tests.integration.test_intake_service import ADAPTER, STAFF, SUBMISSION

pytestmark = pytest.mark.integration

HELD_LABEL = {"en": "Held: an operator must look", "ar": "موقوف: يجب أن يراجعه أحد المشغّلين"}


def publish_sync(url: str, subject: str, data: bytes) -> None:
    import asyncio

    import nats

    async def send() -> None:
        connection = await nats.connect(url)
        try:
            await connection.jetstream().publish(subject, data)
        finally:
            await connection.close()

    asyncio.run(send())


def metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    found = re.search(rf'^{name}{{service="intake"}} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else -1.0


def test_a_contradicted_event_holds_its_case_and_the_counts_survive_a_restart(nats_server, tmp_path):
    data = tmp_path / "data"
    process = ServiceProcess("intake", nats_server.url, data).start()
    try:
        case = httpx.post(f"{process.url}/submissions", json=SUBMISSION, headers=ADAPTER).json()
        # A DataVerified filed under this case whose body is about another one.
        stray = builders.data_verified(None, case_id=uuid4(), association_id="sidr", case_ref="x")
        publish_sync(
            nats_server.url,
            event_subject("sidr", case["case_id"], "DataVerified"),
            encode_event(stray),
        )
        staff_view = wait_for(
            lambda: (d := httpx.get(f"{process.url}/cases/{case['case_ref']}", headers=STAFF).json())
            .get("held") and d,
            what="the case held",
        )
        assert staff_view["status_label"] == HELD_LABEL
        assert staff_view["status"] == "received"  # what it was, beneath the hold
        assert "body contradicts its subject" in staff_view["held_by"][0]["reason"]
        applicant = httpx.get(
            f"{process.url}/cases/{case['case_ref']}/status",
            headers={"X-Case-Code": case["access_code"]},
        ).json()
        assert applicant["status_label"] == HELD_LABEL
        held = httpx.get(f"{process.url}/cases", params={"status": "held"}, headers=STAFF).json()
        assert [c["case_ref"] for c in held] == [case["case_ref"]]
        ready = wait_for(lambda: (r := httpx.get(f"{process.url}/ready").json())["held_cases"] == 1 and r)
        assert ready["dead_letters"] == 1
        assert metric(process.url, "khidma_cases_held") == 1
        assert metric(process.url, "khidma_dead_letters_stored") == 1
    finally:
        process.stop()
    (dead,) = stream_messages_sync(nats_server.url, dead_letter_subject("intake"))
    assert dead["event"]["case_id"] == str(stray.case_id)

    process = ServiceProcess("intake", nats_server.url, data).start()
    try:
        ready = httpx.get(f"{process.url}/ready").json()
        assert ready["dead_letters"] == 1 and ready["held_cases"] == 1
    finally:
        process.stop()
