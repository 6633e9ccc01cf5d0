"""`python -m audit policy versions|diff` on a real intake store (SQLite): the version
in force at a moment, by the adoptions intake recorded, and what changed."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from audit.cli import main
from services.intake.application import IntakeApplication
from shared.clock import FrozenClock
from shared.policy_loader import load_packs
from shared.store import open_application
from tests.policy_versions import CHANGE_AT, V1_WINDOW, V2_WINDOW, two_versions

pytestmark = pytest.mark.integration


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_the_version_in_force_as_of_a_date_comes_from_intakes_adoptions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    policies = two_versions(tmp_path / "policies")
    monkeypatch.setenv("KHIDMA_POLICIES_DIR", str(policies))
    data = tmp_path / "data"
    data.mkdir()
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(data / "intake.sqlite"),
    }
    # Intake started a day before version 2 took effect: it adopted both then.
    adopted_at = CHANGE_AT - timedelta(days=1)
    open_application(
        IntakeApplication, env, clock=FrozenClock(adopted_at), packs=load_packs(policies)
    )

    def sidr_at(moment: str) -> dict:
        found = run(
            capsys, "--data-dir", str(data), "policy", "versions", "--as-of", moment, "--json"
        )
        [row] = [r for r in found["associations"] if r["association_id"] == "sidr"]
        return row

    before = sidr_at((CHANGE_AT - timedelta(hours=1)).isoformat())
    after = sidr_at((CHANGE_AT + timedelta(hours=1)).isoformat())
    assert (before["version"], before["decision_window_days"]) == (1, V1_WINDOW)
    assert (after["version"], after["decision_window_days"]) == (2, V2_WINDOW)
    assert after["adopted_at"]["at"] == adopted_at.isoformat()
    assert after["approval"]["hijri"] == "1446-08-20"

    assert main(["--data-dir", str(data), "policy", "diff", "sidr"]) == 0
    printed = capsys.readouterr().out
    assert "تغيّر — مهلة قرار اللجنة (أيام): 14 ← 10" in printed
    assert "Changed — Committee's decision window (days): 14 → 10" in printed
    assert main(["--data-dir", str(data), "policy", "diff", "sidr", "1", "5"]) == 2
    assert "versions 1 and 5 are not both" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["policy", "versions", "--as-of", "nonsense"],
        ["asof", "nonsense"],
        ["compliance", "--as-of", "nonsense"],
        ["access", "--from", "nonsense"],
        ["access", "--to", "nonsense"],
        ["roles", "someone", "--at", "nonsense"],
    ],
    ids=lambda argv: " ".join(argv[:-1]),
)
def test_a_moment_that_is_no_moment_is_refused_in_both_languages(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """Every command that takes a moment refuses a bad one before it reads anything."""
    with pytest.raises(SystemExit) as refused:
        main(argv)
    assert refused.value.code == 2
    error = capsys.readouterr().err
    assert "'nonsense' is not an ISO moment or day" in error and "لحظة غير صالحة" in error


@pytest.mark.parametrize("command", [["asof"], ["compliance"], ["policy", "versions"]])
def test_a_hijri_day_that_is_no_day_is_refused_in_both_languages(
    capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    with pytest.raises(SystemExit) as refused:
        main([*command, "--hijri", "1448-13-40"])
    assert refused.value.code == 2
    error = capsys.readouterr().err
    assert "is not a Hijri day YYYY-MM-DD" in error and "تاريخ هجري غير صالح" in error
