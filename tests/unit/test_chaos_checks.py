"""The chaos command's reading of the stream: what counts as lost and as duplicated."""

from __future__ import annotations

from types import SimpleNamespace
from uuid import uuid4

import pytest

from khidma.chaos import ChaosReport, check_stream
from khidma.simulate import CaseRun

pytestmark = pytest.mark.unit
APPROVED = ["submitted", "verified:verified", "decided", "delivered", "surveyed"]
EVENTS = ["RequestReceived", "DataVerified", "CommitteeDecided", "ServiceDelivered"]


def record(case_id: str, event_type: str, event_id: str | None = None) -> SimpleNamespace:
    event = SimpleNamespace(event_id=event_id or str(uuid4()), event_type=event_type, case_id=case_id)
    return SimpleNamespace(sequence=1, event=event, error=None)


def approved_case(case_id: str) -> tuple[CaseRun, list[SimpleNamespace]]:
    run = CaseRun(kind="approved", case_id=case_id, steps=list(APPROVED))
    # the answer is anonymous: on the stream under the survey's id, not the case's
    return run, [record(case_id, e) for e in EVENTS] + [record(str(uuid4()), "SurveyAnswered")]


def test_a_complete_history_is_neither_lost_nor_duplicated() -> None:
    run, records = approved_case("c1")
    report = ChaosReport()
    check_stream([run], records, report)
    assert report.lost == [] and report.duplicated == []


def test_a_missing_event_is_lost_and_a_missing_answer_too() -> None:
    run, records = approved_case("c1")
    report = ChaosReport()
    check_stream([run], [r for r in records if r.event.event_type not in ("DataVerified", "SurveyAnswered")], report)
    assert sorted(report.lost) == ["DataVerified of c1: 0 of 1", "SurveyAnswered of the answers: 0 of 1"]


def test_a_step_twice_and_an_event_id_twice_are_duplicates() -> None:
    run, records = approved_case("c1")
    again = record("c1", "CommitteeDecided")
    report = ChaosReport()
    check_stream([run], [*records, again, record("c1", "ServiceDelivered", again.event.event_id)], report)
    assert any("CommitteeDecided of c1: 2" in d for d in report.duplicated)
    assert any(f"event {again.event.event_id} 2 times" == d for d in report.duplicated)


def test_a_case_that_stopped_may_have_its_step_in_progress_on_the_stream() -> None:
    run = CaseRun(kind="approved", case_id="c2", steps=["submitted", "verified:verified"], error="timed out")
    records = [record("c2", "RequestReceived"), record("c2", "DataVerified"), record("c2", "CommitteeDecided")]
    report = ChaosReport()
    check_stream([run], records, report)
    assert report.lost == [] and report.duplicated == []
