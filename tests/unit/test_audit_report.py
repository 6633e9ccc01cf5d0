"""The board report: figures on a history with known numbers, the HTML, the CSV and the JSON."""

from __future__ import annotations

import csv
import json
import re
from datetime import date, datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest

from audit import charts
from audit.compliance import ComplianceException
from audit.figures import Figures, _suppressed_groups, compute_figures, time_bucket
from audit.report import parse_day, register_commands, write_report
from shared.dates import both_calendars
from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs
from tests.unit.test_audit_report_history import (
    END,
    EXPECTED,
    START,
    CaseBuilder,
    generated,
    known_cases,
    known_history,
    nov,
)

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def packs():
    return load_packs(DEFAULT_POLICIES_DIR)


@pytest.fixture(scope="module")
def figures(packs) -> Figures:
    return compute_figures(generated(known_history()), start=START, end=END, packs=packs)


def c3_exception() -> ComplianceException:
    c3 = next(case for case in known_cases() if case.ref.endswith("c3"))
    return ComplianceException(
        check="decision_after_window", case_id=str(c3.case_id), case_ref=c3.ref, association_id="sidr",
        message={"ar": "صدر القرار بعد انقضاء المهلة", "en": "The decision came after the window"},
        event_ids=[str(c3.events[0].event_id), str(c3.events[2].event_id)],
    )


# --- the figures --------------------------------------------------------------------


def test_requests_by_channel_and_service(figures: Figures) -> None:
    assert figures.requests_total == EXPECTED["requests_total"]
    assert figures.requests_by_channel == EXPECTED["by_channel"]
    assert figures.requests_by_service == EXPECTED["by_service"]
    assert figures.associations == ["sidr"]


def test_funnel_outcomes_and_rates(figures: Figures) -> None:
    assert figures.funnel == EXPECTED["funnel"]
    assert figures.verification_outcomes == EXPECTED["outcomes"]
    assert figures.referred == EXPECTED["referred"]
    assert figures.referral_rate == pytest.approx(1 / 7)
    assert (figures.decisions, figures.approved, figures.rejected) == (6, 4, 2)
    assert figures.approval_rate == pytest.approx(4 / 6)


def test_time_to_decision_against_the_window(figures: Figures) -> None:
    assert figures.within_window == EXPECTED["within_window"]
    assert figures.share_within_window == pytest.approx(5 / 6)
    assert figures.median_days_to_decision == EXPECTED["median_days"]
    slowest = figures.slowest[0]
    assert (slowest.case_ref, slowest.days) == EXPECTED["slowest_first"]
    assert slowest.within_window is False and slowest.window_days == 14
    assert [s.days for s in figures.slowest] == sorted((s.days for s in figures.slowest), reverse=True)


def test_backlog_as_of_the_end_ignores_later_events(figures: Figures) -> None:
    # c0's decision on 5 December is after the period: at its end c0 still awaited it.
    assert figures.events_after_period == EXPECTED["events_after_period"]
    assert figures.backlog_total == EXPECTED["backlog_total"]
    for bucket, stages in EXPECTED["backlog"].items():
        for stage, count in stages.items():
            assert figures.backlog[bucket][stage] == count
    assert sum(sum(stages.values()) for stages in figures.backlog.values()) == 2


def test_satisfaction_groups_under_five_are_suppressed(figures: Figures) -> None:
    by_service = {g.key: g for g in figures.satisfaction_by_service}
    assert by_service["seedlings"].answers == 5 and not by_service["seedlings"].suppressed
    assert by_service["seedlings"].mean == pytest.approx((5 + 4 + 3 + 2 + 4) / 5)
    assert by_service["volunteering"].suppressed
    assert by_service["volunteering"].answers is None and by_service["volunteering"].mean is None
    by_channel = {g.key: g for g in figures.satisfaction_by_channel}
    # phone has 4 answers, website 2: both under five, neither count nor mean is shown
    assert by_channel["phone"].suppressed and by_channel["phone"].answers is None
    assert by_channel["website"].suppressed


