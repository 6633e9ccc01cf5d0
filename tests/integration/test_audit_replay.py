"""Replay against real stores and a real nats-server: timelines, cross-check, as-of,
the command line and the HTTP API.

The histories are built with tests.unit.test_audit_compliance.CaseHistory and
written as the services write them: domain events into each service's SQLite
store (eventsourcing recorder, JSON transcoder) and integration events onto the
KHIDMA stream (one subject per event, Nats-Msg-Id = event id).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import timedelta
from itertools import zip_longest
from pathlib import Path
from typing import Iterable
from uuid import uuid4

import nats
import pytest
from eventsourcing.persistence import InfrastructureFactory, StoredEvent
from eventsourcing.utils import Environment
from fastapi.testclient import TestClient

from audit.api import create_app
from audit.asof import states_as_of
from audit.crosscheck import (
    MISSING_FROM_STORE,
    MISSING_FROM_STREAM,
    CrossCheckTotals,
    crosscheck_system,
)
from audit.replay import _transcoder, replay_store, replay_stream
from audit.settings import AuditSettings
from audit.stores import SERVICES, store_env
from audit.timeline import case_timeline, case_timelines, case_timelines_from_stream
from khidma.nats_server import NatsServer
from shared.events import encode_event
from shared.roles import AUDITOR, FRONT_DESK
from shared.store import prepare_postgres_schema
from shared.stream import ensure_stream
from shared.subjects import event_subject
from tests.auth import ASSOCIATIONS, as_role, as_roles
from tests.unit.test_audit_compliance import T0, CaseHistory

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def write_stores(settings: AuditSettings, histories: Iterable[CaseHistory]) -> None:
    """Each service's store, the cases' events interleaved as concurrent cases are."""
    per_service: dict[str, list[StoredEvent]] = {service: [] for service in SERVICES}
    transcoder = _transcoder()
    versions: dict[object, int] = {}
    streams = [history.stored for history in histories]
    for row in zip_longest(*streams):
        for item in row:
            if item is None:
                continue
            versions[item.originator_id] = versions.get(item.originator_id, 0) + 1
            per_service[item.service].append(
                StoredEvent(item.originator_id, versions[item.originator_id], item.topic,
                            transcoder.encode(item.state))
            )
    if settings.store == "sqlite":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    for service, stored in per_service.items():
        env = {**store_env(service, settings), "CREATE_TABLE": "y"}
        if env["PERSISTENCE_MODULE"] == "eventsourcing.postgres":
            prepare_postgres_schema(env)
        factory = InfrastructureFactory.construct(Environment(name=service, env=env))
        recorder = factory.application_recorder()
        for start in range(0, len(stored), 50):  # several transactions, as services write
            recorder.insert_events(stored[start:start + 50])
        factory.close()


async def _publish(nats_url: str, histories: Iterable[CaseHistory]) -> None:
    connection = await nats.connect(nats_url)
    try:
        js = connection.jetstream()
        await ensure_stream(js)
        for row in zip_longest(*(history.published for history in histories)):
            for event in row:
                if event is not None:
                    await js.publish(
                        event_subject(event.association_id, event.case_id, event.event_type),
                        encode_event(event), headers={"Nats-Msg-Id": str(event.event_id)},
                    )
    finally:
        await connection.close()


def publish(nats_url: str, histories: Iterable[CaseHistory]) -> None:
    asyncio.run(_publish(nats_url, list(histories)))


@pytest.fixture
def world(tmp_path: Path, nats_server: NatsServer) -> dict[str, object]:
    """Four clean cases, one with a public event that never reached the stream,
    and one with a stream event its producer's store does not hold."""
    clean = []
    for number in range(1, 5):
        history = CaseHistory(ref=f"SDR-1448-{number:06d}")
        history.clean(outcome="approved" if number % 2 else "rejected", referral=number == 3)
        clean.append(history)
    unpublished = CaseHistory(ref="SDR-1448-000005")
    unpublished.received(T0)
    lost = unpublished.verified(T0 + timedelta(hours=1), publish=False)
    unstored = CaseHistory(ref="SDR-1448-000006")
    unstored.received(T0)
    forged = unstored.verified(T0 + timedelta(hours=1), store=False)
    histories = [*clean, unpublished, unstored]
    settings = AuditSettings(data_dir=tmp_path / "data", nats_url=nats_server.url)
    write_stores(settings, histories)
    publish(nats_server.url, histories)
    return {"settings": settings, "clean": clean, "histories": histories,
            "unpublished": (unpublished, lost), "unstored": (unstored, forged)}


