"""Each case's full timeline across the services, rebuilt from events only.

Sources: the services' own stores (every domain event, public or internal) and,
separately, the KHIDMA stream (the integration events). Each entry says what
happened, in which service, from which source, who did it, through which
channel, when (Hijri and Gregorian) and what caused it (the causing event).

Memory bound: the sources are read as generators and interleave the cases; the
entries are written to a temporary SQLite file, then read back ordered by case
and time, so at most one case's entries (plus SQLite's page cache, capped at
about 16 MB) are in memory at once, whatever the length of the history.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from audit.personal import Opener, opener_for
from audit.replay import (
    StoredRecord,
    StreamRecord,
    available_services,
    replay_stores,
    replay_stream,
)
from audit.settings import AuditSettings
from shared.dates import both_calendars
from shared.subjects import case_filter

SOURCE_STORE = "store"
SOURCE_STREAM = "stream"
# The events that name a revision of the request (shared.events: payload.revision).
REVISED_EVENTS = frozenset({"RequestReceived", "DataVerified"})

# Which time field of a domain event says when it happened (else: when recorded).
TIME_FIELDS = (
    "at",
    "confirmed_at",
    "decided_at",
    "closed_at",
    "answered_at",
    "invited_at",
    "sent_at",
    "held_at",
    "recused_at",
    "cast_at",
)
# Who acted, by the field that names them in a domain event.
ACTOR_FIELDS = (
    ("officer", "officer"),
    ("referred_by", "officer"),
    ("delivered_by", "officer"),
    ("researcher", "researcher"),
    ("member", "committee"),
)
CAUSE_FIELDS = (
    "causation_id",
    "source_event_id",
    "referral_event_id",
    "decision_event_id",
    "request_event_id",
)
# The privacy service's event: a data subject's keys were destroyed.
ERASED_EVENT = "PersonalDataErased"
ERASURES_SUBJECT = f"khidma.*.*.{ERASED_EVENT}"
# Which service produces each integration event (shared.events.PRODUCERS).
from shared.events import PRODUCERS


@dataclass
class TimelineEntry:
    case_id: str
    service: str
    source: str  # "store" or "stream"
    name: str  # domain event name (store) or integration event type (stream)
    occurred_at: datetime
    event_id: str | None = None
    published_as: str | None = None  # the integration event type of a public store event
    recorded_at: datetime | None = None
    actor: dict[str, str] | None = None
    channel: str | None = None
    causation_id: str | None = None
    correlation_id: str | None = None
    case_ref: str | None = None
    association_id: str | None = None
    position: int = 0  # notification id (store) or stream sequence (stream)
    data: dict[str, Any] = field(default_factory=dict)
    caused_by: dict[str, Any] | None = None

    @property
    def event_type(self) -> str:
        """The integration event type when public, else the domain event name."""
        if self.source == SOURCE_STREAM:
            return self.name
        return self.published_as or self.name

    @property
    def revision(self) -> int | None:
        """The request revision a RequestReceived carries or a DataVerified verified.

        A request is published again, whole, with the next revision after the
        applicant corrects it; events from before revisions existed are revision 1.
        None for the other events.
        """
        if self.event_type not in REVISED_EVENTS:
            return None
        try:
            return int(self.data.get("revision") or 1)
        except (TypeError, ValueError):
            return 1

    def to_json(self) -> str:
        # A shallow dict (dataclasses.asdict deep-copies: several times slower).
        document = {name: getattr(self, name) for name in _ENTRY_FIELDS}
        return json.dumps(document, default=_json_default, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> TimelineEntry:
        document = json.loads(text)
        document["occurred_at"] = _parse_time(document["occurred_at"])
        if document.get("recorded_at"):
            document["recorded_at"] = _parse_time(document["recorded_at"])
        return cls(**document)

    def describe(self) -> dict[str, Any]:
        """The entry as a person reads it: both calendars, who, channel, cause."""
        return {
            "event_type": self.event_type,
            "name": self.name,
            "service": self.service,
            "source": self.source,
            "event_id": self.event_id,
            "revision": self.revision,
            "when": both_calendars(self.occurred_at),
            "actor": self.actor,
            "channel": self.channel,
            "causation_id": self.causation_id,
            "caused_by": (
                {**self.caused_by, "at": both_calendars(_parse_time(self.caused_by["at"]))}
                if self.caused_by
                else None
            ),
            "correlation_id": self.correlation_id,
            "position": self.position,
            "data": _jsonable(self.data),
        }


_ENTRY_FIELDS = tuple(f.name for f in fields(TimelineEntry))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, UUID):
        return str(value)
    return str(value)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=_json_default, ensure_ascii=False))


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        moment = value
    else:
        moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _sort_key(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def entry_from_store(record: StoredRecord) -> TimelineEntry | None:
    """A store event as a timeline entry; None for events that are not a case's."""
    case_id = record.case_id
    if case_id is None:
        return None
    state = record.state
    recorded_at = _parse_time(state["timestamp"]) if state.get("timestamp") else None
    fields = TIME_FIELDS + (("submitted_at",) if record.name == "Submitted" else ())
    occurred_at = (
        next((_parse_time(state[key]) for key in fields if state.get(key)), None)
        or recorded_at
        or datetime.fromtimestamp(0, UTC)
    )
    return TimelineEntry(
        case_id=case_id,
        service=record.service,
        source=SOURCE_STORE,
        name=f"{record.aggregate}.{record.name}",
        occurred_at=occurred_at,
        event_id=record.event_id,
        published_as=record.published_as,
        recorded_at=recorded_at,
        actor=_store_actor(record),
        channel=state.get("channel"),
        causation_id=next((str(state[k]) for k in CAUSE_FIELDS if state.get(k)), None),
        correlation_id=str(state["correlation_id"]) if state.get("correlation_id") else None,
        case_ref=state.get("case_ref"),
        association_id=state.get("association_id"),
        position=record.notification_id,
        data={k: v for k, v in state.items() if k not in ("timestamp", "originator_topic")},
    )