def test_a_clean_quiet_period_has_no_figures(packs) -> None:
    quiet = compute_figures(generated(known_history()), start=date(2026, 9, 1), end=date(2026, 9, 30), packs=packs)
    assert quiet.requests_total == 0 and quiet.decisions == 0 and quiet.backlog_total == 0
    assert quiet.referral_rate is None and quiet.approval_rate is None and quiet.median_days_to_decision is None
    assert quiet.satisfaction_by_service == []


def test_weekly_trend_and_the_riyadh_day() -> None:
    # 22:00 UTC on 30 November is already 1 December in Riyadh
    assert time_bucket(datetime(2026, 11, 30, 22, tzinfo=timezone.utc), "month") == "2026-12"
    assert time_bucket(nov(2), "week") == "2026-W45"
    events = [e for case in known_cases() for e in case.events]
    weekly = compute_figures(sorted(events, key=lambda e: e.occurred_at), start=START, end=END, granularity="week")
    assert {g.bucket for g in weekly.satisfaction_by_service} >= {"2026-W45", "2026-W46"}
    assert all(g.suppressed for g in weekly.satisfaction_by_service)  # no week has five answers


def test_slowest_keeps_only_ten() -> None:
    cases = []
    for number in range(15):
        case = CaseBuilder(f"s{number}").received(nov(1), "phone", "seedlings").verified(nov(2))
        case.decided(nov(3 + number), "approved", within=number < 13)
        cases.extend(case.events)
    figures = compute_figures(sorted(cases, key=lambda e: e.occurred_at), start=START, end=END)
    assert len(figures.slowest) == 10
    assert [round(s.days) for s in figures.slowest] == list(range(16, 6, -1))
    assert figures.within_window == 13


def test_parse_day_reads_both_calendars() -> None:
    assert parse_day("2026-11-21") == date(2026, 11, 21)
    hijri = both_calendars(date(2026, 11, 21))["hijri"]
    assert parse_day(hijri) == date(2026, 11, 21)


# --- the files ------------------------------------------------------------------------


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.keys: dict[str, str] = {}
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if "data-key" in attributes:
            self.keys[attributes["data-key"] or ""] = attributes.get("data-value") or ""

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(path: Path) -> _Collector:
    collector = _Collector()
    collector.feed(path.read_text(encoding="utf-8"))
    collector.close()
    return collector


@pytest.fixture(scope="module")
def written(tmp_path_factory, figures, packs):
    out = tmp_path_factory.mktemp("report")
    at = datetime(2026, 12, 1, 8, tzinfo=timezone.utc)
    return {
        lang: write_report(figures, [c3_exception()], out_dir=out, lang=lang, period=(START, END), packs=packs,
                           api_base="https://audit.example.org/api", generated_at=at)
        for lang in ("ar", "en")
    }


def test_arabic_by_default_right_to_left_and_english_on_request(figures, packs, tmp_path) -> None:
    default = write_report(figures, [], out_dir=tmp_path, period=(START, END), packs=packs)
    head = default.html.read_text(encoding="utf-8")[:200]
    assert '<html lang="ar" dir="rtl">' in head
    assert "-ar.html" in default.html.name
    english = write_report(figures, [], out_dir=tmp_path, lang="en", packs=packs).html.read_text(encoding="utf-8")
    assert '<html lang="en" dir="ltr">' in english[:200]
    assert "Board report" in english and "No exception was found." in english


