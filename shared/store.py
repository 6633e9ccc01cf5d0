"""Each service's own event store, built on the eventsourcing library.

The application uses a process recorder, so that the events a handler records
and the stream position it consumed are written in one transaction. The
recorder also keeps the store's hash chain (shared.chain), written in that same
transaction.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from copy import deepcopy
from typing import Any, ClassVar, TypeVar
from uuid import UUID

from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    LRUCache,
    ProcessingEvent,
    Repository,
    project_aggregate,
)
from eventsourcing.domain import MutableOrImmutableAggregate
from eventsourcing.persistence import (
    EventStore,
    IntegrityError,
    Mapper,
    Notification,
    ProcessRecorder,
    Recording,
    Tracking,
)
from eventsourcing.postgres import PostgresProcessRecorder
from eventsourcing.sqlite import SQLiteRecorder

from shared.access_log import Access
from shared.chain import TRACKINGS, chained_process_recorder, records_trackings
from shared.clock import Clock, SystemClock
from shared.personal.mapper import PersonalDataMapper
from shared.personal.sealing import Sealer
from shared.policy import Policies, PolicyPack
from shared.policy_adoption import AdoptedVersionChanged, PolicyAdoptions, adoptions_id
from shared.tracing import commit_span

log = logging.getLogger(__name__)

T = TypeVar("T")
AppT = TypeVar("AppT", bound="ServiceApplication")

OUTBOX_TRACKING = "outbox:KHIDMA"

# How often a command loads, decides and saves again when other instances sharing
# the store keep saving the same aggregates first (see ServiceApplication.retrying).
MAX_ATTEMPTS = 20


def consumer_tracking_name(stream: str) -> str:
    return f"nats:{stream}"


class TracedEventStore(EventStore[Any]):
    """The library's event store, each write in a `store commit` span (shared/tracing.py)."""

    def put(self, domain_events: Sequence[Any], **kwargs: Any) -> list[Recording[Any]]:
        with commit_span(domain_events):
            return super().put(domain_events, **kwargs)


# The unit of work a batch of consumed messages is handled in, and the repository it
# stands in for, on the store thread only (process_tracked_all).
_WORK: contextvars.ContextVar[tuple[Repository[UUID], UnitOfWork] | None] = contextvars.ContextVar(
    "khidma_unit_of_work", default=None
)


class WorkingRepository(Repository[UUID]):
    """The library's repository, whose `get` answers from a unit of work while one is
    in use (`working_in`): handlers written for one message at a time, which load
    with `repository.get`, then see what the earlier handlers of their batch did."""

    def get(
        self,
        aggregate_id: UUID,
        *,
        version: int | None = None,
        projector_func: Any = project_aggregate,
        **kwargs: Any,
    ) -> Any:
        working = _WORK.get()
        if working is not None and working[0] is self and _latest(version, projector_func):
            return working[1].get(aggregate_id)
        return self.load(aggregate_id, version=version, projector_func=projector_func, **kwargs)

    def load(
        self,
        aggregate_id: UUID,
        *,
        version: int | None = None,
        projector_func: Any = project_aggregate,
        **kwargs: Any,
    ) -> Any:
        """The aggregate as the store holds it, whatever unit of work is in use."""
        return super().get(aggregate_id, version=version, projector_func=projector_func, **kwargs)

    @contextmanager
    def working_in(self, work: UnitOfWork) -> Iterator[None]:
        token = _WORK.set((self, work))
        try:
            yield
        finally:
            _WORK.reset(token)


def _latest(version: int | None, projector_func: Any) -> bool:
    """Whether a `get` asks for the aggregate as it is now (what a unit of work holds)."""
    return version is None and projector_func is project_aggregate


