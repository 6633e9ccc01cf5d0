"""A crash in the middle of a group commit (docs/decisions.md, 34).

An intake application in a process of its own records batches of submissions
on a SQLite file and prints each batch's answers once the batch is committed
(what its callers would be told). The process is killed with SIGKILL while a
batch is being written, at a chosen point (its events written, the transaction
not committed) and at a moment chosen by the clock. After the restart: every
batch is in the store whole or not at all, every submission that was answered
has its case, and sending everything again records each request exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_intake_group_commit import ACTOR, cases_recorded, make_app, submission

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BATCH = 16

CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    from pathlib import Path
    from tests.unit.test_intake_group_commit import ACTOR, make_app, submission
    from services.intake.application import SubmissionResult

    folder, batches, kill_in_batch, size = Path(sys.argv[1]), *map(int, sys.argv[2:5])
    app = make_app(folder)
    insert = app.recorder._insert_events
    current = {"batch": -1, "written": 0}

    def insert_or_die(cursor, stored_events, **kwargs):
        ids = insert(cursor, stored_events, **kwargs)
        current["written"] += len(stored_events)
        # Once more than a few submissions' events of the batch are written (all of
        # them at once with the group commit), before the commit.
        if current["batch"] == kill_in_batch and current["written"] > 20:
            os.kill(os.getpid(), signal.SIGKILL)
        return ids

    app.recorder._insert_events = insert_or_die
    for b in range(batches):
        current["batch"], current["written"] = b, 0
        numbers = range(b * size, (b + 1) * size)
        print(json.dumps({"batch": b, "numbers": list(numbers)}), flush=True)
        outcomes = app.submit_all([(submission(n, channel_ref=f"ref-{n}"), ACTOR) for n in numbers])
        answered = [
            {"number": n, "case_id": str(o.case_id)}
            for n, o in zip(numbers, outcomes)
            if isinstance(o, SubmissionResult)
        ]
        print(json.dumps({"batch": b, "answered": answered}), flush=True)
    """
)


def run_child(folder: Path, batches: int, kill_in_batch: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(folder), str(batches), str(kill_in_batch), str(BATCH)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )


def lines_of(child: subprocess.Popen[str]) -> Iterator[dict[str, Any]]:
    assert child.stdout is not None
    for line in child.stdout:
        yield json.loads(line)


def check_after_restart(folder: Path, lines: list[dict[str, Any]]) -> None:
    """Whole batches or nothing; every answer has its case; everything sent again
    is recorded exactly once."""
    started = {line["batch"]: line["numbers"] for line in lines if "numbers" in line}
    answered = [a for line in lines if "answered" in line for a in line["answered"]]
    app = make_app(folder)
    recorded = {str(event.originator_id): event for event in cases_recorded(app)}
    refs = {event.channel_ref for event in recorded.values()}
    for numbers in started.values():
        present = sum(f"ref-{n}" in refs for n in numbers)
        assert present in (0, len(numbers)), f"a batch half recorded: {present} of {len(numbers)}"
    assert {a["case_id"] for a in answered} <= set(recorded)

    every = [n for numbers in started.values() for n in numbers]
    again = app.submit_all([(submission(n, channel_ref=f"ref-{n}"), ACTOR) for n in every])
    by_number = dict(zip(every, again, strict=True))
    for a in answered:
        outcome = by_number[a["number"]]
        assert outcome.duplicate and str(outcome.case_id) == a["case_id"]  # type: ignore[union-attr]
    after = cases_recorded(make_app(folder))
    assert sorted(e.channel_ref for e in after) == sorted(f"ref-{n}" for n in every)


def test_killed_while_a_batch_is_written_the_batch_is_not_recorded_and_the_others_are(
    tmp_path: Path,
) -> None:
    child = run_child(tmp_path, batches=4, kill_in_batch=2)
    lines = list(lines_of(child))
    assert child.wait(timeout=60) == -signal.SIGKILL
    # Two batches answered; the third started and died in its transaction.
    assert [line["batch"] for line in lines if "answered" in line] == [0, 1]
    assert max(line["batch"] for line in lines) == 2
    app = make_app(tmp_path)
    assert len(cases_recorded(app)) == 2 * BATCH
    check_after_restart(tmp_path, lines)


def test_killed_at_any_moment_of_its_batches_nothing_is_half_recorded(tmp_path: Path) -> None:
    child = run_child(tmp_path, batches=400, kill_in_batch=-1)
    lines: list[dict[str, Any]] = []
    reader = lines_of(child)
    # Killed from outside once a few batches are through, wherever it then is.
    for line in reader:
        lines.append(line)
        if len(lines) >= 7:
            break
    child.send_signal(signal.SIGKILL)
    lines.extend(reader)
    assert child.wait(timeout=60) == -signal.SIGKILL
    check_after_restart(tmp_path, lines)