def test_html_is_self_contained_with_svg_charts_and_print_css(written) -> None:
    for files in written.values():
        html = files.html.read_text(encoding="utf-8")
        page = parse(files.html)
        tags = [tag for tag, _ in page.tags]
        assert tags.count("svg") >= 8  # channels, services, funnel, outcomes, days, backlog, 2 trends
        assert "polyline" in tags or "circle" in tags  # the trend line
        # no external resource: no script, stylesheet link, image, frame, font or import
        assert "script" not in tags and "img" not in tags and "iframe" not in tags and "link" not in tags
        for tag, attributes in page.tags:
            assert not any(
                name in ("src", "srcset", "xlink:href") for name in attributes
            ), (tag, attributes)
            if tag != "a":
                assert "http" not in (attributes.get("href") or "")
        assert "@import" not in html and "url(" not in html and "@font-face" not in html
        assert "@media print" in html


def test_dates_in_both_calendars(written) -> None:
    arabic = written["ar"].html.read_text(encoding="utf-8")
    english = written["en"].html.read_text(encoding="utf-8")
    for day in (START, END, date(2026, 11, 21)):
        assert both_calendars(day)["ar"] in arabic
        assert both_calendars(day)["en"] in english
    assert "هـ" in arabic and "AH" in english


def test_association_names_from_the_packs(written, packs) -> None:
    assert packs["sidr"].name.ar in written["ar"].html.read_text(encoding="utf-8")
    english = written["en"].html.read_text(encoding="utf-8")
    assert packs["sidr"].name.en in english
    assert packs["sidr"].service("seedlings").name.en in english


def test_suppressed_groups_are_shown_as_suppressed(written) -> None:
    page = parse(written["en"].html)
    assert page.keys["satisfaction.by_service.2026-11.sidr.seedlings.answers"] == "5"
    assert page.keys["satisfaction.by_service.2026-11.sidr.seedlings.mean"] == "3.6"
    for key in ("by_service.2026-11.sidr.volunteering", "by_channel.2026-11.sidr.phone", "by_channel.2026-11.sidr.website"):
        assert page.keys[f"satisfaction.{key}.answers"] == "suppressed"
        assert f"satisfaction.{key}.mean" not in page.keys
    assert "suppressed (fewer than 5 answers)" in "".join(page.text)
    assert "Volunteering (suppressed)" in "".join(page.text)  # the trend's legend says so too


def test_exceptions_link_to_the_timeline_and_the_evidence(written) -> None:
    exception = c3_exception()
    page = parse(written["en"].html)
    hrefs = [a.get("href") for tag, a in page.tags if tag == "a"]
    assert f"https://audit.example.org/api/cases/{exception.case_id}/timeline" in hrefs
    assert "#evidence-1" in hrefs
    ids = {a.get("id") for _, a in page.tags}
    assert "evidence-1" in ids and f"case-{exception.case_id}" in ids
    for event_id in exception.event_ids:
        assert f"event-1-{event_id}" in ids
    assert page.keys["exceptions.1.check"] == "decision_after_window"
    assert page.keys["exceptions.count"] == "1"
    assert "صدر القرار بعد انقضاء المهلة" in written["ar"].html.read_text(encoding="utf-8")


