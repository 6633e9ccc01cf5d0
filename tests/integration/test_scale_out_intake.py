"""Scaling out intake: two instances share its store and both take submissions.

Two intake processes run on one store (the same SQLite file, or one
PostgreSQL schema). The same submission (same channel, same channel
reference) sent to both at the same moment, as a channel adapter retrying
through a load balancer would, opens one case: one answer opens it (201), the
other says it is a duplicate of it (200), never a server error, and one
RequestReceived reaches the stream.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterator
from uuid import uuid4

import httpx
import pytest

from khidma.nats_server import NatsServer
from khidma.processes import ServiceProcess
from shared.personal import MasterKeys
from tests.auth import as_adapter, as_staff
from tests.backends import Backend, backend  # noqa: F401  (the fixture: SQLite and PostgreSQL)
from tests.helpers import stream_messages_sync, wait_for

pytestmark = pytest.mark.integration

SUBMISSIONS = 10
ADAPTER = as_adapter(["website"], ["sidr"])
STAFF = as_staff()


def submission(n: int) -> dict[str, Any]:
    return {
        "association_id": "sidr",
        "channel": "website",
        "channel_ref": f"form-{n}-{uuid4().hex[:8]}",
        "service_code": "seedlings",
        "applicant": {"national_id": f"10000{n:05d}", "name": "علي", "phone": "0500000000"},
        "fields": {"planting_site": "وادي حنيفة", "seedling_count": 20},
        "documents": [
            {"code": "national_id_card", "number": f"10000{n:05d}", "expires_on": "2030-01-01"}
        ],
        "attestation": {"attested": True, "method": "one_time_code"},
    }


@pytest.fixture
def intakes(
    nats_server: NatsServer, tmp_path: Path, backend: Backend  # noqa: F811
) -> Iterator[list[ServiceProcess]]:
    # One deployment: both instances seal with one master key and one keyring, so
    # that they find an applicant by the same blind index and open each other's data.
    master_key = tmp_path / "master-key.json"
    MasterKeys.ensure(master_key)
    env = {
        **backend.process_env("intake"),
        "KHIDMA_POLL_INTERVAL_SECONDS": "0.05",
        "KHIDMA_MASTER_KEY_FILE": str(master_key),
        "KHIDMA_KEYRING_FILE": str(tmp_path / "subject-keys.sqlite"),
        # PostgreSQL: the test's own keyring schema, dropped with its store.
        "KHIDMA_KEYRING_SCHEMA": f"{backend.prefix}_keys",
    }
    instances = [
        ServiceProcess("intake", nats_server.url, tmp_path / f"instance-{n}", env=env)
        for n in (1, 2)
    ]
    try:
        for instance in instances:
            instance.start()
        yield instances
    finally:
        for instance in instances:
            instance.stop()


def submit_to_both_at_once(
    instances: list[ServiceProcess], body: dict[str, Any]
) -> list[httpx.Response]:
    start = threading.Barrier(len(instances))
    responses: list[httpx.Response | None] = [None] * len(instances)

    def send(index: int, url: str) -> None:
        start.wait()
        responses[index] = httpx.post(
            f"{url}/submissions", json=body, headers=ADAPTER, timeout=10.0
        )

    threads = [
        threading.Thread(target=send, args=(i, instance.url))
        for i, instance in enumerate(instances)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(response is not None for response in responses)
    return responses  # type: ignore[return-value]


def test_the_same_submission_sent_to_two_intake_instances_at_once_opens_one_case(
    nats_server: NatsServer, intakes: list[ServiceProcess]
) -> None:
    cases: dict[str, str] = {}  # channel_ref -> case_id
    for n in range(SUBMISSIONS):
        body = submission(n)
        responses = submit_to_both_at_once(intakes, body)
        assert sorted(r.status_code for r in responses) == [200, 201], [
            (r.status_code, r.text) for r in responses
        ]
        opened, repeated = sorted(responses, key=lambda r: r.status_code, reverse=True)
        assert opened.json()["duplicate"] is False
        assert repeated.json()["duplicate"] is True
        assert repeated.json()["case_id"] == opened.json()["case_id"]
        assert repeated.json()["case_ref"] == opened.json()["case_ref"]
        # The secret code, once: only in the answer that opened the case.
        assert opened.json()["access_code"] and repeated.json()["access_code"] is None
        cases[body["channel_ref"]] = opened.json()["case_id"]

    wait_for(
        lambda: all(httpx.get(f"{i.url}/ready").json()["outbox_lag"] == 0 for i in intakes),
        timeout=15,
        what="both relays caught up",
    )
    received = wait_for(
        lambda: (
            found
            if len(found := stream_messages_sync(nats_server.url, "khidma.*.*.RequestReceived"))
            >= SUBMISSIONS
            else None
        ),
        timeout=15,
        what="a RequestReceived per submission",
    )
    assert {m["event"]["payload"]["channel_ref"]: m["event"]["case_id"] for m in received} == cases
    assert len(received) == SUBMISSIONS
    # Each case has its own reference: the numbering was never taken twice.
    assert len({m["event"]["case_ref"] for m in received}) == SUBMISSIONS
    for instance in intakes:
        for channel_ref, case_id in cases.items():
            wait_for(
                lambda: httpx.get(f"{instance.url}/cases/{case_id}", headers=STAFF).status_code
                == 200,
                timeout=15,
                what="the case in the instance's read model",
            )
