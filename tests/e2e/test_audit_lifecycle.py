"""The audit on a history the four real services made: a clean run raises no false
alarm, the one decision taken past the window is found, the stores and the stream
agree, and the timelines, as-of states, command line and HTTP API read it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from fastapi.testclient import TestClient

from audit.api import create_app
from audit.asof import states_as_of
from audit.compliance import run_checks
from audit.crosscheck import CrossCheckTotals, crosscheck_system
from audit.replay import replay_stream
from audit.settings import AuditSettings
from audit.timeline import case_timeline, case_timelines
from khidma.run import EmbeddedSystem
from khidma.signin import embedded_staff
from khidma.simulate import CaseDriver, Endpoints, Scenario
from shared.dates import RIYADH
from tests.auth import as_staff
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
# Integration events per case: sidr approved 5, elites ineligible 4, health referred 6,
# textile rejected 4, sidr corrected (received and verified twice) 7, dumat-bees
# approved (late) 5.
EXPECTED_STREAM_EVENTS = 31


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data_dir = tmp_path_factory.mktemp("khidma-audit")
    clock_file = data_dir / "clock-offset"
    environment = {"KHIDMA_CLOCK_FILE": str(clock_file), "KHIDMA_DEADLINE_SCAN_SECONDS": "0.5"}
    with EmbeddedSystem(data_dir, fixed_ports=False, service_env=environment) as system:
        endpoints = Endpoints.from_mapping(system.endpoints())
        committee = endpoints.committee

        async def past_the_window(run: Any) -> None:
            clock_file.write_text(str(15 * 86400))
            await asyncio.to_thread(
                wait_for,
                lambda: any(d["case_id"] == run.case_id for d in
                            httpx.get(f"{committee}/deadlines", params={"status": "overdue"}, headers=as_staff()).json()),
                20, 0.1, "the scheduler to flag the case as overdue",
            )

        async def drive() -> list[Any]:
            async with httpx.AsyncClient(timeout=30) as client:
                staff = embedded_staff(data_dir, endpoints.identity, client)
                driver = CaseDriver(client, endpoints, step_timeout=30, staff=staff)
                runs = list(await asyncio.gather(*(driver.run(s) for s in [
                    Scenario("approved", "sidr", incomplete_first=True),
                    Scenario("ineligible", "elites"),
                    Scenario("referred", "health-coop"),
                    Scenario("rejected", "textile-coop"),
                    Scenario("corrected", "sidr"),
                ])))
                runs.append(await driver.run(Scenario("approved", "dumat-bees", before_decision=past_the_window)))
                return runs

        try:
            runs = asyncio.run(drive())
        finally:
            clock_file.write_text("0")
        for run in runs:
            assert run.error is None, f"{run.kind}: {run.error}"
        settings = AuditSettings(data_dir=data_dir, nats_url=system.admin_nats_url)
        wait_for(
            lambda: sum(1 for _ in replay_stream(system.admin_nats_url, idle_timeout=0.5)) == EXPECTED_STREAM_EVENTS
            and not list(crosscheck_system(settings)),
            timeout=30, what="every event on the stream and the stores agreeing with it",
        )
        yield {"settings": settings, "runs": dict(zip(["sidr", "elites", "health", "textile", "corrected", "late"], runs))}


def test_a_real_history_raises_only_the_late_decision(history: dict[str, Any]) -> None:
    settings: AuditSettings = history["settings"]
    late = history["runs"]["late"]
    exceptions = list(run_checks(case_timelines(settings, stream=True)))
    assert [(e.check, e.case_ref) for e in exceptions] == [("decision_after_window", late.case_ref)]
    timeline = case_timeline(settings, late.case_id, stream=True)
    assert timeline is not None
    decided = {e.event_id for e in timeline.entries if e.event_type == "CommitteeDecided"}
    assert exceptions[0].event_ids == sorted(decided)
    totals = CrossCheckTotals()
    assert list(crosscheck_system(settings, totals=totals)) == []
    # the real services' stored events, translated as their outboxes translate them,
    # agree with the stream field by field
    assert totals.store_events > 0 and totals.content_not_compared == 0
    # and against the policy packs, the same single exception
    from audit.compliance import CheckContext
    from shared.policy_loader import load_packs

    context = CheckContext(packs=load_packs(settings.policies_dir))
    checked = list(run_checks(case_timelines(settings, stream=True), context=context))
    assert [(e.check, e.case_ref) for e in checked] == [("decision_after_window", late.case_ref)]


def test_the_referred_cases_timeline_and_its_state_as_of_moments(history: dict[str, Any]) -> None:
    settings: AuditSettings = history["settings"]
    health = history["runs"]["health"]
    timeline = case_timeline(settings, health.case_ref, stream=True)
    assert timeline is not None and timeline.case_id == health.case_id
    kinds = [(e.service, e.source, e.event_type) for e in timeline.entries]
    for expected in [
        ("intake", "stream", "RequestReceived"), ("intake", "store", "ReferredToResearcher"),
        ("committee", "store", "CommitteeCase.ReferralClosed"), ("verification", "stream", "DataVerified"),
        ("committee", "stream", "CommitteeDecided"), ("intake", "stream", "ServiceDelivered"),
        # The answer is anonymous: its survey's closure is on the case, the answer is not
        # (docs/decisions.md, 16).
        ("surveys", "store", "Survey.Invited"), ("surveys", "store", "Survey.AnsweredAnonymously"),
    ]:
        assert expected in kinds
    closed = next(e for e in timeline.entries if e.name == "CommitteeCase.ReferralClosed")
    # The researcher who signed in (the simulator's), not the body's "researcher-1": the
    # actor is their identity (subject, name, role), the event names their username.
    assert closed.actor["kind"] == "researcher", closed.actor
    assert str(UUID(closed.actor["id"])) == closed.actor["id"]  # the identity's subject
    assert closed.data["researcher"] == "sim-researcher"
    assert closed.caused_by and closed.caused_by["event_type"] == "ReferredToResearcher"
    decision = next(e for e in timeline.entries if e.event_type == "CommitteeDecided")

    def state(at: Any) -> Any:
        return next(s for s in states_as_of(case_timelines(settings), at) if s.case_id == health.case_id)

    before = state(decision.occurred_at - timedelta(microseconds=1))
    assert before.decision is None and before.status == "verified" and before.referral_open is False
    after = state(decision.occurred_at)
    assert after.decision == "approved"


def test_the_corrected_cases_timeline_shows_both_revisions_and_their_verifications(
    history: dict[str, Any],
) -> None:
    settings: AuditSettings = history["settings"]
    corrected = history["runs"]["corrected"]
    timeline = case_timeline(settings, corrected.case_ref, stream=True)
    assert timeline is not None
    on_stream = [e for e in timeline.entries if e.source == "stream"]
    received = [e for e in on_stream if e.event_type == "RequestReceived"]
    verified = [e for e in on_stream if e.event_type == "DataVerified"]
    assert [e.revision for e in received] == [1, 2]
    assert [e.revision for e in verified] == [1, 2]
    # each verification answers its own revision; the decision rests on the second
    assert [e.caused_by["event_id"] for e in verified] == [e.event_id for e in received]
    decision = next(e for e in on_stream if e.event_type == "CommitteeDecided")
    assert decision.caused_by["event_id"] == verified[1].event_id


def test_the_command_line_and_the_api_on_the_real_history(history: dict[str, Any]) -> None:
    settings: AuditSettings = history["settings"]
    textile = history["runs"]["textile"]
    env = {**os.environ, "KHIDMA_DATA_DIR": str(settings.data_dir), "KHIDMA_NATS_URL": str(settings.nats_url),
           "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "audit", "timeline", textile.case_ref, "--json"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["case_ref"] == textile.case_ref and document["association_id"] == "textile-coop"
    assert [e["event_type"] for e in document["events"] if e["source"] == "stream"] == [
        "RequestReceived", "DataVerified", "CommitteeDecided"]
    result = subprocess.run([sys.executable, "-m", "audit", "crosscheck"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "agree" in result.stdout, result.stdout + result.stderr
    client = TestClient(create_app(settings))
    compliance = client.get("/compliance", headers=as_staff()).json()["exceptions"]
    assert [e["check"] for e in compliance] == ["decision_after_window"]


def test_the_export_of_a_real_applicant_holds_their_case_and_no_other(history: dict[str, Any]) -> None:
    from audit.export import subject_export
    from audit.personal import close_keyrings

    settings: AuditSettings = history["settings"]
    textile = history["runs"]["textile"]
    try:
        timeline = case_timeline(settings, textile.case_ref)
        assert timeline is not None
        request = next(e for e in timeline.entries if e.name == "Case.Completed")
        national_id = request.data["applicant"]["national_id"]  # opened with the key file
        export = subject_export(settings, "textile-coop", national_id)
        assert [case.case_ref for case in export.cases] == [textile.case_ref]
        services = {event["service"] for event in export.cases[0].events}
        assert {"intake", "verification", "committee"} <= services
        assert subject_export(settings, "sidr", national_id).cases == []
    finally:
        close_keyrings()


def test_after_an_erasure_the_audit_runs_and_shows_erased(history: dict[str, Any], tmp_path: Path) -> None:
    """Last in this module: it erases the textile applicant's data (crypto-shredding)."""
    from audit.personal import close_keyrings
    from audit.tamper import verify_services
    from shared.personal.keyring import open_keyring

    settings: AuditSettings = history["settings"]
    textile = history["runs"]["textile"]
    keyring = open_keyring(settings)
    try:
        subjects = {r.subject_index for r in keyring.records() if r.association_id == "textile-coop"}
        if not subjects:
            pytest.skip("the services do not seal personal data yet (no subject key in the keyring)")
        for index in subjects:
            keyring.destroy(index, "erasure-e2e")
    finally:
        keyring.close()
    try:
        timeline = case_timeline(settings, textile.case_ref, stream=True)
        assert timeline is not None
        received = [e for e in timeline.entries if e.event_type == "RequestReceived"]
        assert {e.source for e in received} == {"store", "stream"}
        assert all(e.data["applicant"] == {"erased": True, "en": "erased", "ar": "مُحيت"} for e in received)
        assert list(crosscheck_system(settings)) == []
        assert all(result.ok for result in verify_services(settings))
        exceptions = list(run_checks(case_timelines(settings, stream=True)))
        assert [e.check for e in exceptions] == ["decision_after_window"]
    finally:
        close_keyrings()
    today = datetime.now(RIYADH).date()  # the report's days are Riyadh's
    env = {**os.environ, "KHIDMA_DATA_DIR": str(settings.data_dir), "KHIDMA_NATS_URL": str(settings.nats_url),
           "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "audit", "report", "--from", today.replace(day=1).isoformat(),
         "--to", (today.replace(day=1) + timedelta(days=62)).isoformat(), "--out", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    figures = json.loads(next(tmp_path.glob("figures-*.json")).read_text())
    assert figures["erasures"]["by_association"] == {"textile-coop": 1}
