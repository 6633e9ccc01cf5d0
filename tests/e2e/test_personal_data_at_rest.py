"""Personal data at rest after a full simulated run (issue 10, PDPL).

Every kind of case in every association goes through the embedded system (its
own NATS, SQLite stores, the logged outbox); then every byte under the data
folder is searched for each applicant's national id, name, phone and e-mail, and
for what staff wrote about them (a referral's reason and question, an override's
reason), in the encodings a file could hold them in. And every file is the
services' own.
"""

from __future__ import annotations

import asyncio
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from khidma.run import EmbeddedSystem
from khidma.signin import embedded_staff
from khidma.simulate import KINDS, TEMPLATES, CaseDriver, CaseRun, Endpoints, Scenario
from tests.personal_data import assert_no_plaintext, encodings

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[CaseRun]]]:
    data_dir = tmp_path_factory.mktemp("at-rest") / "data"
    with EmbeddedSystem(data_dir, fixed_ports=False) as system:
        runs = asyncio.run(drive_every_kind_everywhere(system))
    # Stopped: what is left on disk is all there is (the WAL files included).
    yield data_dir, runs


async def drive_every_kind_everywhere(system: EmbeddedSystem) -> list[CaseRun]:
    async with httpx.AsyncClient(timeout=30) as client:
        endpoints = Endpoints.from_mapping(system.endpoints())
        staff = embedded_staff(system.data_dir, endpoints.identity, client)
        driver = CaseDriver(client, endpoints, step_timeout=60, staff=staff)
        scenarios = [Scenario(kind, association) for association in TEMPLATES for kind in KINDS]
        # In every association, a verifier overrides an ineligible suggestion, with a reason.
        scenarios += [Scenario("ineligible", association, overridden=True) for association in TEMPLATES]
        runs = list(await asyncio.gather(*(driver.run(s) for s in scenarios)))
    failed = [f"{run.kind}: {run.error}" for run in runs if run.error]
    assert not failed, failed
    return runs


def every_file(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


def test_no_applicants_personal_data_is_readable_anywhere_under_the_data_folder(
    finished_run: tuple[Path, list[CaseRun]],
) -> None:
    data_dir, runs = finished_run
    needles: dict[bytes, str] = {}
    for run in runs:
        for field, value in run.applicant.items():
            for encoded in encodings(value):
                needles[encoded] = f"{run.case_ref} {field}"
    assert len(runs) == (len(KINDS) + 1) * len(TEMPLATES) and all(run.applicant for run in runs)
    found: list[str] = []
    files = every_file(data_dir)
    assert any(path.name == "intake.sqlite" for path in files)
    assert any(path.parts[-2:-1] == ("jetstream",) or "jetstream" in path.parts for path in files)
    for path in files:
        content = path.read_bytes()
        found += [
            f"{path.relative_to(data_dir)}: {what}" for needle, what in needles.items() if needle in content
        ]
    assert not found, found[:20]
    # The search is not blind: what is not personal, the cases' references, is found.
    everything = b"".join(path.read_bytes() for path in files)
    assert all(run.case_ref.encode() in everything for run in runs)


def test_what_staff_wrote_about_an_applicant_is_readable_nowhere_under_the_data_folder(
    finished_run: tuple[Path, list[CaseRun]],
) -> None:
    """A referral's reason and question and an override's reason, each with a marker
    of its own, were written during the run; none is in any file in any encoding."""
    data_dir, runs = finished_run
    words = [word for run in runs for word in run.staff_words]
    kinds = {word.split("-")[0] for word in words}
    assert kinds == {"reason", "question", "override"}, kinds
    assert len([w for w in words if w.startswith("override-")]) == len(TEMPLATES)
    assert_no_plaintext(data_dir, words)


def test_every_file_the_system_made_is_private(finished_run: tuple[Path, list[CaseRun]]) -> None:
    data_dir, _ = finished_run
    loose = [
        f"{path.relative_to(data_dir)} {oct(stat.S_IMODE(path.stat().st_mode))}"
        for path in [data_dir, *data_dir.rglob("*")]
        if not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) & 0o077
    ]
    assert not loose, loose
