"""Case references stay unique when several intake instances share one store (SQLite file)."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest

from services.intake.application import IntakeApplication
from services.intake.domain import numbering_id
from shared.clock import FrozenClock
from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs
from shared.settings import ServiceSettings
from shared.store import open_application
from shared.submissions import Submission

pytestmark = pytest.mark.integration

PACKS = load_packs(DEFAULT_POLICIES_DIR)
CLOCK = FrozenClock(datetime(2026, 11, 21, 9, 0, tzinfo=timezone.utc))


def instance(tmp_path) -> IntakeApplication:
    settings = ServiceSettings(service_name="intake", nats_url="nats://x", data_dir=tmp_path)
    return open_application(
        IntakeApplication, settings.eventsourcing_env(), clock=CLOCK, packs=PACKS
    )


def submission(n: int) -> Submission:
    return Submission(
        association_id="sidr",
        channel="website",
        channel_ref=f"form-{n}",
        service_code="seedlings",
        applicant={"national_id": f"{n}", "name": f"Applicant {n}"},
        fields={"planting_site": "x"},
    )


def test_an_instance_that_lost_the_race_for_a_number_takes_the_next(tmp_path):
    first, second = instance(tmp_path), instance(tmp_path)
    get = first.repository.get
    raced = []

    def get_then_let_the_other_instance_win(aggregate_id, *args, **kwargs):
        aggregate = get(aggregate_id, *args, **kwargs)
        if aggregate_id == numbering_id("sidr", 1448) and not raced:
            raced.append(second.submit(submission(2), {"kind": "adapter", "id": "b"}))
        return aggregate

    first.repository.get = get_then_let_the_other_instance_win  # type: ignore[method-assign]
    # The numbering does not exist yet for the first submission: seed it.
    assert second.submit(submission(1), {"kind": "adapter", "id": "b"}).case_ref == "SDR-1448-000001"
    result = first.submit(submission(3), {"kind": "adapter", "id": "a"})
    assert raced[0].case_ref == "SDR-1448-000002"
    assert result.case_ref == "SDR-1448-000003"


def test_concurrent_instances_never_share_a_reference(tmp_path):
    apps = [instance(tmp_path) for _ in range(2)]
    refs: list[str] = []
    errors: list[BaseException] = []

    def run(app: IntakeApplication, start: int) -> None:
        try:
            for n in range(start, start + 15):
                refs.append(app.submit(submission(n), {"kind": "adapter", "id": "t"}).case_ref)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(app, i * 100)) for i, app in enumerate(apps)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(refs) == [f"SDR-1448-{n:06d}" for n in range(1, 31)]


def test_a_long_numbering_is_read_from_a_snapshot_not_replayed_from_the_start(tmp_path):
    app = instance(tmp_path)
    for n in range(1, 106):
        app.submit(submission(n), {"kind": "adapter", "id": "a"})
    assert app.snapshots is not None
    (snapshot,) = list(app.snapshots.get(numbering_id("sidr", 1448)))
    assert snapshot.originator_version == 100  # taken every 100 versions: Started + 99 numbers
    assert instance(tmp_path).submit(submission(106), {"kind": "adapter", "id": "b"}).case_ref == (
        "SDR-1448-000106"
    )