def _actor(kind: Any, id: Any, name: Any = None, role: Any = None) -> dict[str, str]:
    """The recorded actor: kind and id, and the principal's name and role when the
    event has them (events recorded before identities were proven do not)."""
    actor = {"kind": str(kind), "id": str(id)}
    if name:
        actor["name"] = str(name)
    if role:
        actor["role"] = str(role)
    return actor


def hijri_text(when: dict[str, Any]) -> str:
    """A line's Hijri day, or its Gregorian day beyond the Hijri table (shared.dates)."""
    return f"{when['hijri']} هـ" if when.get("hijri") else str(when["gregorian"])


def actor_text(actor: dict[str, Any]) -> str:
    """Who: kind and id, and the principal's name and role when recorded."""
    text = f"{actor.get('kind', '')}:{actor.get('id', '')}"
    if actor.get("name") and actor.get("name") != actor.get("id"):
        text += f" {actor['name']}"
    if actor.get("role"):
        text += f" [{actor['role']}]"
    return text


def _store_actor(record: StoredRecord) -> dict[str, str]:
    state = record.state
    if isinstance(state.get("actor"), dict):
        recorded = state["actor"]
        return _actor(
            recorded.get("kind"), recorded.get("id"), recorded.get("name"), recorded.get("role")
        )
    for key, kind in ACTOR_FIELDS:
        if state.get(key):
            return {"kind": kind, "id": str(state[key])}
    if record.published_as == "CommitteeDecided":
        return {"kind": "committee", "id": "committee"}
    if record.published_as == "SurveyAnswered":
        anonymous = state.get("anonymous", True)
        return {"kind": "applicant", "id": "anonymous" if anonymous else str(state.get("case_ref"))}
    return {"kind": "system", "id": record.service}


