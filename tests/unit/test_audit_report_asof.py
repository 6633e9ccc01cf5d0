"""The board report as of a moment, and the period's exceptions by the event that proves them.

Period: November 2026 (Riyadh days), association `sidr` (14-day window, quorum 3).

| case | what happens | in November |
|---|---|---|
| old | received 20 October, verified; decided on 10 November, past its window | the late decision |
| referral | received 1 November, referred an hour later, verified; the referral stays open | overdue from 16 November |
| late | received 12 November, verified; decided on 5 December, past its window | awaiting the decision |
| after | (added after the period) the referral closed on 2 December, `late` decided on 5 December, a new case on 1 December | none |
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import audit.timeline
from audit.asof import hijri_moment, parse_moment
from audit.compliance import CheckContext
from audit.figures import compute_figures
from audit.report import compliance_exceptions, register_commands, write_report
from audit.timeline import CaseTimeline
from shared.dates import both_calendars
from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs
from tests.unit.test_audit_compliance import CaseHistory

pytestmark = pytest.mark.unit

START, END = date(2026, 11, 1), date(2026, 11, 30)
PERIOD_END = parse_moment("2026-11-30")  # the last instant of 30 November in Riyadh


def utc(month: int, day: int, hour: int = 9) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def packs() -> dict[str, Any]:
    return load_packs(DEFAULT_POLICIES_DIR)


@pytest.fixture(scope="module")
def cases() -> dict[str, CaseHistory]:
    return november_cases()


def november_cases() -> dict[str, CaseHistory]:
    """The histories of the table above (the integration tests write them to stores and a stream)."""
    old = CaseHistory(ref="SDR-1448-000001")
    old.received(utc(10, 20))
    decision = old.decided(utc(11, 10), "rejected", old.verified(utc(10, 21)))
    old.invited(utc(11, 10, 10), decision, "rejected")

    referral = CaseHistory(ref="SDR-1448-000002")
    referral.received(utc(11, 1))
    referred = referral.referred(utc(11, 1, 10))
    referral.verified(utc(11, 2))
    referral.referral_closed(utc(12, 2), referred)  # after the period

    late = CaseHistory(ref="SDR-1448-000003")
    late.received(utc(11, 12))
    decision = late.decided(utc(12, 5), "rejected", late.verified(utc(11, 13)))  # after the period
    late.invited(utc(12, 5, 10), decision, "rejected")

    after = CaseHistory(ref="SDR-1448-000004")
    after.received(utc(12, 1))
    return {"old": old, "referral": referral, "late": late, "after": after}


def history(cases: dict[str, CaseHistory], *, until: datetime | None = None) -> tuple[list[Any], list[CaseTimeline]]:
    """The stream's events in order and the cases' timelines (stores and stream), up to `until` if given."""
    events = sorted((e for case in cases.values() for e in case.published), key=lambda e: e.occurred_at)
    timelines = [case.timeline() for case in cases.values()]
    if until is not None:
        events = [e for e in events if e.occurred_at <= until]
        timelines = [
            CaseTimeline(t.case_id, [e for e in t.entries if e.occurred_at <= until], t.stores_read, t.stream_read)
            for t in timelines
        ]
        timelines = [t for t in timelines if t.entries]
    return events, timelines


def report(cases: dict[str, CaseHistory], packs: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
           as_of: datetime | None, *, until: datetime | None = None):
    """The figures and the exceptions of November as `python -m audit report` computes them."""
    events, timelines = history(cases, until=until)
    monkeypatch.setattr(audit.timeline, "case_timelines", lambda settings, **options: iter(timelines))
    figures = compute_figures(iter(events), start=START, end=END, packs=packs, as_of=as_of)
    exceptions = list(compliance_exceptions("nats://unused", figures, settings=object(),
                                            context=CheckContext(packs=packs)))
    return figures, exceptions


def found(exceptions) -> set[tuple[str, str]]:
    return {(e.check, e.case_ref) for e in exceptions}


def test_the_same_history_as_of_two_moments_gives_the_backlog_and_the_exceptions_of_each(
    cases, packs, monkeypatch
) -> None:
    early, early_exceptions = report(cases, packs, monkeypatch, parse_moment("2026-11-05"))
    assert early.as_of == parse_moment("2026-11-05")
    # On 5 November: `old` (16 days) and `referral` (4 days) await the decision; `late` is not yet received.
    assert early.backlog_total == 2
    assert early.backlog["15-30"]["awaiting_decision"] == 1 and early.backlog["0-7"]["awaiting_decision"] == 1
    assert early.decisions == 0 and early.requests_total == 1
    assert early.events_after_as_of > 0  # November's later events were not yet known
    # The late decision is not taken yet, and the referral is four days old: no exception.
    assert early_exceptions == []

    later, later_exceptions = report(cases, packs, monkeypatch, parse_moment("2026-11-20"))
    # On 20 November: `old` was rejected (closed); `referral` (19 days) and `late` (8 days) await the decision.
    assert later.backlog_total == 2
    assert later.backlog["15-30"]["awaiting_decision"] == 1 and later.backlog["8-14"]["awaiting_decision"] == 1
    assert later.decisions == 1 and later.within_window == 0
    assert found(later_exceptions) == {
        ("decision_after_window", cases["old"].ref), ("referral_never_closed", cases["referral"].ref)}
    overdue = next(e for e in later_exceptions if e.check == "referral_never_closed")
    assert overdue.proven_at == utc(11, 1, 10) + timedelta(days=15)  # the window ran out on 16 November


def test_as_of_the_end_of_the_period_the_report_does_not_change_when_later_events_are_added(
    cases, packs, monkeypatch
) -> None:
    then, then_exceptions = report(cases, packs, monkeypatch, PERIOD_END, until=PERIOD_END)
    now, now_exceptions = report(cases, packs, monkeypatch, PERIOD_END)
    assert now.events_read > then.events_read and now.events_after_period == now.events_read - then.events_read
    ignored = ("events_read", "events_after_period")
    assert {k: v for k, v in now.to_dict().items() if k not in ignored} == \
        {k: v for k, v in then.to_dict().items() if k not in ignored}
    assert [e.to_dict() for e in now_exceptions] == [e.to_dict() for e in then_exceptions]
    # The referral was still open at the end of November (closed on 2 December): an exception
    # of November; `late`'s late decision (5 December) is December's, not November's.
    assert found(now_exceptions) == {
        ("decision_after_window", cases["old"].ref), ("referral_never_closed", cases["referral"].ref)}
    # A moment after the period is the period's end: the same report again.
    beyond, beyond_exceptions = report(cases, packs, monkeypatch, utc(12, 20))
    assert beyond.as_of == PERIOD_END and beyond.to_dict() == now.to_dict()
    assert [e.to_dict() for e in beyond_exceptions] == [e.to_dict() for e in now_exceptions]


def test_a_case_received_before_the_period_and_decided_late_in_it_is_an_exception_of_the_period(
    cases, packs, monkeypatch
) -> None:
    figures, exceptions = report(cases, packs, monkeypatch, PERIOD_END)
    old = cases["old"]
    assert str(old.case_id) not in figures.cohort_case_ids  # received in October
    # The figures count its late decision among November's decisions, and so do the exceptions.
    late_decisions = figures.decisions - figures.within_window
    listed = [e for e in exceptions if e.check == "decision_after_window"]
    assert late_decisions == len(listed) == 1
    assert listed[0].case_ref == old.ref and listed[0].proven_at == utc(11, 10)
    # The October report, as of its end, knows nothing of it yet.
    monkeypatch.setattr(audit.timeline, "case_timelines",
                        lambda settings, **options: iter(history(cases)[1]))
    october = compute_figures(iter(history(cases)[0]), start=date(2026, 10, 1), end=date(2026, 10, 31), packs=packs)
    assert list(compliance_exceptions("nats://unused", october, settings=object(),
                                      context=CheckContext(packs=packs))) == []


@pytest.mark.parametrize("lang", ["ar", "en"])
def test_the_report_states_its_moment_in_both_calendars_and_the_exceptions_rule(
    cases, packs, monkeypatch, tmp_path: Path, lang: str
) -> None:
    moment = parse_moment("2026-11-20")
    figures, exceptions = report(cases, packs, monkeypatch, moment)
    files = write_report(figures, exceptions, out_dir=tmp_path, lang=lang, packs=packs)
    html = files.html.read_text(encoding="utf-8")
    assert f'data-key="as_of" data-value="{moment.isoformat()}"' in html
    assert both_calendars(moment)[lang] in html
    rule = {"ar": "يُنسب الاستثناء إلى الفترة إذا وقع فيها ما يثبته",
            "en": "An exception belongs to the period when what proves it happened in the period"}[lang]
    early = {"ar": "لم تكن الفترة قد انتهت", "en": "The period had not ended at this moment"}[lang]
    assert rule in html and early in html
    import json

    data = json.loads(files.json.read_text(encoding="utf-8"))
    assert data["as_of"] == moment.isoformat()
    assert data["as_of_calendars"]["hijri"] == both_calendars(moment)["hijri"]
    assert {e["proven_at"] for e in data["exceptions"]} == {e.proven_at.isoformat() for e in exceptions}


def test_the_report_command_takes_a_moment_or_a_hijri_day() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    register_commands(parser.add_subparsers(dest="command"))
    period = ["report", "--from", "2026-11-01", "--to", "2026-11-30"]
    assert parser.parse_args(period).as_of is None  # the clock
    assert parser.parse_args([*period, "--as-of", "2026-11-20"]).as_of == parse_moment("2026-11-20")
    assert parser.parse_args([*period, "--as-of", "2026-11-20T12:00:00Z"]).as_of == utc(11, 20, 12)
    hijri = both_calendars(date(2026, 11, 20))["hijri"]
    assert parser.parse_args([*period, "--hijri", hijri]).as_of == hijri_moment(hijri) == parse_moment("2026-11-20")
    for wrong in (["--as-of", "soon"], ["--hijri", "1448-13-40"], ["--as-of", "2026-11-20", "--hijri", hijri]):
        with pytest.raises(SystemExit):
            parser.parse_args([*period, *wrong])


def test_each_exception_says_when_it_was_proven() -> None:
    from audit.compliance import run_checks

    T0 = utc(11, 1)
    unsigned = CaseHistory()
    unsigned.received(T0, {"attested": False})
    decision = unsigned.decided(T0 + timedelta(days=2), "rejected", unsigned.verified(T0 + timedelta(hours=1)))
    unsigned.invited(T0 + timedelta(days=2), decision, "rejected")
    # The committee recorded the file at its receipt (its store); the stream alone sees only the decision.
    proven = {(e.check, e.proven_at) for e in run_checks([unsigned.timeline()])}
    assert proven == {("file_without_declaration", T0)}
    assert {(e.check, e.proven_at) for e in run_checks([unsigned.timeline(stores=False)])} == {
        ("file_without_declaration", T0 + timedelta(days=2))}

    uninvited = CaseHistory()
    uninvited.received(T0)
    decision = uninvited.decided(T0 + timedelta(days=1), "approved", uninvited.verified(T0 + timedelta(hours=1)))
    delivered_at = T0 + timedelta(days=2)
    uninvited.delivered(delivered_at, decision)
    grace = timedelta(minutes=5)
    context = CheckContext(now=delivered_at + timedelta(days=1), grace=grace)
    # No invitation once the grace after the delivery ran out.
    assert [(e.check, e.proven_at) for e in run_checks([uninvited.timeline()], context=context)] == [
        ("no_survey_invitation", delivered_at + grace)]
