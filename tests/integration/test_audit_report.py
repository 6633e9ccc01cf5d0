"""The board report from a real KHIDMA stream, through `python -m audit report`; the benchmark's smoke run."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import date
from pathlib import Path

import nats
import pytest

from audit.bench import Item, publish_history, run_bench
from audit.cli import main as audit_main
from audit.report import stream_events
from shared.events import encode_event
from shared.subjects import event_subject
from tests.unit.test_audit_report_history import END, EXPECTED, START, known_cases, known_history
from tests.unit.test_audit_roles import identity_store

pytestmark = pytest.mark.integration


def items(events) -> list[Item]:
    return [
        Item(event_subject(e.association_id, e.case_id, e.event_type), str(e.event_id), encode_event(e))
        for e in events
    ]


def publish(url: str, events) -> int:
    return asyncio.run(publish_history(url, items(events)))


async def _publish_raw(url: str, subject: str, data: bytes) -> None:
    connection = await nats.connect(url)
    try:
        await connection.jetstream().publish(subject, data)
    finally:
        await connection.close()


def test_report_command_from_the_stream(nats_server, tmp_path: Path, monkeypatch) -> None:
    history = known_history()
    assert publish(nats_server.url, history) == len(history)
    monkeypatch.setenv("KHIDMA_DATA_DIR", str(tmp_path / "no-stores"))
    out = tmp_path / "report"
    code = audit_main([
        "--nats-url", nats_server.url, "report", "--from", START.isoformat(), "--to", END.isoformat(),
        "--lang", "en", "--out", str(out), "--api-base", "https://audit.example.org", "--no-progress",
    ])
    assert code == 0
    data = json.loads((out / f"figures-{START}_{END}.json").read_text(encoding="utf-8"))
    assert data["events_read"] == len(history)
    assert data["requests"]["total"] == EXPECTED["requests_total"]
    assert data["requests"]["by_channel"] == EXPECTED["by_channel"]
    assert data["funnel"] == EXPECTED["funnel"]
    assert data["backlog"]["total"] == EXPECTED["backlog_total"]
    assert data["time_to_decision"]["slowest"][0]["case_ref"] == "SDR-1448-c3"

    # The compliance checks ran over the case timelines from the stream: c3's late
    # decision is an exception, the decisions within the window are not.
    c3 = next(case for case in known_cases() if case.ref.endswith("c3"))
    # The history is otherwise clean: no other exception (no false alarm).
    assert [(e["check"], e["case_ref"]) for e in data["exceptions"]] == [("decision_after_window", c3.ref)]
    assert data["exceptions_total"] == 1
    late = data["exceptions"]
    decision_id = str(next(e.event_id for e in c3.events if e.event_type == "CommitteeDecided"))
    assert decision_id in late[0]["event_ids"]
    # c0 (received in October) and c9 (December) are outside the period: none of theirs listed
    assert not {e["case_ref"] for e in data["exceptions"]} & {"SDR-1448-c0", "SDR-1448-c9"}

    html = (out / f"report-{START}_{END}-en.html").read_text(encoding="utf-8")
    assert f'href="https://audit.example.org/cases/{c3.case_id}/timeline"' in html
    assert f'id="case-{c3.case_id}"' in html
    assert html.count("<svg") >= 8
    csv_files = sorted(p.name for p in out.glob("*.csv"))
    assert f"requests_by_channel-{START}_{END}.csv" in csv_files
    assert f"policy_versions-{START}_{END}.csv" in csv_files
    assert len(csv_files) == 13  # with erasures and the policy versions


def test_report_command_needs_the_stream(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("KHIDMA_NATS_URL", raising=False)
    code = audit_main(["report", "--from", "2026-11-01", "--to", "2026-11-30", "--out", str(tmp_path)])
    assert code == 2
    assert "KHIDMA_NATS_URL" in capsys.readouterr().err


def test_stream_reader_skips_poison_keeps_order_and_never_drops(nats_server) -> None:
    history = known_history()
    publish(nats_server.url, history[:10])
    asyncio.run(_publish_raw(nats_server.url, "khidma.sidr.not-a-case.RequestReceived", b"{not json"))
    many = [e for case_number in range(600) for e in _copy_case(case_number)]
    publish(nats_server.url, history[10:] + many)
    errors: list[tuple[str, int]] = []
    read = []
    for number, event in enumerate(stream_events(nats_server.url, on_error=lambda s, q, e: errors.append((s, q)))):
        if number == 5:
            time.sleep(0.3)  # a slow reader: the pull consumer just waits, nothing is dropped
        read.append(str(event.event_id))
    assert errors == [("khidma.sidr.not-a-case.RequestReceived", 11)]
    assert read == [str(e.event_id) for e in history + many]


def _copy_case(number: int):
    from tests.unit.test_audit_report_history import CaseBuilder, nov

    return CaseBuilder(f"bulk-{number}").received(nov(2), "phone", "seedlings").verified(nov(3)) \
        .decided(nov(5), "approved").delivered(nov(6)).surveyed(nov(7), 4).events


def test_benchmark_smoke(tmp_path: Path, monkeypatch) -> None:
    import audit.compliance
    from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs

    packs_seen: list[set[str]] = []
    run_checks = audit.compliance.run_checks

    def watched(timelines, checks=None, *, context=None):
        packs_seen.append(set(context.packs) if context else set())
        return run_checks(timelines, checks, context=context)

    monkeypatch.setattr(audit.compliance, "run_checks", watched)
    result = run_bench(3000, compliance=True, progress=False, out_dir=tmp_path / "results", work_dir=tmp_path)
    assert result["publish"]["events"] == 3000
    assert result["replay"]["events"] == 3000  # every published event read back and decoded
    assert result["report"]["events_read"] == 3000
    assert result["replay"]["events_per_second"] > 0 and result["peak_rss_mib"] > 0
    assert result["report"]["exceptions"] is not None
    # The checks ran against the policy packs, as the board's report runs them: only
    # the checks that need a store (there are none here) were not run.
    assert packs_seen and all(seen == set(load_packs(DEFAULT_POLICIES_DIR)) for seen in packs_seen)
    assert result["report"]["checks_not_run"] == [
        "referral_never_closed", "no_survey_invitation", "acted_without_role", "held_by_dead_letter"]
    assert result["report"]["exceptions_by_check"].get("decision_after_window", 0) > 0
    written = json.loads(Path(result["written"]).read_text())
    assert written["replay"] == result["replay"]


# --- a password-protected server, and the stores beside the stream ------------------------


@pytest.fixture
def secured(tmp_path: Path):
    import secrets

    from khidma.nats_server import SERVICE_USERS, secured_nats_server

    passwords = {user: "k" + secrets.token_urlsafe(16) for user in (*SERVICE_USERS, "admin")}
    server = secured_nats_server(tmp_path / "nats-secured", passwords).start()
    try:
        yield server, passwords["admin"]
    finally:
        server.stop()


async def _publish_as_admin(url: str, password: str, events) -> None:
    from shared.stream import ensure_stream

    connection = await nats.connect(url, user="admin", password=password, allow_reconnect=False)
    try:
        js = connection.jetstream()
        await ensure_stream(js)
        for event in events:
            await js.publish(event_subject(event.association_id, event.case_id, event.event_type),
                             encode_event(event), headers={"Nats-Msg-Id": str(event.event_id)})
    finally:
        await connection.close()


def test_report_reads_a_password_protected_stream_through_the_compliance_phase(
    secured, tmp_path: Path, monkeypatch, capsys
) -> None:
    server, password = secured
    history = known_history()
    asyncio.run(_publish_as_admin(server.url, password, history))
    monkeypatch.setenv("KHIDMA_DATA_DIR", str(tmp_path / "no-stores"))
    monkeypatch.setenv("KHIDMA_NATS_USER", "admin")
    monkeypatch.setenv("KHIDMA_NATS_PASSWORD", password)
    out = tmp_path / "report"
    code = audit_main(["--nats-url", server.url, "report", "--from", START.isoformat(), "--to", END.isoformat(),
                       "--lang", "en", "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    data = json.loads((out / f"figures-{START}_{END}.json").read_text(encoding="utf-8"))
    assert data["events_read"] == len(history)
    assert [e["check"] for e in data["exceptions"]] == ["decision_after_window"]  # the checks read the stream


def test_a_refused_password_fails_at_once_with_a_clear_message(secured, tmp_path: Path, monkeypatch, capsys) -> None:
    server, _ = secured
    monkeypatch.setenv("KHIDMA_DATA_DIR", str(tmp_path / "no-stores"))
    monkeypatch.setenv("KHIDMA_NATS_USER", "admin")
    monkeypatch.setenv("KHIDMA_NATS_PASSWORD", "wrong")
    for argv in (["report", "--from", START.isoformat(), "--to", END.isoformat(), "--out", str(tmp_path / "r")],
                 ["replay", "--source", "stream"], ["compliance", "--source", "stream"]):
        code = audit_main(["--nats-url", server.url, *argv, "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2, argv
        assert "cannot read the KHIDMA stream" in err and "Authorization Violation" in err
        assert "KHIDMA_NATS_PASSWORD" in err and "تعذّرت قراءة تدفق KHIDMA" in err


def test_the_report_reads_the_stores_too_so_every_check_runs(nats_server, tmp_path: Path, monkeypatch) -> None:
    from audit.settings import AuditSettings
    from tests.integration.test_audit_compliance import VIOLATIONS
    from tests.integration.test_audit_replay import publish as publish_histories
    from tests.integration.test_audit_replay import write_stores
    from tests.unit.test_audit_compliance import CaseHistory

    histories, expected = [], set()
    for number, (code, build) in enumerate(VIOLATIONS.items(), start=1):
        history = CaseHistory(ref=f"SDR-1448-{number:06d}")
        build(history)
        histories.append(history)
        expected.add((code, history.ref))
    clean = CaseHistory(ref="SDR-1448-000100")
    clean.clean(referral=True)
    settings = AuditSettings(data_dir=tmp_path / "data", nats_url=nats_server.url)
    write_stores(settings, [*histories, clean])
    identity_store(settings)  # who held which role when: every check runs
    publish_histories(nats_server.url, [*histories, clean])
    monkeypatch.setenv("KHIDMA_DATA_DIR", str(settings.data_dir))
    out = tmp_path / "report"
    for lang in ("en", "ar"):
        assert audit_main(["--nats-url", nats_server.url, "report", "--from", "2026-11-01", "--to", "2026-11-30",
                           "--lang", lang, "--out", str(out), "--no-progress"]) == 0
    data = json.loads((out / "figures-2026-11-01_2026-11-30.json").read_text(encoding="utf-8"))
    found = {(e["check"], e["case_ref"]) for e in data["exceptions"]}
    # the closure of a referral and the survey invitation are only in the stores
    assert ("referral_never_closed", "SDR-1448-000005") in found
    assert ("no_survey_invitation", "SDR-1448-000006") in found
    assert found == expected
    assert data["checks_not_run"] == []
    html = (out / "report-2026-11-01_2026-11-30-en.html").read_text(encoding="utf-8")
    assert "These checks were not run" not in html
    assert "127.0.0.1:8107" not in html  # no --api-base: the timelines are in the file
    for history in histories:
        assert f'<details id="case-{history.case_id}"' in html


def test_a_report_without_the_stores_names_the_checks_it_could_not_run(nats_server, tmp_path: Path, monkeypatch) -> None:
    publish(nats_server.url, known_history())
    monkeypatch.setenv("KHIDMA_DATA_DIR", str(tmp_path / "no-stores"))
    out = tmp_path / "report"
    for lang in ("en", "ar"):
        assert audit_main(["--nats-url", nats_server.url, "report", "--from", START.isoformat(), "--to",
                           END.isoformat(), "--lang", lang, "--out", str(out), "--no-progress"]) == 0
    data = json.loads((out / f"figures-{START}_{END}.json").read_text(encoding="utf-8"))
    assert data["checks_not_run"] == ["referral_never_closed", "no_survey_invitation", "acted_without_role",
                                      "held_by_dead_letter"]
    english = (out / f"report-{START}_{END}-en.html").read_text(encoding="utf-8")
    arabic = (out / f"report-{START}_{END}-ar.html").read_text(encoding="utf-8")
    assert "These checks were not run" in english and "لم تُجرَ هذه الفحوص" in arabic


def test_the_report_command_as_of_two_moments_and_of_the_end_of_the_period(
    nats_server, tmp_path: Path, monkeypatch, capsys
) -> None:
    from audit.asof import parse_moment
    from audit.settings import AuditSettings
    from shared.dates import both_calendars
    from tests.integration.test_audit_replay import publish as publish_histories
    from tests.integration.test_audit_replay import write_stores
    from tests.unit.test_audit_report_asof import november_cases

    cases = november_cases()
    settings = AuditSettings(data_dir=tmp_path / "data", nats_url=nats_server.url)
    write_stores(settings, list(cases.values()))
    identity_store(settings)
    publish_histories(nats_server.url, list(cases.values()))  # December's events too
    monkeypatch.setenv("KHIDMA_DATA_DIR", str(settings.data_dir))

    def report(*moment: str) -> dict:
        out = tmp_path / ("report-" + "-".join(moment))
        code = audit_main(["--nats-url", nats_server.url, "report", "--from", "2026-11-01", "--to", "2026-11-30",
                           "--lang", "en", "--out", str(out), "--no-progress", *moment])
        assert code == 0, capsys.readouterr().err
        return json.loads((out / "figures-2026-11-01_2026-11-30.json").read_text(encoding="utf-8"))

    def found(data: dict) -> set[tuple[str, str]]:
        return {(e["check"], e["case_ref"]) for e in data["exceptions"]}

    early = report("--as-of", "2026-11-05")
    assert early["as_of"] == parse_moment("2026-11-05").isoformat()
    assert early["backlog"]["total"] == 2 and early["backlog"]["by_age"]["15-30"]["awaiting_decision"] == 1
    assert found(early) == set() and early["checks_not_run"] == []
    later = report("--hijri", both_calendars(parse_moment("2026-11-20"))["hijri"])
    assert later["as_of"] == parse_moment("2026-11-20").isoformat()
    assert later["backlog"]["by_age"]["8-14"]["awaiting_decision"] == 1
    november = {("decision_after_window", cases["old"].ref), ("referral_never_closed", cases["referral"].ref)}
    assert found(later) == november
    # As of the end of November, December's closure of the referral and late decision change nothing.
    end = report("--as-of", "2026-11-30")
    assert found(end) == november and end["events_after_period"] > 0

    code = audit_main(["--nats-url", nats_server.url, "report", "--from", "2026-11-01", "--to", "2026-11-30",
                       "--out", str(tmp_path / "early"), "--no-progress", "--as-of", "2026-10-30"])
    assert code == 2 and "before the period starts" in capsys.readouterr().err


def test_one_read_of_the_stream_gives_the_figures_and_exceptions_of_two(nats_server) -> None:
    """`figures_and_exceptions` (the report's pass with the checks) against the figures
    of their own pass and `compliance_exceptions` of another: the same, to the byte."""
    from audit.bench import HistoryGenerator
    from audit.compliance import CheckContext
    from audit.figures import compute_figures
    from audit.report import compliance_exceptions, figures_and_exceptions, report_json
    from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs

    packs = load_packs(DEFAULT_POLICIES_DIR)
    asyncio.run(publish_history(nats_server.url, HistoryGenerator(2500, days=60)))
    # The generator's history starts on 2025-12-01; the period ends while cases are open.
    period = {"start": date(2025, 12, 1), "end": date(2026, 1, 15), "packs": packs}
    context = CheckContext(packs=packs)
    figures, found = figures_and_exceptions(nats_server.url, **period, context=context)
    exceptions = list(found)
    apart = compute_figures(stream_events(nats_server.url), **period)
    assert json.dumps(figures.to_dict()) == json.dumps(apart.to_dict())
    assert figures.events_read == 2500 and figures.decisions > 0
    twice = list(compliance_exceptions(nats_server.url, apart, context=context))
    assert exceptions and [vars(e) for e in exceptions] == [vars(e) for e in twice]
    assert json.dumps(report_json(figures, None, lang="en"), default=str) == json.dumps(
        report_json(apart, None, lang="en"), default=str
    )