def test_csv_and_json_match_the_html(written) -> None:
    files = written["en"]
    page = parse(files.html)
    data = json.loads(files.json.read_text(encoding="utf-8"))

    def rows(name: str) -> list[dict[str, str]]:
        with files.csv[name].open(encoding="utf-8-sig", newline="") as handle:
            return list(csv.DictReader(handle))

    for row in rows("requests_by_channel"):
        key = f"requests.by_channel.{row['association_id']}.{row['channel']}"
        assert page.keys[key] == row["requests"] == str(data["requests"]["by_channel"][row["association_id"]][row["channel"]])
    assert {r["channel"]: int(r["requests"]) for r in rows("requests_by_channel")} == {"phone": 4, "website": 3}
    for row in rows("requests_by_service"):
        key = f"requests.by_service.{row['association_id']}.{row['service_code']}"
        assert page.keys[key] == row["requests"]
    for row in rows("funnel"):
        assert page.keys[f"funnel.{row['stage']}"] == row["cases"] == str(data["funnel"][row["stage"]])
    for row in rows("verification_outcomes"):
        assert page.keys[f"verification_outcomes.{row['outcome']}"] == row["cases"]
    rates = {r["measure"]: r for r in rows("rates")}
    assert page.keys["referral.rate"] == rates["referral_rate"]["rate"] == str(data["referral"]["rate"])
    assert page.keys["approval.rate"] == rates["approval_rate"]["rate"] == str(data["approval"]["rate"])
    assert page.keys["time_to_decision.share_within_window"] == rates["share_within_window"]["rate"]
    assert rates["share_within_window"]["rate"] == str(data["time_to_decision"]["share_within_window"])
    slowest = rows("slowest_cases")[0]
    assert slowest["case_ref"] == "SDR-1448-c3"
    assert page.keys["time_to_decision.slowest.SDR-1448-c3.days"] == slowest["days"] == "20.0"
    for row in rows("backlog"):
        for stage in ("awaiting_verification", "awaiting_decision", "awaiting_delivery", "total"):
            assert page.keys[f"backlog.by_age.{row['age_days']}.{stage}"] == row[stage]
    assert page.keys["backlog.total"] == str(data["backlog"]["total"]) == "2"
    for row in rows("satisfaction_by_service"):
        base = f"satisfaction.by_service.{row['period']}.{row['association_id']}.{row['service_code']}"
        if row["suppressed"] == "yes":
            assert page.keys[base + ".answers"] == "suppressed" and row["answers"] == row["mean"] == ""
        else:
            assert page.keys[base + ".answers"] == row["answers"] and page.keys[base + ".mean"] == row["mean"]
    suppressed = [g for g in data["satisfaction"]["by_channel"] if g["suppressed"]]
    assert len(suppressed) == 2 and all(g["answers"] is None and g["mean"] is None for g in suppressed)
    exceptions = rows("exceptions")
    assert [e["check"] for e in exceptions] == ["decision_after_window"] == [e["check"] for e in data["exceptions"]]
    assert exceptions[0]["event_ids"].split() == data["exceptions"][0]["event_ids"]
    assert data["period"]["from_calendars"]["hijri"] == both_calendars(START)["hijri"]


def test_the_figures_period_must_match(figures, tmp_path) -> None:
    with pytest.raises(ValueError):
        write_report(figures, [], out_dir=tmp_path, period=(START, date(2026, 12, 31)))


def test_charts_escape_text_and_mirror_for_right_to_left() -> None:
    svg = charts.bar_chart([("<b>", 3), ("هاتف", 1)], title="t & t", rtl=True)
    assert "<b>" not in svg and "&lt;b&gt;" in svg and "t &amp; t" in svg
    assert 'direction="rtl"' in svg
    ltr = charts.bar_chart([("a", 2)], title="x")
    assert re.search(r'<rect x="240\.0"', ltr)  # bars start after the labels on the left
    line = charts.line_chart(["2026-10", "2026-11", "2026-12"], [("s", [4.0, None, 3.0])], title="trend")
    assert "<polyline" not in line  # a suppressed month breaks the line: no segment of two points
    assert line.count("<circle") == 2
    funnel = charts.funnel_chart([("a", 10), ("b", 5)], title="f")
    assert "50%" in funnel and "100%" in funnel


def test_report_command_arguments() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    register_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", "--from", "2026-11-01", "--to", "2026-11-30", "--lang", "en", "--out", "x"])
    assert (args.start, args.end, args.lang, args.out) == (START, END, "en", Path("x"))
    assert callable(args.handler)
    default = parser.parse_args(["report", "--from", "2026-11-01", "--to", "2026-11-30"])
    assert default.lang == "ar"
    with pytest.raises(SystemExit):
        parser.parse_args(["report", "--from", "2026-13-01", "--to", "2026-11-30"])


