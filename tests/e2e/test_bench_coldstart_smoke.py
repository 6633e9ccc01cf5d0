"""`make bench-coldstart` with a tiny store: it writes the store, rebuilds the views in a
cold interpreter, reports what it rebuilt, and reuses the store on a second run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from khidma.bench_coldstart import main

# A benchmark's smoke: under make test-bench, to keep make test within its time.
pytestmark = [pytest.mark.e2e, pytest.mark.bench_smoke]


def _result(output: Path) -> dict:
    (written,) = sorted(output.glob("coldstart-bench-*.json"))[-1:]
    return json.loads(written.read_text())


def test_the_cold_start_rebuilds_every_view_and_reuses_its_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    assert main(["--events", "1000", "--store-dir", str(store), "--output", str(tmp_path / "a")]) == 0
    first = _result(tmp_path / "a")
    (run,) = first["runs"]
    assert first["store"]["events"] == run["notifications_applied"] == run["max_notification_id"] == 1000
    assert run["surveys_in_views"] == 500  # each survey: registered, then invited
    assert run["seconds_to_views_rebuilt"] >= run["catch_up_seconds"] > 0
    assert "views rebuilt in" in capsys.readouterr().out
    assert main(["--events", "1000", "--store-dir", str(store), "--output", str(tmp_path / "b")]) == 0
    again = _result(tmp_path / "b")
    assert again["store"]["reused"] is True and again["runs"][0]["surveys_in_views"] == 500
