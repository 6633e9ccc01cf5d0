"""The four services as separate processes, a real nats-server and real SQLite files."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from khidma.processes import SERVICES
from khidma.run import EmbeddedSystem
from khidma.signin import embedded_staff
from khidma.simulate import CaseDriver, Endpoints, Scenario, national_id
from tests import builders, personal_data
from tests.auth import as_staff
from tests.helpers import stream_messages_sync, wait_for

pytestmark = pytest.mark.e2e

# The events of each case on the stream. The driver's survey answer is anonymous: it is
# published under its own id, not on the case (docs/decisions.md, 16).
LIFECYCLES = {
    "approved": ["RequestReceived", "DataVerified", "CommitteeDecided", "ServiceDelivered"],
    "rejected": ["RequestReceived", "DataVerified", "CommitteeDecided"],
    "referred": [
        "RequestReceived", "ReferredToResearcher", "DataVerified", "CommitteeDecided",
        "ServiceDelivered",
    ],
}


def anonymous_answers(system: EmbeddedSystem, count: int) -> list[dict[str, Any]]:
    """The anonymous SurveyAnswered on the stream, once there are `count` of them."""
    def answers() -> list[dict[str, Any]] | None:
        messages = stream_messages_sync(system.admin_nats_url, "khidma.*.*.SurveyAnswered")
        found = [m["event"] for m in messages if m["event"]["payload"]["anonymous"]]
        return found if len(found) >= count else None

    return wait_for(answers, timeout=20, what=f"{count} anonymous answers on the stream")


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedSystem]:
    data_dir = tmp_path_factory.mktemp("khidma")
    environment = {
        # The services' clock can be moved by writing an offset into this file.
        "KHIDMA_CLOCK_FILE": str(data_dir / "clock-offset"),
        "KHIDMA_DEADLINE_SCAN_SECONDS": "0.5",
    }
    with EmbeddedSystem(data_dir, fixed_ports=False, service_env=environment) as running:
        yield running


def endpoints_of(system: EmbeddedSystem) -> Endpoints:
    return Endpoints.from_mapping(system.endpoints())


async def drive(system: EmbeddedSystem, scenarios: list[str | Scenario]) -> list[Any]:
    async with httpx.AsyncClient(timeout=30) as client:
        # The staff sign in at the system's own identity service, as the roles they play.
        endpoints = endpoints_of(system)
        staff = embedded_staff(system.data_dir, endpoints.identity, client)
        driver = CaseDriver(client, endpoints, step_timeout=30, staff=staff)
        return list(await asyncio.gather(*(driver.run(s) for s in scenarios)))


def case_events(system: EmbeddedSystem, case_id: str, count: int) -> list[dict[str, Any]]:
    return wait_for(
        lambda: (
            messages
            if len(messages := stream_messages_sync(system.admin_nats_url, f"khidma.*.{case_id}.*")) >= count
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
        assert "surveyed" in run.steps

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
        else:
            assert by_type["CommitteeDecided"]["payload"]["decision"] == "rejected"
        if "ReferredToResearcher" in by_type:
            assert by_type["ReferredToResearcher"]["causation_id"] == received["event_id"]
    # Each applicant's anonymous answer is on the stream, naming no case.
    answers = anonymous_answers(system, len(runs))
    case_ids = {run.case_id for run in runs}
    for answer in answers:
        assert answer["case_id"] not in case_ids and answer["case_ref"] == "anonymous"
        assert answer["causation_id"] is None and answer["correlation_id"] == answer["case_id"]
    assert {"delivered", "rejected"} <= {a["payload"]["stage"] for a in answers}


def test_a_corrected_request_is_verified_again_and_decided_on_its_latest_revision(system):
    (run,) = asyncio.run(drive(system, ["corrected"]))
    assert run.error is None, run.error
    assert "corrected" in run.steps and "verified again" in run.steps
    expected = [
        "RequestReceived", "DataVerified", "RequestReceived", "DataVerified",
        "CommitteeDecided", "ServiceDelivered",
    ]
    events = [m["event"] for m in case_events(system, run.case_id, len(expected))]
    assert [e["event_type"] for e in events] == expected
    first, asked, corrected, verified, decided = events[:5]
    assert [first["payload"]["revision"], corrected["payload"]["revision"]] == [1, 2]
    assert asked["payload"]["outcome"] == "discrepancies" and asked["payload"]["revision"] == 1
    assert asked["payload"]["corrections"]
    assert corrected["payload"]["corrects"] == asked["event_id"]
    assert corrected["causation_id"] is None
    # The request's personal fields are sealed on the stream: opened with the system's keyring.
    keyring = personal_data.keyring_of(system.data_dir)
    try:
        first_opened, corrected_opened = (
            personal_data.opened_payload(e["payload"], keyring) for e in (first, corrected)
        )
    finally:
        keyring.close()
    assert corrected_opened["attestation"]["data_hash"] != first_opened["attestation"]["data_hash"]
    assert corrected["payload"]["personal_key"] and corrected["payload"]["subject_index"]
    assert verified["payload"]["outcome"] == "verified" and verified["payload"]["revision"] == 2
    assert verified["causation_id"] == corrected["event_id"]
    assert decided["causation_id"] == verified["event_id"]
    assert decided["payload"]["decision"] == "approved"
    assert {e["correlation_id"] for e in events} == {first["event_id"]}


def test_the_applicant_can_ask_where_the_request_stands(system):
    (run,) = asyncio.run(drive(system, ["approved"]))
    assert run.error is None, run.error
    intake = system.services["intake"].url
    doc = wait_for(
        lambda: (d := httpx.get(f"{intake}/cases/{run.case_ref}", headers=as_staff()).json()).get("status") == "delivered" and d,
        what="the delivered status",
    )
    assert doc["case_id"] == run.case_id
    assert doc["status_label"]["ar"] and doc["status_label"]["en"]


def snapshot(system: EmbeddedSystem) -> dict[str, Any]:
    urls = {name: process.url for name, process in system.services.items()}

    def get(url: str) -> Any:
        response = httpx.get(url, params={"limit": 1000}, headers=as_staff())
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
    def seedlings_request(reference: str) -> dict[str, Any]:
        return {
            "association_id": "sidr", "channel": "letter", "channel_ref": reference,
            "service_code": "seedlings",
            "applicant": {"national_id": national_id(), "name": "Waiting"},
            "fields": {"planting_site": "Wadi Hanifah", "seedling_count": 10},
            "documents": [{"code": "national_id_card", "expires_on": "2031-01-01"}],
            "attestation": {"attested": True, "method": "paper_scan", "attested_by": "Waiting"},
        }

    waiting = httpx.post(f"{intake}/submissions", json=seedlings_request("rebuild-1"), headers=as_staff()).json()
    referred = httpx.post(f"{intake}/submissions", json=seedlings_request("rebuild-2"), headers=as_staff()).json()
    httpx.post(
        f"{intake}/cases/{referred['case_id']}/referral",
        json={"reason": "unclear", "questions": [], "referred_by": "officer-1"}, headers=as_staff(),
    ).raise_for_status()
    committee = system.services["committee"].url
    wait_for(
        lambda: any(
            d["case_id"] == referred["case_id"]
            for d in httpx.get(f"{committee}/researcher/queue", headers=as_staff()).json()
        ),
        what="the referral in the researcher queue",
    )
    verification = system.services["verification"].url
    wait_for(
        lambda: httpx.get(f"{verification}/verifications/{waiting['case_id']}", headers=as_staff()).status_code == 200,
        what="the waiting case at verification",
    )
    wait_for(lambda: _all_views_caught_up(system), what="every view to catch up")
    before = snapshot(system)
    assert before["researcher_queue"] and before["pending_verifications"] and before["cases"]

    for process in system.services.values():
        process.stop()
    views = list(Path(system.data_dir).glob("*-views.sqlite*"))
    # Every service with read models (identity, the audit API, the web app and the
    # channel adapters keep none).
    assert {p.name.split("-views")[0] for p in views} == set(SERVICES)
    for path in views:
        path.unlink()
    for process in system.services.values():
        process.start()

    wait_for(lambda: _all_views_caught_up(system), what="every view to be rebuilt")
    assert snapshot(system) == before


def _all_views_caught_up(system: EmbeddedSystem) -> bool:
    for process in system.services.values():
        report = httpx.get(f"{process.url}/ready", headers=as_staff()).json()
        if report.get("views_lag") not in (0, None) or report.get("outbox_lag") not in (0, None):
            return False
        if report.get("consumer_pending") not in (0, None):
            return False
        if report.get("invitations_lag") not in (0, None):
            return False
    return True


def test_one_case_per_association_follows_its_own_pack(system):
    """Sidr: completed later; elites: ineligible; health: referred; textile: rejected;
    dumat-bees: decided after the window (the services' clock moved 15 days)."""
    clock_file = Path(system.data_dir) / "clock-offset"
    committee = system.services["committee"].url

    async def past_the_window(run: Any) -> None:
        clock_file.write_text(str(15 * 86400))
        await asyncio.to_thread(
            wait_for,
            lambda: any(
                d["case_id"] == run.case_id
                for d in httpx.get(f"{committee}/deadlines", params={"status": "overdue"}, headers=as_staff()).json()
            ),
            20,
            0.1,
            "the scheduler to flag the case as overdue",
        )

    scenarios = [
        Scenario("approved", "sidr", incomplete_first=True),
        Scenario("ineligible", "elites"),
        Scenario("referred", "health-coop"),
        Scenario("rejected", "textile-coop"),
    ]
    try:
        runs = asyncio.run(drive(system, scenarios))
        (late,) = asyncio.run(
            drive(system, [Scenario("approved", "dumat-bees", before_decision=past_the_window)])
        )
    finally:
        clock_file.write_text("0")
    runs.append(late)
    prefixes = {"sidr": "SDR", "elites": "NKB", "health-coop": "HLT", "textile-coop": "TXT", "dumat-bees": "DMB"}
    for run, association in zip(runs, [*[s.association_id for s in scenarios], "dumat-bees"]):
        assert run.error is None, f"{association} {run.kind}: {run.error}"
        assert run.case_ref.startswith(f"{prefixes[association]}-14"), run.case_ref

    def events_of(run: Any, count: int) -> dict[str, dict[str, Any]]:
        return {m["event"]["event_type"]: m["event"] for m in case_events(system, run.case_id, count)}

    sidr, elites, health, textile = runs[:4]
    completed = events_of(sidr, 4)
    received = completed["RequestReceived"]
    assert received["payload"]["submitted_at"] < received["occurred_at"]  # completed after submission
    keyring = personal_data.keyring_of(system.data_dir)
    try:
        assert personal_data.opened_payload(received["payload"], keyring)["attestation"]["data_hash"]
    finally:
        keyring.close()
    assert "completed later" in sidr.steps

    ineligible = events_of(elites, 3)
    assert ineligible["DataVerified"]["payload"]["outcome"] == "ineligible"
    assert ineligible["DataVerified"]["payload"]["ineligible_rule"]
    assert ineligible["CommitteeDecided"]["payload"]["decision"] == "rejected"

    referred = events_of(health, 5)
    assert referred["ReferredToResearcher"]["association_id"] == "health-coop"
    assert referred["CommitteeDecided"]["payload"]["decision"] == "approved"

    rejected = events_of(textile, 3)
    assert rejected["CommitteeDecided"]["payload"]["decision"] == "rejected"
    assert "SurveyAnswered" not in rejected  # anonymous: not on the case
    assert any(
        a["association_id"] == "textile-coop" and a["payload"]["stage"] == "rejected"
        for a in anonymous_answers(system, 1)
    )

    for run in (sidr, health, textile):
        decided = events_of(run, 3)["CommitteeDecided"]["payload"]
        assert decided["within_window"] is True and decided["window_days"] == 14
        assert len(decided["members_present"]) >= decided["quorum"] == 3
    overdue = events_of(late, 4)["CommitteeDecided"]["payload"]
    assert overdue["within_window"] is False
    assert overdue["decision"] == "approved"