class KeptAggregatesRepository(WorkingRepository):
    """A repository that keeps the aggregates of a few types in memory once loaded.

    A kept aggregate is caught up with what the store holds after its version
    (the events this process saved since, or another instance sharing the store)
    on every `get`, and the caller gets a copy of it: a command's changes reach
    the kept one only through the store, so a save that failed or rolled back
    leaves nothing of itself in memory. The library's own cache
    (`AGGREGATE_CACHE_MAXSIZE`) keeps every type, the cases too, whose personal
    data must not outlive an erasure in memory (docs/decisions.md, 34).
    """

    def __init__(
        self,
        *args: Any,
        kept_types: tuple[type[Any], ...],
        kept_maxsize: int,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.kept_types = kept_types
        self._kept: LRUCache[UUID, Any] = LRUCache(maxsize=kept_maxsize)
        self._kept_lock = threading.Lock()

    def load(
        self,
        aggregate_id: UUID,
        *,
        version: int | None = None,
        projector_func: Any = project_aggregate,
        **kwargs: Any,
    ) -> Any:
        if not _latest(version, projector_func):
            return super().load(aggregate_id, version=version, projector_func=projector_func)
        with self._kept_lock:
            try:
                kept = self._kept.get(aggregate_id)
            except KeyError:
                aggregate: Any = super().load(aggregate_id)
                if isinstance(aggregate, self.kept_types):
                    self._kept.put(aggregate_id, deepcopy(aggregate))
                return aggregate
            try:
                kept = project_aggregate(
                    kept, self.event_store.get(originator_id=aggregate_id, gt=kept.version)
                )
            except BaseException:
                self._kept.get(aggregate_id, evict=True)
                raise
            return deepcopy(kept)


class UnitOfWork:
    """The aggregates a batch of commands loads and changes, saved together at the end.

    Each command runs in `command()`: what it loads or stages is its own until it
    returns; if it raises, all of it is forgotten, so one refused command leaves
    no trace in the batch, and a later command sees exactly what the earlier
    successful ones left (the same aggregate objects' state, pending events
    included), as it would have seen it in the store had they been saved one by one.
    """

    def __init__(self, load: Callable[[UUID], Any]):
        self._load = load
        self._done: dict[UUID, Any] = {}
        self._current: dict[UUID, Any] | None = None

    def get(self, aggregate_id: UUID) -> Any:
        """The aggregate as the batch left it so far (loaded from the store at first)."""
        current = self._in_command()
        if aggregate_id in current:
            return current[aggregate_id]
        done = self._done.get(aggregate_id)
        # A copy, so that a command that fails cannot spoil what the earlier ones did;
        # their pending events are immutable and shared, not copied.
        aggregate = _copy_aggregate(done) if done is not None else self._load(aggregate_id)
        current[aggregate_id] = aggregate
        return aggregate

    def stage(self, *aggregates: MutableOrImmutableAggregate[UUID]) -> None:
        """New or changed aggregates to save with the batch."""
        current = self._in_command()
        for aggregate in aggregates:
            current[aggregate.id] = aggregate

    @contextmanager
    def command(self) -> Iterator[None]:
        if self._current is not None:
            raise RuntimeError("a command is already running in this unit of work")
        self._current = {}
        try:
            yield
            self._done.update(self._current)
        finally:
            self._current = None

    def aggregates(self) -> list[Any]:
        """Everything the successful commands loaded or staged, in their order."""
        return list(self._done.values())

    def _in_command(self) -> dict[UUID, Any]:
        if self._current is None:
            raise RuntimeError("outside a command of the unit of work")
        return self._current


def _copy_aggregate(aggregate: Any) -> Any:
    memo: dict[int, Any] = {id(event): event for event in aggregate.pending_events}
    return deepcopy(aggregate, memo)


class ServiceApplication(Application):
    """An eventsourcing application whose recorder also records tracking positions.

    Every service's application also holds its clock and the associations'
    policy packs (none for plumbing tests). The aggregates of `kept_aggregates`
    are kept in memory once loaded (KeptAggregatesRepository).
    """

    kept_aggregates: ClassVar[tuple[type[Any], ...]] = ()
    kept_maxsize: ClassVar[int] = 10_000

    def __init__(
        self,
        env: dict[str, str] | None = None,
        clock: Clock | None = None,
        packs: Mapping[str, PolicyPack] | None = None,
        sealer: Sealer | None = None,
    ):
        # Before the library builds the mapper, which seals personal attributes with it.
        self.sealer = sealer
        super().__init__(env)
        self.clock: Clock = clock or SystemClock()
        # As a mapping, the version of each association's policy in force at this
        # application's clock; each case keeps the version it was received under.
        self.packs: Policies = Policies.of(packs).bound_to(self.clock.now)

    def adopt_policies(self) -> list[tuple[str, int]]:
        """Records each policy version this service sees for the first time (the record
        replay reads); the (association, version) pairs newly adopted.

        Raises AdoptedVersionChanged when an adopted version's file was edited since.
        """

        def adopt(association_id: str, versions: tuple[PolicyPack, ...]) -> list[int]:
            try:
                record: PolicyAdoptions = self.repository.get(adoptions_id(association_id))
            except AggregateNotFoundError:
                record = PolicyAdoptions(association_id)
            now = self.clock.now()
            adopted = [pack.number for pack in versions if record.adopt(pack, now)]
            if adopted:
                self.save(record)
            return adopted

        newly: list[tuple[str, int]] = []
        for association_id, history in self.packs.histories.items():
            numbers = self.retrying(
                functools.partial(adopt, association_id, history.versions), "the policy's adoption"
            )
            newly.extend((association_id, number) for number in numbers)
        return newly

    def adopted_versions(self, association_id: str) -> dict[int, Any]:
        """The versions of the association this service adopted, by number: when, and what."""
        try:
            record: PolicyAdoptions = self.repository.get(adoptions_id(association_id))
        except AggregateNotFoundError:
            return {}
        return {int(number): adopted for number, adopted in record.versions.items()}

    def construct_mapper(self) -> Mapper[Any]:
        # Personal attributes are sealed before anything is written (shared/personal).
        base = super().construct_mapper()
        return PersonalDataMapper(base, self.sealer) if self.sealer else base

    def construct_event_store(self) -> EventStore[Any]:
        return TracedEventStore(mapper=self.mapper, recorder=self.recorder)

    def construct_repository(self) -> Repository[UUID]:
        if not self.kept_aggregates:
            # No library cache (decision 34), so its options have nothing to set.
            return WorkingRepository(event_store=self.events, snapshot_store=self.snapshots)
        return KeptAggregatesRepository(
            event_store=self.events,
            snapshot_store=self.snapshots,
            kept_types=self.kept_aggregates,
            kept_maxsize=self.kept_maxsize,
        )

    def construct_recorder(self) -> ProcessRecorder:
        # The process recorder, extended so that every recorded event is also
        # appended to the store's hash chain in the same transaction (tamper
        # evidence; see shared/chain.py and docs/decisions.md).
        return chained_process_recorder(self.factory)

    @property
    def process_recorder(self) -> ProcessRecorder:
        recorder = self.recorder
        assert isinstance(recorder, ProcessRecorder)
        return recorder

    def record_access(
        self, actor: dict[str, Any], association_id: str, what: str, record_id: str
    ) -> None:
        """Logs one read of a record (shared/access_log.py), at the application's clock."""
        self.save(
            Access(
                actor=actor,
                association_id=association_id,
                what=what,
                record_id=record_id,
                at=self.clock.now(),
            )
        )

    def record_processing(self, processing: ProcessingEvent) -> None:
        """Writes a handler's new events together with the position it consumed."""
        self.events.put(processing.events, tracking=processing.tracking)

    def record_processings(self, processings: Sequence[ProcessingEvent]) -> None:
        """Writes the new events of many handlers, in their order, and every position
        they consumed, in one transaction (a row each)."""
        if not records_trackings(self.process_recorder):
            raise TypeError(f"a {type(self.recorder).__name__} records one tracking at a time")
        events = [event for processing in processings for event in processing.events]
        self.events.put(events, **{TRACKINGS: [p.tracking for p in processings]})

    @property
    def working_repository(self) -> WorkingRepository:
        repository = self.repository
        if not isinstance(repository, WorkingRepository):
            raise TypeError(f"a {type(repository).__name__} cannot answer from a unit of work")
        return repository

    def position_recorded(self, tracking: Tracking) -> bool:
        """Whether this exact position was recorded (not just a greater one)."""
        return position_recorded(self.process_recorder, tracking)

    def read_notifications(
        self, after: int, limit: int, topics: Sequence[str] = ()
    ) -> Sequence[Notification]:
        return self.recorder.select_notifications(
            start=after, limit=limit, topics=topics, inclusive_of_start=False
        )

    def max_notification_id(self) -> int:
        return self.recorder.max_notification_id() or 0

    def retrying(self, command: Callable[[], T], what: str) -> T:
        """Runs a command (load, decide, save) again when it lost a race for the store.

        A service's instances share its store: another one may save the same
        aggregate (or take the same unique index) between this command's load
        and its save. The store then refuses the stale save (IntegrityError) and
        writes nothing of it; the command reloads and its rules judge the state
        as it now is, instead of the caller seeing a conflict it did not cause.
        After MAX_ATTEMPTS lost races: RuntimeError, "could not record {what}".
        """
        for _ in range(MAX_ATTEMPTS):
            try:
                return command()
            except IntegrityError:
                continue
        raise RuntimeError(f"could not record {what}: too much contention")


def prepare_postgres_schema(env: dict[str, str]) -> None:
    """Creates the service's schema: eventsourcing creates tables, not schemas."""
    import psycopg

    with psycopg.connect(
        host=env["POSTGRES_HOST"],
        port=int(env["POSTGRES_PORT"]),
        dbname=env["POSTGRES_DBNAME"],
        user=env["POSTGRES_USER"],
        password=env["POSTGRES_PASSWORD"] or None,
        autocommit=True,
    ) as connection:
        connection.execute(
            psycopg.sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                psycopg.sql.Identifier(env["POSTGRES_SCHEMA"])
            )
        )


