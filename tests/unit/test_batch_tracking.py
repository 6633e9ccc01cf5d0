"""A batch of consumed messages recorded in one transaction (docs/decisions.md, 39):
the chained recorders' several tracking rows, and process_tracked_all, on SQLite and
on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError, Tracking

from shared.chain import TRACKINGS, ChainReader
from shared.consumer import RetryLater
from shared.store import (
    DuplicateDelivery,
    ServiceApplication,
    process_tracked,
    process_tracked_all,
)
from tests.backends import Backend

NAME = "nats:TEST"


class Tally(Aggregate):
    """What the messages about one case said, in the order they were handled."""

    @staticmethod
    def create_id(case_id: UUID) -> UUID:
        return case_id

    @event("Opened")
    def __init__(self, case_id: UUID):
        self.seen: list[str] = []

    @event("Counted")
    def count(self, source: str) -> None:
        self.seen.append(source)


class TallyApplication(ServiceApplication):
    name = "tallies"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.batches: list[int] = []
        self.singles = 0

    def record_processing(self, processing: ProcessingEvent) -> None:
        self.singles += 1
        super().record_processing(processing)

    def record_processings(self, processings: Any) -> None:
        self.batches.append(len(processings))
        super().record_processings(processings)

    def count(self, case_id: UUID, source: str, processing: ProcessingEvent) -> None:
        # Written for one message at a time: it loads with repository.get.
        try:
            tally: Tally = self.repository.get(case_id)
        except AggregateNotFoundError:
            tally = Tally(case_id)
        tally.count(source)
        processing.collect_events(tally)

    def seen(self, case_id: UUID) -> list[str]:
        tally: Tally = self.repository.get(case_id)
        return tally.seen


def counting(app: TallyApplication, case_id: UUID, source: str) -> Callable[[Any], None]:
    return lambda processing: app.count(case_id, source, processing)


def recorded(app: ServiceApplication, *positions: int) -> list[bool]:
    return [app.position_recorded(Tracking(NAME, p)) for p in positions]


def test_several_tracking_rows_are_written_in_the_events_transaction(backend: Backend) -> None:
    app = backend.open(TallyApplication, "tallies")
    tally = Tally(uuid4())
    tally.count("one")
    app.events.put(tally.collect_events(), **{TRACKINGS: [Tracking(NAME, 1), Tracking(NAME, 2)]})
    assert recorded(app, 1, 2, 3) == [True, True, False]
    assert app.process_recorder.max_tracking_id(NAME) == 2
    # The chain covers the events written with them.
    reader = ChainReader(app.factory)
    assert reader.max_chain_id() == reader.max_notification_id() == app.max_notification_id()

    # One position already recorded: none of the rows, and no event, is written.
    tally.count("two")
    before = app.max_notification_id()
    with pytest.raises(IntegrityError):
        app.events.put(
            tally.collect_events(), **{TRACKINGS: [Tracking(NAME, 3), Tracking(NAME, 2)]}
        )
    assert recorded(app, 3) == [False]
    assert app.max_notification_id() == before

    # No events at all: the rows alone.
    app.events.put([], **{TRACKINGS: [Tracking(NAME, 4), Tracking(NAME, 5)]})
    assert recorded(app, 4, 5) == [True, True]


def test_a_later_message_of_the_batch_sees_what_the_earlier_ones_did(backend: Backend) -> None:
    app = backend.open(TallyApplication, "tallies")
    case, other = uuid4(), uuid4()
    outcomes = process_tracked_all(
        app,
        [
            (Tracking(NAME, 1), counting(app, case, "a")),
            (Tracking(NAME, 2), counting(app, other, "x")),
            (Tracking(NAME, 3), counting(app, case, "b")),
        ],
    )
    assert outcomes == [None, None, None]
    assert (app.batches, app.singles) == ([3], 0)  # one transaction
    assert app.seen(case) == ["a", "b"] and app.seen(other) == ["x"]
    assert recorded(app, 1, 2, 3) == [True, True, True]


def test_a_failing_message_is_left_out_and_changes_nothing_the_others_see(
    backend: Backend,
) -> None:
    app = backend.open(TallyApplication, "tallies")
    case = uuid4()

    def fails_after_changing(processing: Any) -> None:
        app.count(case, "poison", processing)  # changed the tally, collected it...
        raise ValueError("...and then failed")

    def waits(processing: Any) -> None:
        app.count(case, "early", processing)
        raise RetryLater("an earlier event is missing")

    outcomes = process_tracked_all(
        app,
        [
            (Tracking(NAME, 1), counting(app, case, "a")),
            (Tracking(NAME, 2), fails_after_changing),
            (Tracking(NAME, 3), waits),
            (Tracking(NAME, 4), counting(app, case, "b")),
        ],
    )
    assert outcomes[0] is None and outcomes[3] is None
    assert isinstance(outcomes[1], ValueError) and isinstance(outcomes[2], RetryLater)
    assert app.batches == [2] and app.singles == 0
    assert app.seen(case) == ["a", "b"]
    assert recorded(app, 1, 2, 3, 4) == [True, False, False, True]


def test_a_duplicate_in_the_batch_is_skipped(backend: Backend) -> None:
    app = backend.open(TallyApplication, "tallies")
    case = uuid4()
    process_tracked(app, Tracking(NAME, 2), counting(app, case, "a"))
    outcomes = process_tracked_all(
        app,
        [
            (Tracking(NAME, 1), counting(app, case, "z")),
            (Tracking(NAME, 2), counting(app, case, "a")),
            (Tracking(NAME, 3), counting(app, case, "b")),
        ],
    )
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], DuplicateDelivery)
    assert app.seen(case) == ["a", "z", "b"]


def test_a_batch_that_cannot_be_recorded_falls_back_to_one_message_at_a_time(
    backend: Backend,
) -> None:
    app = backend.open(TallyApplication, "tallies")
    # Another instance sharing the store, which records the first message after this
    # one found it unrecorded, while it handles the second.
    other = backend.open(TallyApplication, "tallies")
    case, elsewhere = uuid4(), uuid4()
    raced: list[bool] = []

    def races(processing: Any) -> None:
        if not raced:
            raced.append(True)
            process_tracked(other, Tracking(NAME, 1), counting(other, case, "a"))
        app.count(case, "b", processing)

    outcomes = process_tracked_all(
        app,
        [
            (Tracking(NAME, 1), counting(app, case, "a")),
            (Tracking(NAME, 2), races),
            (Tracking(NAME, 3), counting(app, elsewhere, "c")),
        ],
    )
    assert isinstance(outcomes[0], DuplicateDelivery) and outcomes[1:] == [None, None]
    # The batch's write failed whole (the first position was taken): nothing of it was
    # recorded, then each was processed on its own, exactly once.
    assert app.batches == [3] and app.singles == 2
    assert app.seen(case) == ["a", "b"] and app.seen(elsewhere) == ["c"]
    assert recorded(app, 1, 2, 3) == [True, True, True]
