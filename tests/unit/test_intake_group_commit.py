"""Group commit of submissions (docs/decisions.md, 34): many submissions decided in
order and recorded in one transaction, each caller with its own answer, and the
indexes kept in memory staying right when a save fails."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.persistence import IntegrityError, OperationalError

from services.intake.application import IntakeApplication, SubmissionRefused, SubmissionResult
from services.intake.domain import Case, CaseNumbering, numbering_id
from shared.clock import FrozenClock
from shared.errors import Invalid, Refused
from shared.group_commit import GroupCommit
from shared.personal import Sealer
from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs
from shared.store import StoreRunner
from shared.submissions import Submission
from tests import personal_data

pytestmark = pytest.mark.unit

PACKS = load_packs(DEFAULT_POLICIES_DIR)
START = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)  # 1448 AH
ACTOR = {"kind": "adapter", "id": "test"}
FIELDS = {"planting_site": "وادي حنيفة", "seedling_count": 20}


def make_app(folder: Path) -> IntakeApplication:
    """Intake on a SQLite file with the keyring, as main.build() makes it."""
    return IntakeApplication(
        env={
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(folder / "intake.sqlite"),
            "SINGLE_ROW_TRACKING": "n",
        },
        clock=FrozenClock(START),
        packs=PACKS,
        sealer=Sealer(personal_data.keyring_of(folder)),
    )


def submission(n: int, **overrides: Any) -> Submission:
    national_id = f"10{n:08d}"
    data: dict[str, Any] = {
        "association_id": "sidr",
        "channel": "website",
        "channel_ref": f"form-{n}-{uuid4().hex[:6]}",
        "service_code": "seedlings",
        "applicant": {"national_id": national_id, "name": "علي"},
        "fields": FIELDS,
        "documents": [
            {"code": "national_id_card", "number": national_id, "expires_on": "2030-01-01"}
        ],
        "attestation": {"attested": True, "method": "one_time_code"},
    }
    data.update(overrides)
    return Submission(**data)


def cases_recorded(app: IntakeApplication) -> list[Any]:
    """Every case's first event in the store, in the store's order."""
    return [
        app.mapper.to_domain_event(n)
        for n in app.read_notifications(0, 100_000)
        if n.topic.endswith("Case.Submitted")
    ]


def count_transactions(app: IntakeApplication, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of events of each write of events to the store, from now on."""
    writes: list[int] = []
    insert = app.recorder.insert_events

    def counted(stored_events: Any, **kwargs: Any) -> Any:
        writes.append(len(stored_events))
        return insert(stored_events, **kwargs)

    monkeypatch.setattr(app.recorder, "insert_events", counted)
    return writes


def test_a_batch_of_submissions_is_recorded_in_one_transaction_and_each_is_answered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(tmp_path)
    writes = count_transactions(app, monkeypatch)
    batch = [(submission(n), ACTOR) for n in range(10)]

    outcomes = app.submit_all(batch)

    assert len(writes) == 1
    assert all(isinstance(o, SubmissionResult) and not o.duplicate for o in outcomes)
    refs = [o.case_ref for o in outcomes if isinstance(o, SubmissionResult)]
    assert refs == [f"SDR-1448-{n:06d}" for n in range(1, 11)]
    recorded = cases_recorded(app)
    assert [e.originator_id for e in recorded] == [
        o.case_id for o in outcomes if isinstance(o, SubmissionResult)
    ]
    assert all(o.access_code for o in outcomes if isinstance(o, SubmissionResult))


def test_a_refused_submission_sinks_none_of_the_others_and_takes_no_number(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path)
    batch = [
        (submission(1), ACTOR),
        (submission(2, service_code="food-basket"), ACTOR),  # refused before any number
        (submission(3, fields={**FIELDS, "no_such_field": "x"}), ACTOR),  # after taking one
        (submission(4), ACTOR),
    ]

    first, unknown_service, unknown_field, last = app.submit_all(batch)

    assert isinstance(unknown_service, SubmissionRefused)
    assert unknown_service.code == "unknown_service"
    assert isinstance(unknown_field, Invalid)
    assert isinstance(first, SubmissionResult) and isinstance(last, SubmissionResult)
    # The refused one's number was taken back with it: no gap.
    assert (first.case_ref, last.case_ref) == ("SDR-1448-000001", "SDR-1448-000002")
    assert [e.originator_id for e in cases_recorded(app)] == [first.case_id, last.case_id]
    # And it can be sent again, corrected, as its own request.
    again = app.submit(submission(3), ACTOR)
    assert again.case_ref == "SDR-1448-000003"


