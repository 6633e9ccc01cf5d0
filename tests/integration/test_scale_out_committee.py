"""Scaling out the committee: two instances share its store, its durable and its clock.

Two committee processes run on one store (the same SQLite file, or one
PostgreSQL schema) with the durable consumer `committee`, and both run the
deadline scanner. Each case is registered once and its verification recorded
once, however the messages were shared out; once the clock moves past the
deadlines, each case is flagged overdue once although both scanners judge it;
and two conflicting decisions on one case, taken through the two instances at
the same moment, record one decision: the other officer is told, in Arabic and
English, that the committee has already decided (409), never a server error.
Votes cast at the same moment through both instances are all kept.

The last two tests make the races certain on the store itself: one instance
loads a case, the other saves it first (a flag, a decision), then the first
saves; it reloads and judges again.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator
from uuid import UUID

import httpx
import pytest
from eventsourcing.persistence import Tracking

from khidma.nats_server import NatsServer
from khidma.processes import ServiceProcess
from services.committee.application import CommitteeApplication
from services.committee.domain import CommitteeCase
from shared.clock import FrozenClock
from shared.errors import Refused
from shared.events import IntegrationEvent
from shared.http import refusal_status
from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs
from shared.store import consumer_tracking_name, process_tracked
from tests.auth import as_caller_of, as_staff
from tests.backends import Backend, backend  # noqa: F401  (the fixture: SQLite and PostgreSQL)
from tests.helpers import stream_messages_sync, wait_for
from tests.integration.test_committee_service import (
    PRESENT,
    data_verified,
    publish,
    request_received,
)
from tests.integration.test_scale_out import metric

pytestmark = pytest.mark.integration

CASES = 10
SIDR_WINDOW_DAYS = 14  # the seeded pack's window


@pytest.fixture
def clock_file(tmp_path: Path) -> Path:
    return tmp_path / "clock-offset"


@pytest.fixture
def committees(
    nats_server: NatsServer, tmp_path: Path, backend: Backend, clock_file: Path  # noqa: F811
) -> Iterator[list[ServiceProcess]]:
    env = {
        **backend.process_env("committee"),
        "KHIDMA_CONSUMER_BATCH": "1",
        "KHIDMA_POLL_INTERVAL_SECONDS": "0.05",
        "KHIDMA_CLOCK_FILE": str(clock_file),
        "KHIDMA_DEADLINE_SCAN_SECONDS": "0.1",
    }
    instances = [
        ServiceProcess("committee", nats_server.url, tmp_path / f"instance-{n}", env=env)
        for n in (1, 2)
    ]
    try:
        for instance in instances:
            instance.start()
        yield instances
    finally:
        for instance in instances:
            instance.stop()


def events_of(app: CommitteeApplication, case_id: UUID) -> list[str]:
    """The names of the case's stored events, in order."""
    return [type(event).__name__ for event in app.events.get(case_id)]


def get_json(url: str) -> Any:
    response = httpx.get(url, timeout=5.0, headers=as_staff())
    response.raise_for_status()
    return response.json()


def post(url: str, body: dict[str, Any]) -> httpx.Response:
    """As the member the body names (a vote, a recusal), or as staff."""
    return httpx.post(url, json=body, timeout=10.0, headers=as_caller_of(body))


