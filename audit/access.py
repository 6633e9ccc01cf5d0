"""The access log: who read which case file or member record, and when.

Every read of a case file or of a member's record is one `Access.Recorded`
event in the reading service's own store (and every data subject export, the
audit's own: `data/audit.sqlite`, audit.export) (shared/access_log.py): append-only,
chained with the store's other events (so `python -m audit verify` covers it),
never published. This module reads it back from every store, read-only:

    python -m audit access [--case ID_OR_REF] [--who SUBJECT] [--from DAY] [--to DAY]

The reads of the stores are merged in time order (each store's log is in the
order it was recorded).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from audit.replay import replay_store
from audit.settings import AuditSettings
from audit.stores import AUDIT, SERVICES, store_exists
from shared.dates import both_calendars

ACCESS_TOPIC = "shared.access_log:Access.Recorded"


@dataclass(frozen=True)
class AccessRead:
    """One read of a record, as the reading service logged it."""

    service: str
    notification_id: int
    at: datetime
    actor: dict[str, Any]
    association_id: str
    what: str
    record_id: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "position": self.notification_id,
            "at": self.at.isoformat(),
            "when": both_calendars(self.at),
            "actor": self.actor,
            "association_id": self.association_id,
            "what": self.what,
            "record_id": self.record_id,
        }


def _moment(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _reads_of(service: str, settings: AuditSettings) -> Iterator[AccessRead]:
    for record in replay_store(service, settings):
        if record.topic != ACCESS_TOPIC:
            continue
        state = record.state
        actor = state.get("actor")
        yield AccessRead(
            service=service,
            notification_id=record.notification_id,
            at=_moment(state.get("at") or state["timestamp"]),
            actor=dict(actor) if isinstance(actor, dict) else {"id": str(actor)},
            association_id=str(state.get("association_id")),
            what=str(state.get("what")),
            record_id=str(state.get("record_id")),
        )


def access_reads(
    settings: AuditSettings,
    *,
    record_id: str | None = None,
    who: str | None = None,
    association_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    services: Iterable[str] = (*SERVICES, AUDIT),
) -> Iterator[AccessRead]:
    """Every logged read of every readable store, in time order, filtered: the record
    read (a case id), who read it (the actor's id or name), the association, and the
    period (`start` <= at <= `end`)."""
    readable = [s for s in services if store_exists(s, settings)]
    merged = heapq.merge(
        *(_reads_of(service, settings) for service in readable),
        key=lambda read: (read.at, read.service, read.notification_id),
    )
    for read in merged:
        if record_id is not None and read.record_id != record_id:
            continue
        if who is not None and who not in (read.actor.get("id"), read.actor.get("name")):
            continue
        if association_id is not None and read.association_id != association_id:
            continue
        if start is not None and read.at < start:
            continue
        if end is not None and read.at > end:
            continue
        yield read