def test_the_stores_and_the_stream_replay_in_full_page_by_page(world: dict) -> None:
    settings: AuditSettings = world["settings"]
    histories: list[CaseHistory] = world["histories"]
    for service in SERVICES:
        expected = sum(1 for h in histories for e in h.stored if e.service == service)
        records = list(replay_store(service, settings, page=7))
        assert len(records) == expected
        assert [r.notification_id for r in records] == sorted(r.notification_id for r in records)
    stream = list(replay_stream(str(settings.nats_url)))
    assert [r.sequence for r in stream] == list(range(1, sum(len(h.published) for h in histories) + 1))
    assert all(r.event is not None for r in stream)


def test_each_cases_timeline_is_rebuilt_across_services(world: dict) -> None:
    settings: AuditSettings = world["settings"]
    histories: list[CaseHistory] = world["histories"]
    timelines = {t.case_id: t for t in case_timelines(settings, stream=True)}
    assert set(timelines) == {str(h.case_id) for h in histories}
    for history in histories:
        timeline = timelines[str(history.case_id)]
        assert timeline.case_ref == history.ref
        in_stores = [e for e in timeline.entries if e.source == "store"]
        on_stream = [e for e in timeline.entries if e.source == "stream"]
        assert len(on_stream) == len(history.published)
        assert len(in_stores) == sum(1 for e in history.stored if not e.topic.split(":")[1].startswith("ChannelRef"))
        assert [e.occurred_at for e in timeline.entries] == sorted(e.occurred_at for e in timeline.entries)
    from_stream = {t.case_id: t for t in case_timelines_from_stream(str(settings.nats_url))}
    assert {k: len(v.entries) for k, v in from_stream.items()} == {
        str(h.case_id): len(h.published) for h in histories
    }
    by_ref = case_timeline(settings, "SDR-1448-000003", stream=True)
    assert by_ref is not None and by_ref.case_id == str(histories[2].case_id)
    assert any(e.name == "CommitteeCase.ReferralClosed" for e in by_ref.entries)


def test_the_crosscheck_reports_each_difference_by_case(world: dict) -> None:
    settings: AuditSettings = world["settings"]
    unpublished, lost = world["unpublished"]
    unstored, forged = world["unstored"]
    totals = CrossCheckTotals()
    differences = list(crosscheck_system(settings, totals=totals))
    assert {(d.kind, d.case_id, d.event_id, d.event_type, d.service) for d in differences} == {
        (MISSING_FROM_STREAM, str(unpublished.case_id), str(lost), "DataVerified", "verification"),
        (MISSING_FROM_STORE, str(unstored.case_id), str(forged), "DataVerified", "verification"),
    }
    assert totals.stream_events == sum(len(h.published) for h in world["histories"])


def test_the_crosscheck_is_silent_when_they_agree(tmp_path: Path, nats_server: NatsServer) -> None:
    histories = [CaseHistory(ref=f"SDR-1448-{n:06d}") for n in range(1, 4)]
    for history in histories:
        history.clean()
    settings = AuditSettings(data_dir=tmp_path / "data", nats_url=nats_server.url)
    write_stores(settings, histories)
    publish(nats_server.url, histories)
    assert list(crosscheck_system(settings)) == []