def sequence_of_duplicates() -> list[Submission]:
    """The same channel reference twice, the same applicant on another reference,
    and another applicant on a reference already taken."""
    first = submission(1)
    return [
        first,
        first,  # the adapter's retry
        submission(1, channel_ref="form-other"),  # the same applicant again
        submission(2, channel_ref=first.channel_ref),  # another request on a taken reference
        submission(2),
    ]


def shape(outcome: SubmissionResult | Exception, refs: dict[Any, int]) -> Any:
    """An outcome with its case named by order of appearance (ids differ between runs)."""
    if isinstance(outcome, Exception):
        return ("refused", getattr(outcome, "code", type(outcome).__name__))
    case = refs.setdefault(outcome.case_id, len(refs))
    return (case, outcome.case_ref, outcome.duplicate, outcome.linked, outcome.status)


def test_duplicates_inside_one_batch_are_answered_as_they_are_one_after_the_other(
    tmp_path: Path,
) -> None:
    sequence = sequence_of_duplicates()
    alone = make_app(tmp_path / "alone")
    sequential: list[SubmissionResult | Exception] = []
    for one in sequence:
        try:
            sequential.append(alone.submit(one, ACTOR))
        except Refused as refused:
            sequential.append(refused)
    together = make_app(tmp_path / "together")

    batched = together.submit_all([(one, ACTOR) for one in sequence])

    refs_alone: dict[Any, int] = {}
    refs_together: dict[Any, int] = {}
    assert [shape(o, refs_together) for o in batched] == [shape(o, refs_alone) for o in sequential]
    assert shape(batched[3], {}) == ("refused", "channel_ref_conflict")
    assert batched[1].case_id == batched[0].case_id  # type: ignore[union-attr]
    assert batched[2].linked  # type: ignore[union-attr]
    # The same events as recorded one by one (each aggregate's in the same order).
    assert sorted(n.topic for n in together.read_notifications(0, 1000)) == sorted(
        n.topic for n in alone.read_notifications(0, 1000)
    )
    case_topics = [
        n.topic
        for n in together.read_notifications(0, 1000)
        if n.topic.split(":")[1][:5] == "Case."
    ]
    assert case_topics == [
        n.topic for n in alone.read_notifications(0, 1000) if n.topic.split(":")[1][:5] == "Case."
    ]
    assert len(cases_recorded(together)) == 2


def failing_writes(
    app: IntakeApplication, monkeypatch: pytest.MonkeyPatch, fails: Any
) -> list[int]:
    """Makes the store fail a write of events (after writing them, before the commit)
    when `fails(number of events, write number)` says so; returns the sizes tried."""
    tried: list[int] = []
    insert = app.recorder._insert_events  # type: ignore[attr-defined]

    def insert_then_fail(cursor: Any, stored_events: Any, **kwargs: Any) -> Any:
        tried.append(len(stored_events))
        ids = insert(cursor, stored_events, **kwargs)
        if fails(len(stored_events), len(tried)):
            raise sqlite3.OperationalError("disk I/O error (injected)")
        return ids

    monkeypatch.setattr(app.recorder, "_insert_events", insert_then_fail)
    return tried


def test_a_batch_whose_write_fails_midway_records_nothing_of_it_then_each_on_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(tmp_path)
    app.submit(submission(0), ACTOR)
    batch = [(submission(n), ACTOR) for n in range(1, 5)]
    # The batch's write fails, and so does the third submission's own (write 4).
    tried = failing_writes(app, monkeypatch, lambda size, write: write in (1, 4))

    outcomes = app.submit_all(batch)

    assert tried[0] > tried[1]  # the batch, then one by one
    assert isinstance(outcomes[2], OperationalError)
    accepted = [o for o in outcomes if isinstance(o, SubmissionResult)]
    assert [o.case_ref for o in accepted] == [
        "SDR-1448-000002",
        "SDR-1448-000003",
        "SDR-1448-000004",
    ]
    monkeypatch.undo()
    reopened = make_app(tmp_path)
    assert len(cases_recorded(reopened)) == 4
    # The one that failed, sent again, is recorded once; the others are duplicates.
    again = reopened.submit_all(batch)
    assert [o.duplicate for o in again] == [True, True, False, True]  # type: ignore[union-attr]
    assert again[2].case_ref == "SDR-1448-000005"  # type: ignore[union-attr]
    assert len(cases_recorded(reopened)) == 5