def open_application(cls: type[AppT], env: dict[str, str], **kwargs: Any) -> AppT:
    """Builds a service's application on the store its environment names, and records
    the policy versions it sees for the first time; an adopted version whose file was
    edited since stops it (exit code 2)."""
    if env.get("PERSISTENCE_MODULE") == "eventsourcing.postgres":
        prepare_postgres_schema(env)
    app = cls(env=env, **kwargs)
    try:
        app.adopt_policies()
    except AdoptedVersionChanged as error:
        print(f"{cls.name}: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    return app


class DuplicateDelivery(Exception):
    """The consumed position was already recorded: the message had its effect."""


def process_tracked(
    app: ServiceApplication,
    tracking: Tracking,
    handle: Callable[[ProcessingEvent], None],
) -> None:
    """Runs a handler and records its events with the position, exactly once.

    Raises DuplicateDelivery when the position was already recorded, before or
    during the write (another instance may have won the race).
    """
    if app.position_recorded(tracking):
        raise DuplicateDelivery(tracking)
    processing: ProcessingEvent[Any] = ProcessingEvent(tracking=tracking)
    handle(processing)
    try:
        app.record_processing(processing)
    except IntegrityError:
        if app.position_recorded(tracking):
            raise DuplicateDelivery(tracking) from None
        raise


Handle = Callable[[ProcessingEvent], None]


class _NotBatchable(Exception):
    """A handler collected an event of no aggregate it handed over: a later handler of
    the batch could not see it, so the batch is recorded one message at a time."""


def process_tracked_all(
    app: ServiceApplication, items: Sequence[tuple[Tracking, Handle]]
) -> list[Exception | None]:
    """Runs the handlers of a batch of consumed messages in their order and records
    all their events and positions in one transaction (docs/decisions.md, 39).

    One outcome per message: None when recorded, DuplicateDelivery when its position
    already was, or what its handler raised (it recorded nothing, and changed
    nothing the later ones saw). When the batch cannot be recorded (another
    instance recorded one of its positions first, a store error) nothing of it
    is, and each message is processed again on its own (process_tracked).
    """
    if len(items) > 1:
        try:
            return _process_together(app, items)
        except Exception:  # nothing was recorded: one by one, below
            log.warning(
                "a batch of %d messages could not be recorded together; recording them one by one",
                len(items),
                exc_info=True,
            )
    return [_process_alone(app, tracking, handle) for tracking, handle in items]


def _process_alone(app: ServiceApplication, tracking: Tracking, handle: Handle) -> Exception | None:
    try:
        process_tracked(app, tracking, handle)
    except Exception as error:  # noqa: BLE001 — this message's outcome alone
        return error
    return None


def _process_together(
    app: ServiceApplication, items: Sequence[tuple[Tracking, Handle]]
) -> list[Exception | None]:
    """Each handler in a command of one unit of work, then one write. Raises (and
    records nothing) when the write fails."""
    repository = app.working_repository
    work = UnitOfWork(repository.load)
    outcomes: list[Exception | None] = []
    recorded: list[ProcessingEvent[Any]] = []
    with repository.working_in(work):
        for tracking, handle in items:
            if app.position_recorded(tracking):
                outcomes.append(DuplicateDelivery(tracking))
                continue
            processing: ProcessingEvent[Any] = ProcessingEvent(tracking=tracking)
            try:
                with work.command():
                    handle(processing)
                    # What it collected, new aggregates too, is what the next ones load.
                    work.stage(*processing.aggregates.values())
            except Exception as error:  # noqa: BLE001 — this message's outcome alone
                outcomes.append(error)
                continue
            if any(e.originator_id not in processing.aggregates for e in processing.events):
                raise _NotBatchable(tracking)
            recorded.append(processing)
            outcomes.append(None)
    if recorded:
        app.record_processings(recorded)
    return outcomes


def position_recorded(recorder: ProcessRecorder, tracking: Tracking) -> bool:
    # By class, not by the recorder's module: the recorders are subclassed
    # (shared.chain) to keep the hash chain.
    datastore: Any
    if isinstance(recorder, SQLiteRecorder):
        datastore = recorder.datastore
        statement = "SELECT 1 FROM tracking WHERE application_name=? AND notification_id=?"
    elif isinstance(recorder, PostgresProcessRecorder):
        datastore = recorder.datastore
        table = f'"{datastore.schema}"."{recorder.tracking_table_name}"'
        statement = f"SELECT 1 FROM {table} WHERE application_name=%s AND notification_id=%s"
    else:
        raise TypeError(f"no tracking table to read in a {type(recorder).__name__}")
    with datastore.transaction(commit=False) as cursor:
        cursor.execute(statement, (tracking.application_name, tracking.notification_id))
        return cursor.fetchone() is not None


class StoreRunner:
    """Runs store calls on one worker thread, off the event loop.

    One thread per process serialises the writes of that process (the stores
    serialise them anyway) and keeps the asyncio loop free for I/O.
    """

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        # The caller's context goes with the call, so that log lines written on
        # the store thread carry the case and correlation ids.
        context = contextvars.copy_context()
        return await loop.run_in_executor(
            self._executor, context.run, functools.partial(fn, *args, **kwargs)
        )

    def close(self) -> None:
        self._executor.shutdown(wait=True)
