"""Who read what: every read of a case file or of a member's record.

Each read is an aggregate of one event in the reading service's own store, so
the log is append-only, covered by the store's hash chain (`audit verify`) and
read back by the audit like any other event. It never leaves the store (no
translator publishes it) and holds no personal data: the record read is named
by its id, never by a national id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate, event


class Access(Aggregate):
    """One read of a record by an authenticated principal."""

    class Recorded(Aggregate.Created):
        actor: dict[str, Any]
        association_id: str
        what: str
        record_id: str
        at: datetime

    @staticmethod
    def create_id(**_: Any) -> UUID:
        return uuid4()

    @event(Recorded)
    def __init__(
        self,
        *,
        actor: dict[str, Any],
        association_id: str,
        what: str,
        record_id: str,
        at: datetime,
    ):
        self.actor = actor
        self.association_id = association_id
        self.what = what
        self.record_id = record_id
        self.at = at


# What was read: the kinds of record whose every read is logged.
CASE_FILE = "case_file"
MEMBER_RECORD = "member_record"