def test_the_kept_numbering_is_right_after_a_failed_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(tmp_path)
    app.submit(submission(0), ACTOR)
    app.submit(submission(1), ACTOR)  # loaded from the store: now kept in memory
    failing_writes(app, monkeypatch, lambda size, write: True)

    with pytest.raises(OperationalError):
        app.submit(submission(2), ACTOR)

    monkeypatch.undo()
    numbering = app.repository.get(numbering_id("sidr", 1448))
    assert isinstance(numbering, CaseNumbering) and numbering.last_number == 2
    assert app.submit(submission(2), ACTOR).case_ref == "SDR-1448-000003"


def test_a_kept_index_catches_up_with_what_another_instance_saved(tmp_path: Path) -> None:
    first, second = make_app(tmp_path), make_app(tmp_path)
    assert first.submit(submission(1), ACTOR).case_ref == "SDR-1448-000001"
    assert second.submit(submission(2), ACTOR).case_ref == "SDR-1448-000002"
    # `first` keeps the numbering at 1 in memory: it catches up, no number twice.
    assert first.submit(submission(3), ACTOR).case_ref == "SDR-1448-000003"
    # And the applicant's open request `second` opened is found by `first`.
    again = first.submit(submission(2, channel_ref="form-again"), ACTOR)
    assert again.duplicate and again.linked


def test_a_lost_race_in_a_batch_is_decided_again_one_by_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(tmp_path)
    other = make_app(tmp_path)
    batch = [(submission(n), ACTOR) for n in range(1, 4)]
    save = app.save
    raced: list[bool] = []

    def another_instance_first(*aggregates: Any, **kwargs: Any) -> Any:
        if not raced:  # the other instance takes number 1 between the load and the save
            raced.append(True)
            other.submit(submission(9), ACTOR)
        return save(*aggregates, **kwargs)

    monkeypatch.setattr(app, "save", another_instance_first)
    outcomes = app.submit_all(batch)

    assert [o.case_ref for o in outcomes] == [  # type: ignore[union-attr]
        "SDR-1448-000002",
        "SDR-1448-000003",
        "SDR-1448-000004",
    ]
    assert len(cases_recorded(app)) == 4


def test_a_case_is_never_kept_in_memory(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    result = app.submit(submission(1), ACTOR)
    first = app.repository.get(result.case_id)
    assert isinstance(first, Case)
    assert app.repository.get(result.case_id) is not first
    assert result.case_id not in app.repository._kept.cache  # type: ignore[attr-defined]


class _InlineStore(StoreRunner):
    """Runs the batch on the loop's thread, counting the batches."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []

    async def run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self.batches.append(list(args[0]))
        return fn(*args, **kwargs)


def test_concurrent_callers_are_gathered_into_one_batch_and_get_their_own_outcome() -> None:
    store = _InlineStore()

    def double_or_refuse(items: list[int]) -> list[int | Exception]:
        return [ValueError(f"odd {i}") if i % 2 else i * 2 for i in items]

    group: GroupCommit[int, int] = GroupCommit(store, double_or_refuse, max_batch=4, max_wait=0.05)

    async def all_of_them() -> list[Any]:
        return await asyncio.gather(*(group.run(i) for i in range(6)), return_exceptions=True)

    outcomes = asyncio.run(all_of_them())

    # Four at once (the batch full, no waiting), then the two left after at most max_wait.
    assert store.batches == [[0, 1, 2, 3], [4, 5]]
    assert outcomes[0::2] == [0, 4, 8]
    assert [str(o) for o in outcomes[1::2]] == ["odd 1", "odd 3", "odd 5"]


def test_a_batch_that_fails_as_a_whole_fails_each_caller_and_the_next_batch_runs() -> None:
    store = _InlineStore()
    calls: list[list[int]] = []

    def broken_once(items: list[int]) -> list[int | Exception]:
        calls.append(items)
        if len(calls) == 1:
            raise IntegrityError("the store refused it")
        return list(items)

    group: GroupCommit[int, int] = GroupCommit(store, broken_once, max_batch=2, max_wait=0)

    async def twice() -> tuple[list[Any], int]:
        first = await asyncio.gather(group.run(1), group.run(2), return_exceptions=True)
        return first, await group.run(3)

    failed, later = asyncio.run(twice())

    assert all(isinstance(error, IntegrityError) for error in failed)
    assert later == 3