def entry_from_stream(record: StreamRecord) -> TimelineEntry | None:
    event = record.event
    if event is None:
        return None
    payload = event.payload.model_dump(mode="json")
    return TimelineEntry(
        case_id=str(event.case_id),
        service=PRODUCERS.get(event.event_type, "?"),
        source=SOURCE_STREAM,
        name=event.event_type,
        occurred_at=event.occurred_at,
        event_id=str(event.event_id),
        published_as=event.event_type,
        actor=_actor(event.actor.kind, event.actor.id, event.actor.name, event.actor.role),
        channel=payload.get("channel"),
        causation_id=str(event.causation_id) if event.causation_id else None,
        correlation_id=str(event.correlation_id),
        case_ref=event.case_ref,
        association_id=event.association_id,
        position=record.sequence,
        data=payload,
    )


@dataclass
class Fact:
    """One public event of a case, whichever source(s) hold it."""

    event_type: str
    event_id: str
    occurred_at: datetime
    data: dict[str, Any]
    sources: tuple[str, ...]
    #: who did it, as recorded (the stream's actor, the published contract, first)
    actor: dict[str, str] | None = None


@dataclass
class CaseTimeline:
    case_id: str
    entries: list[TimelineEntry]
    #: which services' stores were replayed (a missing event there is meaningful)
    stores_read: frozenset[str] = frozenset()
    stream_read: bool = False
    case_ref: str = ""
    association_id: str = ""
    channel: str | None = None
    service_code: str | None = None

    def __post_init__(self) -> None:
        self.entries.sort(key=lambda e: (e.occurred_at, e.source != SOURCE_STORE, e.position))
        for entry in self.entries:
            self.case_ref = self.case_ref or entry.case_ref or ""
            self.association_id = self.association_id or entry.association_id or ""
            if self.channel is None and entry.name in (
                "Case.Submitted",
                "Case.Completed",
                "RequestReceived",
            ):
                self.channel = entry.data.get("channel")
            if self.service_code is None and entry.data.get("service_code"):
                self.service_code = entry.data.get("service_code")
        by_id = {e.event_id: e for e in self.entries if e.event_id}
        for entry in self.entries:
            if entry.channel is None:
                entry.channel = self.channel
            cause = by_id.get(entry.causation_id or "")
            if cause is not None:
                entry.caused_by = {
                    "event_id": cause.event_id,
                    "event_type": cause.event_type,
                    "service": cause.service,
                    "at": cause.occurred_at.isoformat(),
                }

    # --- what the checks read -------------------------------------------------
    def store_events(self, service: str, name: str | None = None) -> list[TimelineEntry]:
        return [
            e
            for e in self.entries
            if e.source == SOURCE_STORE
            and e.service == service
            and (name is None or e.name == name)
        ]

    def facts(self, event_type: str) -> list[Fact]:
        """The case's public events of a type, from the stream and the stores, once each."""
        found: dict[str, Fact] = {}
        for entry in self.entries:
            if entry.event_type != event_type or not entry.event_id:
                continue
            known = found.get(entry.event_id)
            if known is None:
                found[entry.event_id] = Fact(
                    event_type,
                    entry.event_id,
                    entry.occurred_at,
                    dict(entry.data),
                    (entry.source,),
                    entry.actor,
                )
            else:
                # The stream's payload is the published contract; the store adds fields.
                merged = (
                    {**entry.data, **known.data}
                    if entry.source == SOURCE_STORE
                    else {**known.data, **entry.data}
                )
                known.data = merged
                if entry.source == SOURCE_STREAM or known.actor is None:
                    known.actor = entry.actor or known.actor
                known.sources = tuple(sorted({*known.sources, entry.source}))
        return sorted(found.values(), key=lambda f: f.occurred_at)

    def has_store(self, service: str) -> bool:
        return service in self.stores_read

    def describe(self) -> dict[str, Any]:
        first = self.entries[0].occurred_at if self.entries else None
        return {
            "case_id": self.case_id,
            "case_ref": self.case_ref,
            "association_id": self.association_id,
            "channel": self.channel,
            "service_code": self.service_code,
            "first_event": both_calendars(first) if first else None,
            "sources": {"stores": sorted(self.stores_read), "stream": self.stream_read},
            "events": [entry.describe() for entry in self.entries],
        }