def at_once(*calls: tuple[str, dict[str, Any]]) -> list[httpx.Response]:
    """Posts each (url, body) from its own thread, released together."""
    start = threading.Barrier(len(calls))
    responses: list[httpx.Response | None] = [None] * len(calls)

    def send(index: int, url: str, body: dict[str, Any]) -> None:
        start.wait()
        responses[index] = post(url, body)

    threads = [
        threading.Thread(target=send, args=(i, url, body)) for i, (url, body) in enumerate(calls)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(response is not None for response in responses)
    return responses  # type: ignore[return-value]


def test_two_committee_instances_register_flag_and_decide_each_case_once(
    nats_server: NatsServer,
    committees: list[ServiceProcess],
    backend: Backend,  # noqa: F811
    clock_file: Path,
) -> None:
    first, second = committees
    requests = [request_received() for _ in range(CASES)]
    publish(nats_server.url, *requests)
    publish(nats_server.url, *[data_verified(request) for request in requests])

    # Every case reaches both instances' read models (each tails the shared store).
    for instance in committees:
        for request in requests:
            wait_for(
                lambda: get_json(f"{instance.url}/cases/{request.case_id}")[
                    "verification_outcome"
                ]
                == "verified",
                timeout=20,
                what=f"case {request.case_id} verified at {instance.url}",
            )
    handled = [
        sum(
            metric(i.url, "khidma_messages_consumed_total", outcome="handled", event_type=t)
            for t in ("RequestReceived", "DataVerified")
        )
        for i in committees
    ]
    assert sum(handled) == 2 * CASES, handled  # each message handled by one instance
    assert all(count > 0 for count in handled), f"one instance did all the work: {handled}"

    store = backend.open(CommitteeApplication, "committee")
    for request in requests:
        assert events_of(store, request.case_id) == [
            "Registered",
            "RequestRecorded",
            "VerificationRecorded",
        ]

    # Past every deadline: both scanners find every case overdue.
    clock_file.write_text(str((SIDR_WINDOW_DAYS + 1) * 86400))
    for instance in committees:
        wait_for(
            lambda: {d["case_id"] for d in get_json(f"{instance.url}/deadlines?status=overdue")}
            >= {str(r.case_id) for r in requests},
            timeout=20,
            what=f"every case overdue at {instance.url}",
        )
    for request in requests:
        flags = [e for e in events_of(store, request.case_id) if e.startswith("Deadline")]
        assert flags == ["DeadlineOverdue"], (request.case_id, flags)
        assert get_json(f"{second.url}/cases/{request.case_id}")["deadline_flag"] == "overdue"

    # Two sittings vote the opposite ways on every case. The members of a sitting
    # vote at the same moment, through either instance: every vote is recorded.
    sittings: dict[str, str] = {}
    for instance, side in ((first, "approve"), (second, "reject")):
        convened = post(
            f"{instance.url}/sittings", {"association_id": "sidr", "members_present": PRESENT}
        )
        assert convened.status_code == 201, convened.text
        sitting_id = convened.json()["sitting_id"]
        sittings[side] = f"{instance.url}/sittings/{sitting_id}"
        for request in requests:
            votes = at_once(
                *(
                    (
                        f"{committees[n % 2].url}/sittings/{sitting_id}/cases/"
                        f"{request.case_id}/votes",
                        {"member": member, "vote": side},
                    )
                    for n, member in enumerate(PRESENT[:3])
                )
            )
            assert [v.status_code for v in votes] == [201] * 3, [v.text for v in votes]
        recorded = get_json(sittings[side])["cases"]
        assert len(recorded) == CASES
        assert all(len(case["votes"]) == 3 for case in recorded), recorded

    # Each case decided both ways at the same moment, through the two instances.
    winners: dict[str, str] = {}
    for request in requests:
        approval, rejection = at_once(
            (
                f"{sittings['approve']}/cases/{request.case_id}/decision",
                {"decision": "approved", "reasons": ["the need is shown"]},
            ),
            (
                f"{sittings['reject']}/cases/{request.case_id}/decision",
                {"decision": "rejected", "reasons": ["the need is not shown"]},
            ),
        )
        statuses = sorted([approval.status_code, rejection.status_code])
        assert statuses == [202, 409], (approval.text, rejection.text)
        won, lost = (approval, rejection) if approval.status_code == 202 else (rejection, approval)
        refusal = lost.json()
        assert refusal["error"] == "already_decided", refusal
        assert refusal["message"]["en"] and refusal["message"]["ar"], refusal
        winners[str(request.case_id)] = won.json()["decision"]

    decided = wait_for(
        lambda: (
            found
            if len(found := stream_messages_sync(nats_server.url, "khidma.*.*.CommitteeDecided"))
            >= CASES
            else None
        ),
        timeout=20,
        what="a CommitteeDecided per case",
    )
    wait_for(
        lambda: all(get_json(f"{i.url}/ready")["outbox_lag"] == 0 for i in committees),
        timeout=15,
        what="both relays caught up",
    )
    decided = stream_messages_sync(nats_server.url, "khidma.*.*.CommitteeDecided")
    assert sorted(m["event"]["case_id"] for m in decided) == sorted(winners)
    for message in decided:
        event = message["event"]
        assert event["payload"]["decision"] == winners[event["case_id"]]
        assert event["payload"]["within_window"] is False
    for request in requests:
        assert events_of(store, request.case_id).count("Decided") == 1
    for instance in committees:
        assert get_json(f"{instance.url}/ready")["dead_letters"] == 0


# The same races, made certain: one instance loads, the other saves first ---------------


def two_instances(backend: Backend, clock: FrozenClock) -> list[CommitteeApplication]:  # noqa: F811
    packs = load_packs(DEFAULT_POLICIES_DIR)
    return [
        backend.open(CommitteeApplication, "committee", clock=clock, packs=packs)
        for _ in range(2)
    ]


def consume(app: CommitteeApplication, position: int, *events: IntegrationEvent) -> None:
    handlers = {"RequestReceived": app.on_request_received, "DataVerified": app.on_data_verified}
    for offset, event in enumerate(events):
        process_tracked(
            app,
            Tracking(consumer_tracking_name("KHIDMA"), position + offset),
            lambda processing: handlers[event.event_type](event, processing),  # type: ignore[operator]
        )


def test_a_case_the_other_scanner_flags_between_load_and_save_is_flagged_once_without_an_error(
    backend: Backend, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    clock = FrozenClock(datetime.now(timezone.utc))
    first, second = two_instances(backend, clock)
    request = request_received(occurred_at=clock.now())
    consume(first, 1, request, data_verified(request))
    clock.advance(timedelta(days=SIDR_WINDOW_DAYS + 1))

    load = second._find_case

    def load_then_the_other_scanner_flags(case_id: UUID) -> CommitteeCase | None:
        case = load(case_id)
        first.scan_deadlines([case_id])  # flags it the first time, then finds it flagged
        return case

    monkeypatch.setattr(second, "_find_case", load_then_the_other_scanner_flags)
    assert second.scan_deadlines([request.case_id]) == []  # the other one flagged it
    flags = [e for e in events_of(first, request.case_id) if e.startswith("Deadline")]
    assert flags == ["DeadlineOverdue"]


def test_a_decision_the_other_instance_records_between_load_and_save_refuses_this_one(
    backend: Backend, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    clock = FrozenClock(datetime.now(timezone.utc))
    first, second = two_instances(backend, clock)
    request = request_received(occurred_at=clock.now())
    consume(first, 1, request, data_verified(request))
    sittings = {}
    for side in ("approve", "reject"):
        sittings[side] = UUID(
            first.convene(association_id="sidr", members_present=PRESENT)["sitting_id"]
        )
        for member in PRESENT[:3]:
            first.vote(sittings[side], request.case_id, member=member, vote=side)

    load = second._get_case
    raced = []

    def load_then_the_other_instance_decides(case_id: UUID) -> CommitteeCase:
        case = load(case_id)
        if not raced:
            raced.append(case_id)
            first.decide(sittings["approve"], case_id, decision="approved", reasons=["shown"])
        return case

    monkeypatch.setattr(second, "_get_case", load_then_the_other_instance_decides)
    with pytest.raises(Refused) as refused:
        second.decide(sittings["reject"], request.case_id, decision="rejected", reasons=["no"])
    assert refused.value.code == "already_decided" and refusal_status(refused.value) == 409
    assert refused.value.en and refused.value.ar
    assert events_of(first, request.case_id).count("Decided") == 1
    assert first.case_status(request.case_id)["decision"] == "approved"
