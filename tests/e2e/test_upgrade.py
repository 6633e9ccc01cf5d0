"""An upgrade keeps an older version's events replayable.

tests/fixtures/v1 holds the stores and the JetStream store directory that the
version before request revisions (commit 748112a) wrote while its own simulator
drove eight cases, three of them left part-way (see its README). Today's code
starts on a copy of it, serves every old case, records new events on the old cases
left part-way, and the audit replays the old history. The tests on the upgraded
system run in the order written: the first reads the statuses the old version left.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from audit.compliance import run_checks
from audit.crosscheck import CrossCheckTotals, crosscheck_system
from audit.replay import replay_stream
from audit.settings import AuditSettings
from audit.timeline import case_timelines
from khidma.nats_server import NatsServer
from khidma.run import EmbeddedSystem
from tests.auth import as_caller_of, as_staff
from tests.helpers import stream_messages_sync, survey_token, wait_for

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "v1"
RECORDED: dict[str, Any] = json.loads((FIXTURE / "cases.json").read_text())
CASES = {case["kind"]: case for case in RECORDED["cases"]}
STREAM_EVENTS_OF_THE_OLD_HISTORY = RECORDED["stream_events"]


def copy_of_the_old_data(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    data_dir = tmp_path_factory.mktemp(name) / "data"
    shutil.copytree(FIXTURE, data_dir)
    return data_dir


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedSystem]:
    # Start-up waits for every service's /ready: the read models rebuilt from the old stores.
    with EmbeddedSystem(copy_of_the_old_data(tmp_path_factory, "upgraded"), fixed_ports=False) as system:
        yield system


@pytest.fixture(scope="module")
def old_history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditSettings]:
    """The old stores as they are and the old stream under today's nats-server, no services."""
    data_dir = copy_of_the_old_data(tmp_path_factory, "old-history")
    with NatsServer(data_dir / "nats", log_file=data_dir / "nats-server.log") as nats:
        yield AuditSettings(data_dir=data_dir, nats_url=nats.url)


def get(system: EmbeddedSystem, service: str, path: str) -> dict[str, Any]:
    response = httpx.get(f"{system.services[service].url}{path}", timeout=10, headers=as_staff())
    assert response.status_code == 200, f"{service} {path}: {response.status_code} {response.text[:300]}"
    return response.json()


def test_every_old_case_comes_back_with_its_status_and_rebuilt_views(upgraded: EmbeddedSystem) -> None:
    for kind, case in CASES.items():
        intake = get(upgraded, "intake", f"/cases/{case['case_ref']}")
        assert (intake["case_id"], intake["status"]) == (case["case_id"], case["status"]), kind
        # A revision the old events never named is the first.
        assert intake["revision"] == 1, kind
        committee = get(upgraded, "committee", f"/cases/{case['case_id']}")
        decision = {"approved": "approved", "delivered": "approved", "rejected": "rejected"}.get(case["status"])
        assert committee["decision"] == decision, kind
        assert committee["referral_open"] is False and committee["revision"] == 1, kind
        verification = get(upgraded, "verification", f"/verifications/{case['case_id']}")
        assert verification["revision"] == 1, kind
        if kind == "received-not-verified":
            assert verification["status"] != "confirmed" and verification["outcome"] is None
        else:
            assert verification["status"] == "confirmed", kind
            assert verification["outcome"] == ("ineligible" if kind == "ineligible" else "verified"), kind


def wait_for_events_of(system: EmbeddedSystem, case_id: str, count: int) -> list[dict[str, Any]]:
    messages = wait_for(
        lambda: (
            found
            if len(found := stream_messages_sync(system.admin_nats_url, f"khidma.*.{case_id}.*")) >= count
            else None
        ),
        timeout=20, what=f"{count} events of the old case {case_id} on the stream",
    )
    return [m["event"] for m in messages]