def group_by_case(
    entries: Iterable[TimelineEntry],
    *,
    stores_read: Iterable[str] = (),
    stream_read: bool = False,
    batch: int = 5000,
    opener: Opener | None = None,
) -> Iterator[CaseTimeline]:
    """Groups interleaved entries by case through a temporary SQLite file.

    The file holds the entries as the sources hold them (personal values sealed);
    `opener` opens them as each case is read back, in memory (audit.personal):
    plaintext, or "erased" / "sealed". Without it sealed values stay as they are."""
    stores = frozenset(stores_read)
    with tempfile.TemporaryDirectory(prefix="khidma-audit-") as folder:
        connection = sqlite3.connect(str(Path(folder) / "timeline.sqlite"))
        try:
            connection.execute("PRAGMA journal_mode=OFF")
            connection.execute("PRAGMA synchronous=OFF")
            connection.execute("PRAGMA cache_size=-16000")
            connection.execute(
                "CREATE TABLE entry (case_id TEXT, at TEXT, source INT, position INT, doc TEXT)"
            )
            rows: list[tuple[str, str, int, int, str]] = []
            for entry in entries:
                rows.append(
                    (
                        entry.case_id,
                        _sort_key(entry.occurred_at),
                        0 if entry.source == SOURCE_STORE else 1,
                        entry.position,
                        entry.to_json(),
                    )
                )
                if len(rows) >= batch:
                    connection.executemany("INSERT INTO entry VALUES (?,?,?,?,?)", rows)
                    rows.clear()
            if rows:
                connection.executemany("INSERT INTO entry VALUES (?,?,?,?,?)", rows)
            connection.execute("CREATE INDEX entry_order ON entry (case_id, at, source, position)")
            connection.commit()
            current: str | None = None
            bucket: list[TimelineEntry] = []
            cursor = connection.execute(
                "SELECT case_id, doc FROM entry ORDER BY case_id, at, source, position"
            )
            for case_id, doc in cursor:
                if case_id != current and bucket:
                    yield CaseTimeline(current or "", bucket, stores, stream_read)
                    bucket = []
                current = case_id
                entry = TimelineEntry.from_json(doc)
                if opener is not None:
                    entry.data = opener.shown(entry.data)
                bucket.append(entry)
            if bucket:
                yield CaseTimeline(current or "", bucket, stores, stream_read)
        finally:
            connection.close()


def store_entries(
    settings: AuditSettings, *, progress: bool | None = False, case_id: str | None = None
) -> Iterator[TimelineEntry]:
    for record in replay_stores(settings, progress=progress):
        entry = entry_from_store(record)
        if entry is not None and (case_id is None or entry.case_id == case_id):
            yield entry


def stream_entries(
    nats_url: str,
    *,
    progress: bool | None = False,
    case_id: str | None = None,
    user: str | None = None,
    password: str | None = None,
    tap: Callable[[Any], None] | None = None,
) -> Iterator[TimelineEntry]:
    """The stream's entries; `tap`, when given, also sees every event as it is read
    (the board report's figures, in the same pass)."""
    subject = case_filter(case_id) if case_id else "khidma.*.*.*"
    for record in replay_stream(
        nats_url, subject=subject, progress=progress, user=user, password=password
    ):
        if tap is not None and record.event is not None:
            tap(record.event)
        if record.event is not None and record.event.event_type == ERASED_EVENT:
            yield from erasure_entries(record, case_id)
            continue
        entry = entry_from_stream(record)
        if entry is not None:
            yield entry
    if case_id:
        # The erasures are not on the case's subject (see erasure_entries).
        for record in replay_stream(
            nats_url,
            subject=ERASURES_SUBJECT,
            progress=False,
            idle_timeout=1.0,  # when there is none, the wait for one
            user=user,
            password=password,
        ):
            if record.event is not None:
                yield from erasure_entries(record, case_id)


