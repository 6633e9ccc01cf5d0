"""`make chaos` in its short form: cases go on through kill -9 of services and of NATS,
and nothing a client saw succeed is lost, doubled or left stuck."""

from __future__ import annotations

from pathlib import Path

import pytest

from khidma.chaos import parser, run_chaos

pytestmark = pytest.mark.e2e


def test_twelve_cases_through_two_kills_and_a_nats_restart_lose_nothing(tmp_path: Path) -> None:
    args = parser().parse_args(
        ["--cases", "12", "--kills", "2", "--nats-restarts", "1", "--concurrency", "12",
         "--step-timeout", "60", "--victims", "intake,committee"]
    )
    report = run_chaos(args, tmp_path / "data")
    print("\n".join(report.lines()))
    assert sum(report.kills.values()) == 2 and report.nats_restarts == 1
    # intake is killed mid-run: people's requests meet it down, and are sent again
    assert report.retries > 0
    assert report.lost == [] and report.duplicated == [] and report.stuck == []
    assert report.completed + len(report.held) == 12
    assert report.audit == {"crosscheck": "clean", "verify": "clean", "compliance": "clean"}
    assert report.clean
