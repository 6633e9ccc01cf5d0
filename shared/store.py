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
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
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
from shared.chain import chained_process_recorder
from shared.clock import Clock, SystemClock
from shared.personal.mapper import PersonalDataMapper
from shared.personal.sealing import Sealer
from shared.policy import Policies, PolicyPack
from shared.policy_adoption import AdoptedVersionChanged, PolicyAdoptions, adoptions_id
from shared.tracing import commit_span

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


class ServiceApplication(Application):
    """An eventsourcing application whose recorder also records tracking positions.

    Every service's application also holds its clock and the associations'
    policy packs (none for plumbing tests).
    """

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