def erasure_entries(record: StreamRecord, case_id: str | None = None) -> Iterator[TimelineEntry]:
    """A PersonalDataErased is no case's own event (its case id is the erasure's): it is
    shown in the timeline of each case whose data it erased (`payload.case_ids`)."""
    entry = entry_from_stream(record)
    if entry is None:
        return
    for erased in entry.data.get("case_ids") or ():
        if case_id is None or str(erased) == case_id:
            yield TimelineEntry(**{**vars(entry), "case_id": str(erased), "case_ref": None})


def case_timelines(
    settings: AuditSettings,
    *,
    stores: bool = True,
    stream: bool = False,
    nats_url: str | None = None,
    progress: bool | None = False,
    case_id: str | None = None,
    opener: Opener | None = None,
    tap: Callable[[Any], None] | None = None,
) -> Iterator[CaseTimeline]:
    """Every case's timeline from the stores and/or the stream; personal values opened
    with the deployment's keyring (`opener`, default audit.personal.opener_for).
    `tap` sees every stream event as it is read (`stream_entries`)."""
    nats_url = nats_url or settings.nats_url
    if stream and not nats_url:
        raise ValueError("the stream needs KHIDMA_NATS_URL (or --nats-url)")

    def entries() -> Iterator[TimelineEntry]:
        if stores:
            yield from store_entries(settings, progress=progress, case_id=case_id)
        if stream:
            assert nats_url
            yield from stream_entries(
                nats_url,
                progress=progress,
                case_id=case_id,
                user=settings.nats_user,
                password=settings.nats_password,
                tap=tap,
            )

    return group_by_case(
        entries(),
        stores_read=available_services(settings) if stores else (),
        stream_read=stream,
        opener=opener or opener_for(settings),
    )


def case_timelines_from_stream(
    nats_url: str,
    *,
    progress: bool | None = False,
    user: str | None = None,
    password: str | None = None,
    tap: Callable[[Any], None] | None = None,
) -> Iterator[CaseTimeline]:
    """Every case's timeline from the KHIDMA stream alone (`tap`: see `stream_entries`)."""
    return group_by_case(
        stream_entries(nats_url, progress=progress, user=user, password=password, tap=tap),
        stream_read=True,
    )


def case_timelines_from_stores(
    settings: AuditSettings, *, progress: bool | None = False
) -> Iterator[CaseTimeline]:
    """Every case's timeline from the services' stores alone."""
    return case_timelines(settings, stores=True, stream=False, progress=progress)


def resolve_case_id(
    settings: AuditSettings, key: str, *, nats_url: str | None = None
) -> str | None:
    """A case id from a case id or a case reference (e.g. SDR-1448-000001)."""
    try:
        return str(UUID(key))
    except ValueError:
        pass
    for record in replay_stores(settings):
        if record.state.get("case_ref") == key and record.case_id:
            return record.case_id
    nats_url = nats_url or settings.nats_url
    if nats_url:
        for stream_record in replay_stream(
            nats_url, user=settings.nats_user, password=settings.nats_password
        ):
            if stream_record.event is not None and stream_record.event.case_ref == key:
                return str(stream_record.event.case_id)
    return None


def case_timeline(
    settings: AuditSettings,
    key: str,
    *,
    stores: bool = True,
    stream: bool = False,
    nats_url: str | None = None,
) -> CaseTimeline | None:
    """One case's timeline, by case id or case reference."""
    case_id = resolve_case_id(settings, key, nats_url=nats_url)
    if case_id is None:
        return None
    for timeline in case_timelines(
        settings, stores=stores, stream=stream, nats_url=nats_url, case_id=case_id
    ):
        return timeline
    return None