def test_a_message_on_the_stream_that_is_no_event_breaks_the_agreement(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    history = CaseHistory()
    history.clean()
    settings = AuditSettings(data_dir=tmp_path / "data", nats_url=nats_server.url)
    write_stores(settings, [history])
    publish(nats_server.url, [history])
    assert run_cli(settings, "crosscheck", "--grace-minutes", "0").returncode == 0

    async def garbage() -> None:
        connection = await nats.connect(nats_server.url)
        try:
            subject = event_subject("sidr", uuid4(), "RequestReceived")
            await connection.jetstream().publish(subject, b"not an event")
        finally:
            await connection.close()

    asyncio.run(garbage())
    result = run_cli(settings, "crosscheck", "--grace-minutes", "0")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no readable event" in result.stdout and "agree" not in result.stdout
    assert json.loads(run_cli(settings, "crosscheck", "--json").stdout)["agree"] is False


def test_state_as_of_before_and_after_the_decision(world: dict) -> None:
    settings: AuditSettings = world["settings"]
    first: CaseHistory = world["clean"][0]

    def state(at: object, **sources: bool) -> dict:
        found = [s for s in states_as_of(case_timelines(settings, **sources), at) if s.case_id == str(first.case_id)]
        return found[0].to_dict() if found else {}

    for sources in (dict(stores=True, stream=False), dict(stores=False, stream=True)):
        assert state(T0 - timedelta(minutes=1), **sources) == {}
        before = state(T0 + timedelta(days=2), **sources)
        assert (before["status"], before["decision"]) == ("verified", None)
        after = state(T0 + timedelta(days=3, minutes=1), **sources)
        assert (after["status"], after["decision"], after["delivered"]) == ("approved", "approved", False)


def run_cli(settings: AuditSettings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KHIDMA_DATA_DIR": str(settings.data_dir), "KHIDMA_NATS_URL": str(settings.nats_url),
           "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "audit", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_the_command_line(world: dict) -> None:
    settings: AuditSettings = world["settings"]
    unpublished, lost = world["unpublished"]
    first: CaseHistory = world["clean"][0]

    replay = run_cli(settings, "replay", "--source", "both", "--json")
    assert replay.returncode == 0, replay.stderr
    counts = json.loads(replay.stdout)
    assert counts["stream"]["events"] == sum(len(h.published) for h in world["histories"])
    assert counts["stores"]["committee"]["by_event"]["CommitteeCase.Decided"] == 4

    timeline = run_cli(settings, "timeline", first.ref, "--json")
    assert timeline.returncode == 0, timeline.stderr
    document = json.loads(timeline.stdout)
    assert document["case_id"] == str(first.case_id)
    assert {e["source"] for e in document["events"]} == {"store", "stream"}
    assert all(e["when"]["hijri"] and e["when"]["gregorian"] for e in document["events"])
    human = run_cli(settings, "timeline", str(first.case_id))
    assert "CommitteeDecided" in human.stdout and "هـ" in human.stdout

    asof = run_cli(settings, "asof", "--hijri", "1448-05-23", "--json")  # 3 November 2026
    assert asof.returncode == 0, asof.stderr
    cases = {c["case_ref"]: c for c in json.loads(asof.stdout)["cases"]}
    assert cases[first.ref]["status"] == "verified" and cases[first.ref]["decision"] is None
    assert run_cli(settings, "asof", "2026-11-05").stdout.count("approved") >= 1

    cross = run_cli(settings, "crosscheck", "--json")
    assert cross.returncode == 1
    assert str(lost) in {d["event_id"] for d in json.loads(cross.stdout)["differences"]}

    compliance = run_cli(settings, "compliance", "--json")
    assert compliance.returncode in (0, 1), compliance.stderr
    found = json.loads(compliance.stdout)
    assert {e["case_ref"] for e in found} <= {"SDR-1448-000005", "SDR-1448-000006"}


def test_the_read_only_http_api(world: dict) -> None:
    settings: AuditSettings = world["settings"]
    first: CaseHistory = world["clean"][0]
    client = TestClient(create_app(settings))
    assert client.get("/health").json()["stores"] == list(SERVICES)  # open, as the services'
    # Every other route is the auditor's: no token is 401, another role 403.
    assert client.get("/compliance").status_code == 401
    assert client.get(f"/cases/{first.ref}/timeline").status_code == 401
    assert client.get("/crosscheck", headers=as_role(FRONT_DESK, "sidr")).status_code == 403
    client.headers.update(as_roles({a: [AUDITOR] for a in ASSOCIATIONS}, subject="auditor-1"))
    timeline = client.get(f"/cases/{first.ref}/timeline")
    assert timeline.status_code == 200 and timeline.json()["case_id"] == str(first.case_id)
    assert client.get(f"/cases/{uuid4()}/timeline").status_code == 404
    asof = client.get("/asof", params={"at": (T0 + timedelta(days=2)).isoformat()}).json()
    assert {c["case_ref"]: c["status"] for c in asof["cases"]}[first.ref] == "verified"
    assert asof["as_of"]["hijri"] == "1448-05-23"
    assert client.get("/asof", params={"hijri": "1448-05-23"}).status_code == 200
    cross = client.get("/crosscheck").json()
    assert cross["agree"] is False and len(cross["differences"]) == 2
    compliance = client.get("/compliance").json()
    assert set(compliance["checks"]) >= {"delivered_without_approval", "vote_by_recused_member"}
    assert client.post("/compliance").status_code == 405
    assert client.delete(f"/cases/{first.case_id}/timeline").status_code == 405
    # An auditor of another association sees none of sidr's cases.
    other = as_role(AUDITOR, "elites")
    assert client.get(f"/cases/{first.ref}/timeline", headers=other).status_code == 403
    assert client.get("/compliance", headers=other).json()["exceptions"] == []
    assert client.get("/asof", headers=other).json()["cases"] == []


@pytest.mark.postgres
def test_the_stores_replay_from_postgresql(postgres_available: dict[str, str]) -> None:
    import psycopg

    prefix = f"audit_{uuid4().hex[:8]}_"
    settings = AuditSettings(store="postgres", postgres_host=postgres_available["host"],
                             postgres_port=int(postgres_available["port"]),
                             postgres_dbname=postgres_available["dbname"],
                             postgres_user=postgres_available["user"], postgres_schema_prefix=prefix)
    history = CaseHistory()
    history.clean(referral=True)
    try:
        write_stores(settings, [history])
        timelines = list(case_timelines(settings))
        assert [t.case_id for t in timelines] == [str(history.case_id)]
        assert len(timelines[0].entries) == sum(1 for e in history.stored if "ChannelRef" not in e.topic)
    finally:
        with psycopg.connect(autocommit=True, **postgres_available) as connection:
            for service in SERVICES:
                connection.execute(f'DROP SCHEMA IF EXISTS "{prefix}{service}" CASCADE')


def test_a_progress_bar_when_asked(world: dict, capsys: pytest.CaptureFixture[str]) -> None:
    settings: AuditSettings = world["settings"]
    assert sum(1 for _ in replay_store("committee", settings, progress=True)) > 0
    assert sum(1 for _ in replay_stream(str(settings.nats_url), progress=True)) > 0
    err = capsys.readouterr().err
    assert "committee store" in err and "KHIDMA stream" in err and "100%" in err
    assert sum(1 for _ in replay_store("committee", settings, progress=False)) > 0
    assert capsys.readouterr().err == ""


def test_the_board_report_of_one_association_over_http(world: dict) -> None:
    settings: AuditSettings = world["settings"]
    client = TestClient(create_app(settings))
    period = {"association_id": "sidr", "from": "1448-05-01", "to": "1448-05-30"}
    assert client.get("/report", params=period).status_code == 401
    assert client.get("/report", params=period, headers=as_role(FRONT_DESK, "sidr")).status_code == 403
    # The auditor of another association does not read sidr's report.
    assert client.get("/report", params=period, headers=as_role(AUDITOR, "elites")).status_code == 403
    client.headers.update(as_role(AUDITOR, "sidr"))
    answer = client.get("/report", params={**period, "lang": "en"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["cache-control"] == "no-store"
    assert '<html lang="en"' in answer.text
    arabic = client.get("/report", params=period)
    assert 'dir="rtl"' in arabic.text
    backwards = {**period, "from": "1448-05-30", "to": "1448-05-01"}
    assert client.get("/report", params=backwards).status_code == 422
    assert client.get("/report", params={**period, "from": "not a day"}).status_code == 422