def test_exceptions_are_read_once_all_in_the_csv_the_first_ones_listed(figures, packs, tmp_path) -> None:
    first = c3_exception()
    others = [
        ComplianceException("votes_below_quorum", first.case_id, first.case_ref, "sidr",
                            {"ar": "تصويت دون النصاب", "en": "Votes below quorum"}, [f"e{n}"])
        for n in range(2)
    ]
    files = write_report(figures, iter([first, *others]), out_dir=tmp_path, lang="en", packs=packs, max_listed=2)
    assert files.exceptions_total == 3
    page = parse(files.html)
    assert page.keys["exceptions.count"] == "3"
    assert page.keys["exceptions.by_check.decision_after_window"] == "1"
    assert page.keys["exceptions.by_check.votes_below_quorum"] == "2"
    assert "exceptions.2.check" in page.keys and "exceptions.3.check" not in page.keys
    assert "The first 2 of 3 exceptions are listed here" in "".join(page.text)
    with files.csv["exceptions"].open(encoding="utf-8-sig", newline="") as handle:
        assert [row["check"] for row in csv.DictReader(handle)] == [
            "decision_after_window", "votes_below_quorum", "votes_below_quorum"]
    data = json.loads(files.json.read_text(encoding="utf-8"))
    assert data["exceptions_total"] == 3 and len(data["exceptions"]) == 2
    assert data["exceptions_by_check"] == {"decision_after_window": 1, "votes_below_quorum": 2}


def test_without_the_checks_the_report_says_so(figures, tmp_path) -> None:
    files = write_report(figures, None, out_dir=tmp_path, lang="en")
    assert "The compliance checks were not run" in files.html.read_text(encoding="utf-8")
    assert json.loads(files.json.read_text(encoding="utf-8"))["exceptions"] is None


# --- revisions, offline evidence, checks not run ----------------------------------------


def test_a_case_received_again_with_the_next_revision_is_counted_once() -> None:
    from uuid import uuid4

    from shared.events import RequestReceived

    case = CaseBuilder("rev").received(nov(2), "phone", "seedlings").verified(nov(3), "discrepancies")
    first = case.events[0]
    again = RequestReceived(**{**first.model_dump(), "event_id": uuid4(), "occurred_at": nov(4), "payload": {**first.payload.model_dump(), "revision": 2,
                                                                  "corrects": case.events[1].event_id}})
    case.events.append(again)
    waiting = compute_figures(iter(case.events), start=START, end=END)
    assert waiting.requests_total == 1 and waiting.requests_by_channel == {"sidr": {"phone": 1}}
    assert waiting.funnel["received"] == 1 and waiting.funnel["verified"] == 0  # the correction waits
    assert waiting.backlog_total == 1 and waiting.backlog["15-30"]["awaiting_verification"] == 1
    case.verified(nov(5))
    case.events[-1] = case.events[-1].model_copy(update={"payload": case.events[-1].payload.model_copy(
        update={"revision": 2})})
    verified = compute_figures(iter(case.events), start=START, end=END)
    assert verified.funnel["received"] == 1 and verified.verification_outcomes["verified"] == 1
    assert verified.verification_outcomes["discrepancies"] == 0


def _evidence_for(case: CaseBuilder):
    from audit.replay import StreamRecord
    from audit.report import EvidenceTimelines
    from audit.timeline import CaseTimeline, entry_from_stream

    entries = [entry_from_stream(StreamRecord(n, "s", e)) for n, e in enumerate(case.events, 1)]
    timeline = CaseTimeline(str(case.case_id), [e for e in entries if e], frozenset(), True)
    evidence = EvidenceTimelines(limit=10)
    evidence.keep(timeline, 1)
    return evidence


