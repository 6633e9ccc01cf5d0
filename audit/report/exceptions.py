"""The report's compliance exceptions: the listed ones, the counts, the embedded timelines."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

MAX_LISTED = 1000  # exceptions shown one by one in the HTML and the JSON; all go to the CSV


@dataclass
class ExceptionList:
    """The exceptions of a report: the first `MAX_LISTED` in full, every one counted by check."""

    listed: list[Any]
    total: int
    by_check: dict[str, int]
    #: the checks that could not run (a store or the packs missing), by code
    not_run: list[str] = field(default_factory=list)
    #: case id -> the case's timeline rows, embedded so the file works offline
    timelines: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def collect(
        cls, exceptions: Iterable[Any], *, limit: int = MAX_LISTED, sink: Any = None
    ) -> ExceptionList:
        """Reads the exceptions once; `sink(exception)` sees every one (the CSV writer)."""
        listed: list[Any] = []
        counts: dict[str, int] = {}
        total = 0
        for exception in exceptions:
            total += 1
            counts[exception.check] = counts.get(exception.check, 0) + 1
            if len(listed) < limit:
                listed.append(exception)
            if sink is not None:
                sink(exception)
        return cls(listed, total, dict(sorted(counts.items())))

    def __len__(self) -> int:
        return self.total


def as_exception_list(exceptions: Any) -> ExceptionList | None:
    if exceptions is None or isinstance(exceptions, ExceptionList):
        return exceptions
    return ExceptionList.collect(exceptions)


class EvidenceTimelines:
    """The timelines of the cases of the first `limit` exceptions, kept for the HTML.

    Only what a reader of the evidence needs (when, what, who, from where, the
    event id), never the payload: the board report carries no applicant data.
    """

    def __init__(self, limit: int = MAX_LISTED):
        self.limit = limit
        self.exceptions = 0
        self.cases: dict[str, list[dict[str, Any]]] = {}

    def keep(self, timeline: Any, exceptions: int) -> None:
        """Called for each case with its count of exceptions, in the order they are yielded."""
        if exceptions and self.exceptions < self.limit:
            self.cases[str(timeline.case_id)] = [_timeline_row(entry) for entry in timeline.entries]
        self.exceptions += exceptions


def _timeline_row(entry: Any) -> dict[str, Any]:
    revision = None
    if entry.event_type in ("RequestReceived", "DataVerified"):
        revision = entry.data.get("revision") or 1
    return {
        "at": entry.occurred_at.isoformat(),
        "event_type": entry.event_type,
        "service": entry.service,
        "source": entry.source,
        "actor": entry.actor,
        "channel": entry.channel,
        "event_id": entry.event_id,
        "revision": revision,
    }
