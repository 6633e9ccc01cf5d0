"""Cross-check: the public events the stores hold against what the stream holds.

A public event is a domain event the service's outbox publishes (its state has
an event_id and its topic is published, see audit.replay.PUBLISHED); it must be
on the stream under the same event id, the same type and the same case, and
every event on the stream must be in its producer's store. Its content must
agree too: the stored domain event is translated as its service's outbox
translates it (services/*/integration.py TRANSLATORS), and every field that
translation sets (and its `occurred_at`) must have the same value on the stream;
a field the translation does not set (a newer contract field) is not compared.

Personal fields are sealed (shared/personal): a store and the stream hold the same
value sealed apart, with different random nonces, so their bytes differ. A sealed
value is compared by its subject key id and a digest of its plaintext when the
audit can open it (the master key file), by its key id alone when it cannot (the
subject was erased, or no key file): the non-personal fields are compared as
before (audit.personal.Opener.comparable). No plaintext reaches the working file.

Memory bound: both sides are written to a temporary SQLite file (event id, type,
case, service) and compared there with SQL; the differences are streamed out.

On a live system an event is recorded a moment before its outbox publishes it,
and the stores are read before the stream: an event recorded (or published)
within the grace period before the check (`grace`, a few minutes by default)
is not reported missing from the other side.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from uuid import UUID

from audit.personal import Opener, opener_for
from audit.replay import StoredRecord, StreamRecord, replay_stores, replay_stream
from audit.settings import AuditSettings
from shared.events import PRODUCERS

DEFAULT_GRACE = timedelta(minutes=5)  # the same as audit.compliance.DEFAULT_GRACE

MISSING_FROM_STREAM = "missing_from_stream"
MISSING_FROM_STORE = "missing_from_store"
MISMATCH = "mismatch"
DIFFERS = "differs"

MESSAGES = {
    MISSING_FROM_STREAM: {
        "ar": "حدث في مخزن الخدمة لم يصل إلى تدفق خدمة",
        "en": "An event in the service's store never reached the KHIDMA stream",
    },
    MISSING_FROM_STORE: {
        "ar": "حدث في تدفق خدمة لا يوجد في مخزن الخدمة المنتجة له",
        "en": "An event on the KHIDMA stream is not in its producer's store",
    },
    MISMATCH: {
        "ar": "الحدث نفسه بنوع أو حالة مختلفة في المخزن والتدفق",
        "en": "The same event id has a different type or case in the store and on the stream",
    },
    DIFFERS: {
        "ar": "محتوى الحدث على التدفق يختلف عما سجّلته الخدمة في مخزنها",
        "en": "The event's content on the stream differs from what its service recorded in its store",
    },
}


@dataclass(frozen=True)
class Difference:
    kind: str
    case_id: str
    case_ref: str
    event_id: str
    event_type: str
    service: str
    detail: str = ""

    @property
    def message(self) -> dict[str, str]:
        return MESSAGES[self.kind]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "message": self.message}


@dataclass
class CrossCheckTotals:
    store_events: int = 0
    stream_events: int = 0
    undecodable_stream: int = 0
    #: events too recent to be missing yet (within the grace period), either side
    within_grace: int = 0
    #: public store events whose content could not be translated, so not compared
    content_not_compared: int = 0


def crosscheck(
    store_records: Iterable[StoredRecord],
    stream_records: Iterable[StreamRecord],
    totals: CrossCheckTotals | None = None,
    *,
    services: Iterable[str] | None = None,
    batch: int = 5000,
    now: datetime | None = None,
    grace: timedelta = DEFAULT_GRACE,
    opener: Opener | None = None,
) -> Iterator[Difference]:
    """Differences between the stores and the stream, ordered by case.

    `opener` compares sealed values by their plaintext's digest (see the module's doc);
    without it, by their subject key ids.

    `services`: the producers whose stores were read; a stream event of another
    producer is not reported missing from a store nobody read. An event recorded
    (store) or that occurred (stream) after `now - grace` is not reported missing
    from the other side: it may be on its way.
    """
    totals = totals if totals is not None else CrossCheckTotals()
    opener = opener or Opener(None)
    moment = now or datetime.now(UTC)
    # Recent: within the grace period before the check, and not after it: an event
    # dated in the future (a clock ahead, or a forgery) is never excused as recent.
    settled = (moment - grace).timestamp(), (moment + grace).timestamp()
    read = set(services) if services is not None else None
    with tempfile.TemporaryDirectory(prefix="khidma-crosscheck-") as folder:
        db = sqlite3.connect(str(Path(folder) / "crosscheck.sqlite"))
        try:
            db.execute("PRAGMA journal_mode=OFF")
            db.execute("PRAGMA cache_size=-16000")
            for table in ("store", "stream"):
                db.execute(
                    f"CREATE TABLE {table} (event_id TEXT, event_type TEXT, case_id TEXT,"
                    " case_ref TEXT, service TEXT, position INT, recent INT, content TEXT)"
                )
            rows: list[tuple[Any, ...]] = []
            for record in store_records:
                if record.published_as is None:
                    continue
                totals.store_events += 1
                content = translated_content(record, opener)
                totals.content_not_compared += content is None
                rows.append(
                    (
                        record.event_id,
                        record.published_as,
                        record.case_id,
                        record.state.get("case_ref") or "",
                        record.service,
                        record.notification_id,
                        _after(record.state.get("timestamp"), settled),
                        content,
                    )
                )
                if len(rows) >= batch:
                    db.executemany("INSERT INTO store VALUES (?,?,?,?,?,?,?,?)", rows)
                    rows.clear()
            db.executemany("INSERT INTO store VALUES (?,?,?,?,?,?,?,?)", rows)
            rows.clear()
            for item in stream_records:
                if item.event is None:
                    totals.undecodable_stream += 1
                    continue
                event = item.event
                totals.stream_events += 1
                rows.append(
                    (
                        str(event.event_id),
                        event.event_type,
                        str(event.case_id),
                        event.case_ref,
                        PRODUCERS.get(event.event_type, "?"),
                        item.sequence,
                        _after(event.occurred_at, settled),
                        event_content(event, opener),
                    )
                )
                if len(rows) >= batch:
                    db.executemany("INSERT INTO stream VALUES (?,?,?,?,?,?,?,?)", rows)
                    rows.clear()
            db.executemany("INSERT INTO stream VALUES (?,?,?,?,?,?,?,?)", rows)
            db.create_function("content_differs", 2, content_differs, deterministic=True)
            db.execute("CREATE INDEX store_id ON store (event_id)")
            db.execute("CREATE INDEX stream_id ON stream (event_id)")
            db.commit()
            totals.within_grace = db.execute(
                "SELECT (SELECT COUNT(*) FROM store s LEFT JOIN stream t ON t.event_id = s.event_id"
                "         WHERE t.event_id IS NULL AND s.recent)"
                " + (SELECT COUNT(*) FROM stream t LEFT JOIN store s ON s.event_id = t.event_id"
                "         WHERE s.event_id IS NULL AND t.recent)"
            ).fetchone()[0]
            query = """
                SELECT 'missing_from_stream', s.case_id, s.case_ref, s.event_id, s.event_type, s.service, ''
                  FROM store s LEFT JOIN stream t ON t.event_id = s.event_id
                 WHERE t.event_id IS NULL AND NOT s.recent
                UNION ALL
                SELECT 'missing_from_store', t.case_id, t.case_ref, t.event_id, t.event_type, t.service, ''
                  FROM stream t LEFT JOIN store s ON s.event_id = t.event_id
                 WHERE s.event_id IS NULL AND NOT t.recent
                UNION ALL
                SELECT 'mismatch', t.case_id, t.case_ref, t.event_id, t.event_type, t.service,
                       'store: ' || s.event_type || ' case ' || s.case_id
                  FROM stream t JOIN store s ON s.event_id = t.event_id
                 WHERE s.event_type != t.event_type OR s.case_id != t.case_id
                UNION ALL
                SELECT 'differs', t.case_id, t.case_ref, t.event_id, t.event_type, t.service,
                       content_differs(s.content, t.content)
                  FROM stream t JOIN store s ON s.event_id = t.event_id
                 WHERE s.event_type = t.event_type AND s.case_id = t.case_id
                   AND content_differs(s.content, t.content) IS NOT NULL
                ORDER BY 2, 4
            """
            for row in db.execute(query):
                difference = Difference(*row)
                if (
                    difference.kind == MISSING_FROM_STORE
                    and read is not None
                    and difference.service not in read
                ):
                    continue
                yield difference
        finally:
            db.close()


def crosscheck_system(
    settings: AuditSettings,
    *,
    nats_url: str | None = None,
    progress: bool | None = False,
    totals: CrossCheckTotals | None = None,
    now: datetime | None = None,
    grace: timedelta = DEFAULT_GRACE,
) -> Iterator[Difference]:
    from audit.replay import available_services

    now = now or datetime.now(UTC)  # before reading: what is recorded later is recent

    nats_url = nats_url or settings.nats_url
    if not nats_url:
        raise ValueError("the cross-check needs KHIDMA_NATS_URL (or --nats-url)")
    return crosscheck(
        replay_stores(settings, progress=progress),
        replay_stream(
            nats_url, progress=progress, user=settings.nats_user, password=settings.nats_password
        ),
        totals,
        services=available_services(settings),
        now=now,
        grace=grace,
        opener=opener_for(settings),
    )


def _after(moment: Any, settled: tuple[float, float]) -> int:
    """1 when `moment` (a datetime or an ISO string) falls in the grace period
    `settled` (timestamps, from and to)."""
    if moment is None:
        return 0
    if not isinstance(moment, datetime):
        moment = datetime.fromisoformat(str(moment))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    since, until = settled
    return int(since < moment.timestamp() <= until)


# --- the content of an event ---------------------------------------------------------

_TRANSLATORS: dict[str, Any] | None = None


def translators() -> dict[str, Any]:
    """Every service's outbox translators, by domain event topic (imported once)."""
    global _TRANSLATORS
    if _TRANSLATORS is None:
        import importlib

        found: dict[str, Any] = {}
        for service in ("intake", "verification", "committee", "surveys"):
            try:
                module = importlib.import_module(f"services.{service}.integration")
            except ImportError:  # an audit deployed without that service's code: not compared
                continue
            found.update(getattr(module, "TRANSLATORS", {}))
        _TRANSLATORS = found
    return _TRANSLATORS


