"""The audit lists the cases a dead letter holds, with the dead letter that holds each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from audit.compliance import CheckContext, run_checks
from audit.report import write_report
from audit.timeline import CaseTimeline, TimelineEntry
from tests.unit.test_audit_report import END, START, figures, packs  # noqa: F401 — fixtures

pytestmark = pytest.mark.unit

AT = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)


def intake_entry(case_id: str, name: str, minutes: int, **data: str) -> TimelineEntry:
    return TimelineEntry(
        case_id=case_id,
        service="intake",
        source="store",
        name=name,
        occurred_at=AT + timedelta(minutes=minutes),
        case_ref="SDR-1448-000009",
        association_id="sidr",
        data=data,
    )


def held_timeline(*, lifted: bool) -> CaseTimeline:
    case_id = str(uuid4())
    entries = [
        intake_entry(case_id, "Case.Submitted", 0),
        intake_entry(
            case_id,
            "Case.Held",
            1,
            key="committee:41",
            service="committee",
            reason="failed 5 times: RuntimeError('boom')",
        ),
        intake_entry(
            case_id,
            "Case.Held",
            2,
            key="surveys:42",
            service="surveys",
            reason="waited 600s for an earlier event",
        ),
        intake_entry(case_id, "Case.HoldLifted", 3, key="committee:41"),
    ]
    if lifted:
        entries.append(intake_entry(case_id, "Case.HoldLifted", 4, key="surveys:42"))
    return CaseTimeline(case_id, entries, stores_read=frozenset({"intake"}))


def held_exceptions(timeline: CaseTimeline) -> list:
    context = CheckContext(now=AT + timedelta(days=1))
    return list(run_checks([timeline], ["held_by_dead_letter"], context=context))


def test_a_case_still_held_is_listed_with_the_dead_letter_that_holds_it():
    (found,) = held_exceptions(held_timeline(lifted=False))
    assert found.check == "held_by_dead_letter" and found.case_ref == "SDR-1448-000009"
    assert "dead letter surveys:42" in found.message["en"] and "surveys:42" in found.message["ar"]
    assert "waited 600s" in found.message["en"]
    assert found.proven_at == AT + timedelta(days=1)  # still held as of the audit's moment


def test_a_case_whose_holds_were_all_lifted_is_not_listed():
    assert held_exceptions(held_timeline(lifted=True)) == []


def test_the_board_report_lists_the_held_case_and_its_dead_letter(figures, packs, tmp_path):  # noqa: F811
    found = held_exceptions(held_timeline(lifted=False))
    files = write_report(
        figures, found, out_dir=tmp_path, lang="en", period=(START, END), packs=packs
    )
    page = files.html.read_text(encoding="utf-8")
    assert "Case held by a dead letter" in page
    assert "surveys:42" in page and "SDR-1448-000009" in page