def post(system: EmbeddedSystem, service: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(
        f"{system.services[service].url}{path}", json=body, timeout=10, headers=as_caller_of(body)
    )
    assert response.status_code in (200, 201, 202), f"{service} {path}: {response.status_code} {response.text[:300]}"
    return response.json()


def decide(system: EmbeddedSystem, case_id: str) -> None:
    members = ["chair", "member-2", "member-3"]
    sitting = post(system, "committee", "/sittings", {"association_id": "sidr", "members_present": members})
    sitting_case = f"/sittings/{sitting['sitting_id']}/cases/{case_id}"
    for member in members:
        post(system, "committee", f"{sitting_case}/votes", {"member": member, "vote": "approve"})
    post(system, "committee", f"{sitting_case}/decision", {"decision": "approved", "reasons": ["Meets the criteria"]})


def test_old_open_cases_are_verified_and_decided_by_todays_services(upgraded: EmbeddedSystem) -> None:
    waiting, verified = CASES["received-not-verified"], CASES["verified-not-decided"]
    post(upgraded, "verification", f"/verifications/{waiting['case_id']}/confirmation", {"officer": "officer-2"})
    wait_for(
        lambda: get(upgraded, "committee", f"/cases/{waiting['case_id']}")["verification_outcome"] == "verified",
        timeout=20, what="the committee hearing of the old case's verification",
    )
    for case in (waiting, verified):
        decide(upgraded, case["case_id"])
        wait_for(
            lambda: get(upgraded, "intake", f"/cases/{case['case_ref']}")["status"] == "approved",
            timeout=20, what=f"intake noting the decision on {case['case_ref']}",
        )
    events = wait_for_events_of(upgraded, waiting["case_id"], 3)
    assert [e["event_type"] for e in events] == ["RequestReceived", "DataVerified", "CommitteeDecided"]
    assert events[1]["payload"]["revision"] == 1 and events[1]["causation_id"] == events[0]["event_id"]
    events = wait_for_events_of(upgraded, verified["case_id"], 3)
    assert [e["event_type"] for e in events] == ["RequestReceived", "DataVerified", "CommitteeDecided"]
    assert events[2]["causation_id"] == events[1]["event_id"]


def test_an_old_approved_case_is_still_delivered_and_surveyed_onto_the_stream(upgraded: EmbeddedSystem) -> None:
    case = CASES["approved-not-delivered"]
    post(upgraded, "intake", f"/cases/{case['case_id']}/delivery",
         {"delivered": "One food basket", "delivered_by": "officer-1"})
    token = survey_token(upgraded.surveys_outbox, case["case_id"], timeout=20)
    post(upgraded, "surveys", f"/surveys/{token}/answers",
         {"ratings": {"satisfaction": 5, "recommend": 9}, "comment": None})
    events = wait_for_events_of(upgraded, case["case_id"], 4)
    assert [e["event_type"] for e in events] == [
        "RequestReceived", "DataVerified", "CommitteeDecided", "ServiceDelivered",
    ]
    decided, delivered = events[2:]
    assert delivered["causation_id"] == decided["event_id"]
    # Today's answer is anonymous: published under its own id, not on the case (decision 16).
    answered = wait_for(
        lambda: [
            m["event"] for m in stream_messages_sync(upgraded.admin_nats_url, "khidma.*.*.SurveyAnswered")
            if m["event"]["case_ref"] == "anonymous"
        ],
        timeout=20, what="the anonymous answer on the stream",
    )
    assert answered[0]["causation_id"] is None and answered[0]["case_id"] != case["case_id"]
    assert delivered["correlation_id"] == events[0]["event_id"]
    assert get(upgraded, "intake", f"/cases/{case['case_ref']}")["status"] == "delivered"
    # The old history and today's events agree, store against stream.
    settings = AuditSettings(data_dir=upgraded.data_dir, nats_url=upgraded.admin_nats_url)
    wait_for(lambda: not list(crosscheck_system(settings)), timeout=20, what="the stores and the stream agreeing")


def test_the_audit_replays_the_old_stores_and_stream(old_history: AuditSettings) -> None:
    assert sum(1 for _ in replay_stream(str(old_history.nats_url), idle_timeout=0.5)) == STREAM_EVENTS_OF_THE_OLD_HISTORY
    timelines = {t.case_id: t for t in case_timelines(old_history, stream=True)}
    for kind, case in CASES.items():
        timeline = timelines[case["case_id"]]
        assert timeline.case_ref == case["case_ref"], kind
        sources = {entry.source for entry in timeline.entries}
        assert sources == {"store", "stream"}, kind
    totals = CrossCheckTotals()
    assert list(crosscheck_system(old_history, totals=totals)) == []
    assert totals.store_events == STREAM_EVENTS_OF_THE_OLD_HISTORY and totals.content_not_compared == 0
    found = sorted([e.check, e.case_ref] for e in run_checks(case_timelines(old_history, stream=True)))
    assert found == RECORDED["compliance_exceptions"]

    env = {**os.environ, "KHIDMA_DATA_DIR": str(old_history.data_dir),
           "KHIDMA_NATS_URL": str(old_history.nats_url), "PYTHONPATH": str(ROOT)}

    def audit(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "audit", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)

    verified = audit("verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    for service in ("intake", "verification", "committee", "surveys"):
        assert f"{service}: OK" in verified.stdout
    replayed = audit("replay", "--json")
    assert replayed.returncode == 0, replayed.stderr
    timeline = audit("timeline", CASES["referred"]["case_ref"], "--json")
    assert timeline.returncode == 0, timeline.stderr
    assert [e["event_type"] for e in json.loads(timeline.stdout)["events"] if e["source"] == "stream"] == [
        "RequestReceived", "ReferredToResearcher", "DataVerified", "CommitteeDecided",
        "ServiceDelivered", "SurveyAnswered",
    ]