def _content(
    occurred_at: datetime, payload: Any, *, only_set: bool = False, opener: Opener | None = None
) -> str:
    # The store's side keeps the fields its translation sets, defaults included (an
    # unsigned declaration is `attestation: null`, the first revision `revision: 1`), so
    # a stream copy that differs there is caught; the stream's side is whole.
    document = {
        "occurred_at": occurred_at.astimezone(UTC).isoformat(),
        "payload": {
            key: (opener or Opener(None)).comparable(value)
            for key, value in payload.model_dump(mode="json").items()
            if not only_set or key in payload.model_fields_set
        },
    }
    return json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def translated_content(record: StoredRecord, opener: Opener | None = None) -> str | None:
    """The stored event's content as its service's outbox would publish it; None when
    it cannot be translated here (no translator, or a field the translator needs is
    missing): then it is not compared, never reported as different."""
    translate = translators().get(record.topic)
    if translate is None:
        return None
    try:
        event = translate(SimpleNamespace(**record.state, originator_id=UUID(record.originator_id)))
        content = _content(event.occurred_at, event.payload, only_set=True, opener=opener)
    except Exception:  # noqa: BLE001 - any failure means "cannot compare", not "differs"
        return None
    # A field the stored event does not carry was worked out by today's translator for an
    # event recorded before the contract had it (an ineligible rule's explanation from the
    # checks): an older version's outbox published the event without it.
    document = json.loads(content)
    derived = sorted(key for key in document["payload"] if key not in record.state)
    if not derived:
        return content
    document["derived"] = derived
    return json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def event_content(event: Any, opener: Opener | None = None) -> str:
    return _content(event.occurred_at, event.payload, opener=opener)


def content_differs(stored: str | None, published: str | None) -> str | None:
    """Which fields the stream holds differently from the translated store event; None when
    every field the translation sets agrees (or either side could not be read). A field the
    translation derived for an event older than that field is compared only when the
    stream's copy carries a value for it."""
    if stored is None or published is None:
        return None
    mine, theirs = json.loads(stored), json.loads(published)
    problems = []
    if mine["occurred_at"] != theirs["occurred_at"]:
        problems.append(f"occurred_at: store {mine['occurred_at']}, stream {theirs['occurred_at']}")
    derived = set(mine.get("derived", ()))
    for key, value in mine["payload"].items():
        if key in derived and theirs["payload"].get(key) is None:
            continue
        if theirs["payload"].get(key) != value:
            problems.append(
                f"payload.{key}: store {_short(value)}, stream {_short(theirs['payload'].get(key))}"
            )
    return "; ".join(problems) if problems else None


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"
