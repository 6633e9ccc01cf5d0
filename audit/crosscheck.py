"""Cross-check: the public events the stores hold against what the stream holds.

A public event is a domain event the service's outbox publishes (its state has
an event_id and its topic is published, see audit.replay.PUBLISHED); it must be
on the stream under the same event id, the same type and the same case, and
every event on the stream must be in its producer's store.

Memory bound: both sides are written to a temporary SQLite file (event id, type,
case, service) and compared there with SQL; the differences are streamed out.
"""

from __future__ import annotations

import sqlite3
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from audit.replay import StoredRecord, StreamRecord, replay_stores, replay_stream
from audit.settings import AuditSettings
from shared.events import PRODUCERS

MISSING_FROM_STREAM = "missing_from_stream"
MISSING_FROM_STORE = "missing_from_store"
MISMATCH = "mismatch"

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


def crosscheck(
    store_records: Iterable[StoredRecord],
    stream_records: Iterable[StreamRecord],
    totals: CrossCheckTotals | None = None,
    *,
    services: Iterable[str] | None = None,
    batch: int = 5000,
) -> Iterator[Difference]:
    """Differences between the stores and the stream, ordered by case.

    `services`: the producers whose stores were read; a stream event of another
    producer is not reported missing from a store nobody read.
    """
    totals = totals if totals is not None else CrossCheckTotals()
    read = set(services) if services is not None else None
    with tempfile.TemporaryDirectory(prefix="khidma-crosscheck-") as folder:
        db = sqlite3.connect(str(Path(folder) / "crosscheck.sqlite"))
        try:
            db.execute("PRAGMA journal_mode=OFF")
            db.execute("PRAGMA cache_size=-16000")
            for table in ("store", "stream"):
                db.execute(
                    f"CREATE TABLE {table} (event_id TEXT, event_type TEXT, case_id TEXT,"
                    " case_ref TEXT, service TEXT, position INT)"
                )
            rows: list[tuple[Any, ...]] = []
            for record in store_records:
                if record.published_as is None:
                    continue
                totals.store_events += 1
                rows.append((record.event_id, record.published_as, record.case_id,
                             record.state.get("case_ref") or "", record.service, record.notification_id))
                if len(rows) >= batch:
                    db.executemany("INSERT INTO store VALUES (?,?,?,?,?,?)", rows)
                    rows.clear()
            db.executemany("INSERT INTO store VALUES (?,?,?,?,?,?)", rows)
            rows.clear()
            for item in stream_records:
                if item.event is None:
                    totals.undecodable_stream += 1
                    continue
                event = item.event
                totals.stream_events += 1
                rows.append((str(event.event_id), event.event_type, str(event.case_id), event.case_ref,
                             PRODUCERS.get(event.event_type, "?"), item.sequence))
                if len(rows) >= batch:
                    db.executemany("INSERT INTO stream VALUES (?,?,?,?,?,?)", rows)
                    rows.clear()
            db.executemany("INSERT INTO stream VALUES (?,?,?,?,?,?)", rows)
            db.execute("CREATE INDEX store_id ON store (event_id)")
            db.execute("CREATE INDEX stream_id ON stream (event_id)")
            db.commit()
            query = """
                SELECT 'missing_from_stream', s.case_id, s.case_ref, s.event_id, s.event_type, s.service, ''
                  FROM store s LEFT JOIN stream t ON t.event_id = s.event_id
                 WHERE t.event_id IS NULL
                UNION ALL
                SELECT 'missing_from_store', t.case_id, t.case_ref, t.event_id, t.event_type, t.service, ''
                  FROM stream t LEFT JOIN store s ON s.event_id = t.event_id
                 WHERE s.event_id IS NULL
                UNION ALL
                SELECT 'mismatch', t.case_id, t.case_ref, t.event_id, t.event_type, t.service,
                       'store: ' || s.event_type || ' case ' || s.case_id
                  FROM stream t JOIN store s ON s.event_id = t.event_id
                 WHERE s.event_type != t.event_type OR s.case_id != t.case_id
                ORDER BY 2, 4
            """
            for row in db.execute(query):
                difference = Difference(*row)
                if difference.kind == MISSING_FROM_STORE and read is not None and difference.service not in read:
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
) -> Iterator[Difference]:
    from audit.replay import available_services

    nats_url = nats_url or settings.nats_url
    if not nats_url:
        raise ValueError("the cross-check needs KHIDMA_NATS_URL (or --nats-url)")
    return crosscheck(
        replay_stores(settings, progress=progress),
        replay_stream(nats_url, progress=progress, user=settings.nats_user, password=settings.nats_password),
        totals,
        services=available_services(settings),
    )