@pytest.mark.parametrize("lang", ["ar", "en"])
def test_the_listed_exceptions_timelines_are_in_the_file_for_offline_reading(figures, packs, tmp_path, lang) -> None:
    c3 = next(case for case in known_cases() if case.ref.endswith("c3"))
    files = write_report(figures, [c3_exception()], out_dir=tmp_path, lang=lang, packs=packs,
                         evidence=_evidence_for(c3))
    html = files.html.read_text(encoding="utf-8")
    assert "127.0.0.1" not in html and "/cases/" not in html  # no link to a server
    assert f'<details id="case-{c3.case_id}"' in html
    assert f'href="#case-{c3.case_id}"' in html
    section = html[html.index(f'<details id="case-{c3.case_id}"'):]
    section = section[:section.index("</details>")]
    for event in c3.events:  # every event of the case, by id, with its date in both calendars
        assert str(event.event_id) in section
    assert both_calendars(c3.events[0].occurred_at)[lang] in section
    assert "1590932917" not in html and "Test applicant" not in html  # no applicant data in the board's file


def test_the_api_link_is_added_only_when_an_api_base_is_given(figures, packs, tmp_path) -> None:
    c3 = next(case for case in known_cases() if case.ref.endswith("c3"))
    files = write_report(figures, [c3_exception()], out_dir=tmp_path, lang="en", packs=packs,
                         evidence=_evidence_for(c3), api_base="https://audit.example.org")
    html = files.html.read_text(encoding="utf-8")
    assert f'href="#case-{c3.case_id}"' in html
    assert f'href="https://audit.example.org/cases/{c3.case_id}/timeline"' in html


@pytest.mark.parametrize("lang,words", [
    ("en", ("These checks were not run", "needs the committee service's store")),
    ("ar", ("لم تُجرَ هذه الفحوص", "يحتاج مخزن خدمة committee")),
])
def test_the_report_says_which_checks_were_not_run(figures, packs, tmp_path, lang, words) -> None:
    files = write_report(figures, [], out_dir=tmp_path, lang=lang, packs=packs,
                         checks_not_run=["referral_never_closed", "no_survey_invitation"])
    page = parse(files.html)
    text = "".join(page.text)
    assert all(word in text for word in words)
    assert page.keys["exceptions.not_run"] == "referral_never_closed no_survey_invitation"
    data = json.loads(files.json.read_text(encoding="utf-8"))
    assert data["checks_not_run"] == ["referral_never_closed", "no_survey_invitation"]


def test_the_compliance_phase_keeps_the_progress_setting(monkeypatch, figures) -> None:
    import audit.timeline
    from audit.report import compliance_exceptions

    seen = {}

    def fake(nats_url, *, progress=False, user=None, password=None):
        seen.update(progress=progress, user=user, password=password)
        return iter(())

    monkeypatch.setattr(audit.timeline, "case_timelines_from_stream", fake)
    list(compliance_exceptions("nats://x", figures, progress=None, user="admin", password="pw"))
    assert seen == {"progress": None, "user": "admin", "password": "pw"}  # None: a bar on a terminal


def test_a_small_group_cannot_be_worked_out_from_the_other_breakdown() -> None:
    # Six answers in November: by channel all on the website (shown, so the total is
    # known); by service five and one: showing the five would give the one away.
    by_service = {("2026-11", "sidr", "seedlings"): [5, 20], ("2026-11", "sidr", "volunteering"): [1, 1]}
    by_channel = {("2026-11", "sidr", "website"): [6, 21]}
    services, channels = _suppressed_groups(by_service, by_channel)
    assert all(group.suppressed for group in services)
    assert [(g.answers, g.suppressed) for g in channels] == [(6, False)]


def test_hidden_groups_of_five_answers_or_more_need_no_company() -> None:
    by_service = {
        ("2026-11", "sidr", "seedlings"): [7, 28],
        ("2026-11", "sidr", "volunteering"): [3, 9],
        ("2026-11", "sidr", "training"): [2, 8],
    }
    by_channel = {("2026-11", "sidr", "website"): [12, 45]}
    services, _ = _suppressed_groups(by_service, by_channel)
    shown = {g.key: g.answers for g in services if not g.suppressed}
    assert shown == {"seedlings": 7}  # the hidden three and two add up to five
