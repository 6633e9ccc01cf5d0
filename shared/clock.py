"""One injectable clock, so that deadlines and timestamps are testable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that only moves when told to: for tests and simulations."""

    def __init__(self, start: datetime):
        if start.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta


class OffsetFileClock:
    """System time shifted by the seconds written in a file (absent file: no shift).

    Lets an end-to-end test move the clock of running services, e.g. past a
    decision window, without touching their code: `KHIDMA_CLOCK_FILE`.
    """

    def __init__(self, path: Path):
        self.path = path

    def offset(self) -> timedelta:
        try:
            return timedelta(seconds=float(self.path.read_text().strip() or 0))
        except FileNotFoundError:
            return timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset()


def clock_from(path: Path | None) -> Clock:
    return OffsetFileClock(path) if path else SystemClock()
