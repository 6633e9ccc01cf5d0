"""Read models built by an older projection are rebuilt after an upgrade."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from services.committee.views import project as committee_projection
from services.intake.views import project as intake_projection
from shared.views import ProjectionRunner, ViewStore, projection_fingerprint

pytestmark = pytest.mark.integration


def built_views(path: Path) -> ViewStore:
    views = ViewStore(path)
    views.reset_if_changed("views", "fingerprint of the older projection")
    views.apply("views", lambda event, tx: tx.put("cases", "c1", {"status": "old shape"}), [object()], 42)  # type: ignore[list-item]
    return views


def test_views_of_another_projection_version_are_dropped_to_be_rebuilt(tmp_path: Path) -> None:
    views = built_views(tmp_path / "views.sqlite")
    assert views.get("cases", "c1") and views.position("views") == 42
    assert views.reset_if_changed("views", "fingerprint of the new projection") is True
    assert views.get("cases", "c1") is None and views.position("views") == 0
    # the same version again keeps what it built
    views.apply("views", lambda event, tx: tx.put("cases", "c1", {"status": "new"}), [object()], 7)  # type: ignore[list-item]
    assert views.reset_if_changed("views", "fingerprint of the new projection") is False
    assert views.get("cases", "c1") == {"status": "new"} and views.position("views") == 7


def test_a_runner_started_with_changed_projection_code_rebuilds_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "views.sqlite"
    built_views(path)
    app = SimpleNamespace()
    runner = ProjectionRunner(app, SimpleNamespace(), ViewStore(path), intake_projection)  # type: ignore[arg-type]
    assert runner.views.position("views") == 0 and runner.views.get("cases", "c1") is None
    runner.views.apply("views", lambda event, tx: None, [], 5)
    again = ProjectionRunner(app, SimpleNamespace(), ViewStore(path), intake_projection)  # type: ignore[arg-type]
    assert again.views.position("views") == 5


def test_the_fingerprint_follows_the_projections_source() -> None:
    assert projection_fingerprint(intake_projection) == projection_fingerprint(intake_projection)
    assert projection_fingerprint(intake_projection) != projection_fingerprint(committee_projection)


def test_a_change_in_a_module_the_projection_reads_from_changes_the_fingerprint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util
    import sys

    package = tmp_path / "someservice"
    package.mkdir()
    (package / "domain.py").write_text("def label(x):\n    return x\n")
    (package / "views.py").write_text("def project(event, views):\n    pass\n")
    spec = importlib.util.spec_from_file_location("someservice_views", package / "views.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "someservice_views", module)
    spec.loader.exec_module(module)
    before = projection_fingerprint(module.project)
    (package / "domain.py").write_text("def label(x):\n    return {'ar': x, 'en': x}\n")
    assert projection_fingerprint(module.project) != before
