"""The four services as separate processes, a real nats-server and real SQLite files."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from khidma.run import EmbeddedSystem
from khidma.simulate import CaseDriver, Endpoints
from tests.helpers import stream_messages_sync, wait_for

pytestmark = pytest.mark.e2e

LIFECYCLES = {
    "approved": [
        "RequestReceived", "DataVerified", "CommitteeDecided", "ServiceDelivered", "SurveyAnswered",
    ],
    "rejected": ["RequestReceived", "DataVerified", "CommitteeDecided", "SurveyAnswered"],
    "referred": [
        "RequestReceived", "ReferredToResearcher", "DataVerified", "CommitteeDecided",
        "ServiceDelivered", "SurveyAnswered",
    ],
}


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedSystem]:
    data_dir = tmp_path_factory.mktemp("khidma")
    with EmbeddedSystem(data_dir, fixed_ports=False) as running:
        yield running


def endpoints_of(system: EmbeddedSystem) -> Endpoints:
    return Endpoints(**{name: process.url for name, process in system.services.items()})


async def drive(system: EmbeddedSystem, kinds: list[str]) -> list[Any]:
    async with httpx.AsyncClient(timeout=30) as client:
        driver = CaseDriver(client, endpoints_of(system), step_timeout=30)
        return list(await asyncio.gather(*(driver.run(kind) for kind in kinds)))


def case_events(system: EmbeddedSystem, case_id: str, count: int) -> list[dict[str, Any]]:
    return wait_for(
        lambda: (
            messages
            if len(messages := stream_messages_sync(str(system.nats_url), f"khidma.*.{case_id}.*")) >= count
            else None
        ),
        timeout=20,
        what=f"{count} events of case {case_id} on the stream",
    )


def test_every_lifecycle_reaches_the_stream_in_order_with_its_causation_chain(system):
    runs = asyncio.run(drive(system, list(LIFECYCLES)))
    for run in runs:
        assert run.error is None, f"{run.kind}: {run.error}"
        expected = LIFECYCLES[run.kind]
        messages = case_events(system, run.case_id, len(expected))
        events = [m["event"] for m in messages]
        assert sorted(e["event_type"] for e in events) == sorted(expected), run.kind
        assert events[0]["event_type"] == "RequestReceived"
        assert events[-1]["event_type"] == "SurveyAnswered"

        received = events[0]
        assert received["causation_id"] is None
        seen: dict[str, dict[str, Any]] = {}
        for message, event in zip(messages, events):
            assert message["subject"] == (
                f"khidma.{event['association_id']}.{run.case_id}.{event['event_type']}"
            )
            assert message["headers"]["Nats-Msg-Id"] == event["event_id"]
            assert event["correlation_id"] == received["event_id"]
            assert event["case_ref"] == run.case_ref
            if event is not received:
                # Every event's cause is already on the stream, earlier.
                assert event["causation_id"] in seen, f"{run.kind}: {event['event_type']}"
            seen[event["event_id"]] = event

        by_type = {e["event_type"]: e for e in events}
        assert by_type["DataVerified"]["causation_id"] == received["event_id"]
        assert by_type["CommitteeDecided"]["causation_id"] == by_type["DataVerified"]["event_id"]
        if "ServiceDelivered" in by_type:
            assert by_type["ServiceDelivered"]["causation_id"] == by_type["CommitteeDecided"]["event_id"]
            assert by_type["SurveyAnswered"]["causation_id"] == by_type["ServiceDelivered"]["event_id"]
        else:
            assert by_type["CommitteeDecided"]["payload"]["decision"] == "rejected"
            assert by_type["SurveyAnswered"]["causation_id"] == by_type["CommitteeDecided"]["event_id"]
        if "ReferredToResearcher" in by_type:
            assert by_type["ReferredToResearcher"]["causation_id"] == received["event_id"]


def test_the_applicant_can_ask_where_the_request_stands(system):
    (run,) = asyncio.run(drive(system, ["approved"]))
    assert run.error is None, run.error
    intake = system.services["intake"].url
    doc = wait_for(
        lambda: (d := httpx.get(f"{intake}/cases/{run.case_ref}").json()).get("status") == "delivered" and d,
        what="the delivered status",
    )
    assert doc["case_id"] == run.case_id
    assert doc["status_label"]["ar"] and doc["status_label"]["en"]


def snapshot(system: EmbeddedSystem) -> dict[str, Any]:
    urls = {name: process.url for name, process in system.services.items()}

    def get(url: str) -> Any:
        response = httpx.get(url, params={"limit": 1000})
        response.raise_for_status()
        return response.json()

    def strip(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(docs, key=lambda d: d["case_id"])

    return {
        "cases": strip(get(f"{urls['intake']}/cases")),
        "pending_verifications": strip(get(f"{urls['verification']}/verifications")),
        "agenda": strip(get(f"{urls['committee']}/agenda")),
        "researcher_queue": strip(get(f"{urls['committee']}/researcher/queue")),
        "surveys": strip(get(f"{urls['surveys']}/surveys")),
    }


def test_read_models_are_rebuilt_from_the_stores_after_being_deleted(system):
    intake = system.services["intake"].url
    # Leave cases in several states: waiting for verification, on the agenda, referred.
    waiting = httpx.post(
        f"{intake}/submissions",
        json={
            "association_id": "sidr", "channel": "letter", "channel_ref": "rebuild-1",
            "service_code": "food-basket",
            "applicant": {"national_id": "1000000008", "name": "Waiting"},
        },
    ).json()
    referred = httpx.post(
        f"{intake}/submissions",
        json={
            "association_id": "sidr", "channel": "letter", "channel_ref": "rebuild-2",
            "service_code": "food-basket",
            "applicant": {"national_id": "1000000008", "name": "Referred"},
        },
    ).json()
    httpx.post(
        f"{intake}/cases/{referred['case_id']}/referral",
        json={"reason": "unclear", "questions": [], "referred_by": "officer-1"},
    ).raise_for_status()
    committee = system.services["committee"].url
    wait_for(
        lambda: any(
            d["case_id"] == referred["case_id"]
            for d in httpx.get(f"{committee}/researcher/queue").json()
        ),
        what="the referral in the researcher queue",
    )
    verification = system.services["verification"].url
    wait_for(
        lambda: httpx.get(f"{verification}/verifications/{waiting['case_id']}").status_code == 200,
        what="the waiting case at verification",
    )
    wait_for(lambda: _all_views_caught_up(system), what="every view to catch up")
    before = snapshot(system)
    assert before["researcher_queue"] and before["pending_verifications"] and before["cases"]

    for process in system.services.values():
        process.stop()
    views = list(Path(system.data_dir).glob("*-views.sqlite*"))
    assert {p.name.split("-views")[0] for p in views} == set(system.services)
    for path in views:
        path.unlink()
    for process in system.services.values():
        process.start()

    wait_for(lambda: _all_views_caught_up(system), what="every view to be rebuilt")
    assert snapshot(system) == before


def _all_views_caught_up(system: EmbeddedSystem) -> bool:
    for process in system.services.values():
        report = httpx.get(f"{process.url}/ready").json()
        if report.get("views_lag") not in (0, None) or report.get("outbox_lag") not in (0, None):
            return False
        if report.get("consumer_pending") not in (0, None):
            return False
    return True
