"""Members of the general assembly, as verification registers them.

A member-only service checks the applicant's standing *at submission time*, so
each member keeps the history of their standing with effective dates: joined
(good standing), suspended, reinstated, left. The registry arrives as a CSV
import; reading it is pure (text in, rows and problems out), and each row
becomes commands on a Member aggregate, so a repeated import changes nothing.

A member is a data subject: their national id and name are kept sealed under
their subject key (`personal_key`, given by the application), and the member is
found by the keyed blind index of their national id (`subject_index`), never by
the number: `member_id` derives from the index.

Members registered before this (migration note): their id was derived from the
national id itself (`legacy_member_id`) and their events hold the national id
and name in plaintext. An event store is append-only, so neither can change:
they keep that id and stay readable, and the application finds a member by the
blind-index id first and by the legacy id second. Changes recorded on such a
member from now on are sealed (under a key made for them then); the plaintext
of their earlier events stays in the store, where no erasure can reach it
(decision 24: events stored before sealing read as they were).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from services.verification.domain import (
    GOOD,
    LEFT,
    NOT_A_MEMBER,
    STANDINGS,
    Standing,
    id_kind,
)
from shared.dates import PAST_DAY, DayBounds, accept_day
from shared.errors import Invalid

CSV_COLUMNS: tuple[str, ...] = ("national_id", "name", "joined_on", "status", "status_since")
# A member has joined; a change of standing may be recorded ahead of its day (a
# suspension from next month), though not by more than a year.
REGISTRY_DAYS = {"joined_on": PAST_DAY, "status_since": DayBounds("standing", 1)}
MAX_NAME = 200


class InvalidRegistry(Invalid):
    """A registry that cannot be read at all (unlike a bad line, which is reported)."""


def member_id(association_id: str, subject_index: str) -> UUID:
    """A member's id, from the blind index of their national id within the association."""
    return uuid5(NAMESPACE_URL, f"khidma:member:{association_id}:index:{subject_index}")


def legacy_member_id(association_id: str, national_id: str) -> UUID:
    """The id of a member registered before personal data was sealed: derived from the
    national id itself. Only looked up (see the module's migration note), never given."""
    return uuid5(NAMESPACE_URL, f"khidma:member:{association_id}:{national_id}")


class Member(Aggregate):
    """A member of one association's general assembly; one per (association, national id).

    Dates are stored as ISO strings (YYYY-MM-DD): the store's transcoder has no `date`.
    Each event records the administrator who made the change (`actor`, the
    authenticated principal); events recorded before identities were proven have none.
    The national id and name are personal data, kept sealed under `personal_key`;
    once the member's key is destroyed they read as erased (empty values), and
    the standing, which names no one, stays.
    """

    class Registered(Aggregate.Created):
        """The member joined the registry, with their standing as the registry gave it."""

        association_id: str
        national_id: str
        name: str
        joined_on: str
        status: str
        status_since: str
        actor: dict[str, Any] | None = None
        # The blind index of the national id (the id derives from it) and the id of
        # the member's key; members registered before sealing have neither.
        subject_index: str | None = None
        personal_attributes: ClassVar[tuple[str, ...]] = ("national_id", "name")
        personal_key: str | None = None

    @staticmethod
    def create_id(association_id: str, subject_index: str, **_: Any) -> UUID:
        return member_id(association_id, subject_index)

    @classmethod
    def register(
        cls,
        *,
        association_id: str,
        national_id: str,
        subject_index: str,
        personal_key: str,
        name: str,
        joined_on: date,
        status: str,
        status_since: date,
        actor: dict[str, Any] | None = None,
    ) -> Member:
        return cls(
            association_id=association_id,
            national_id=national_id,
            name=name,
            joined_on=joined_on.isoformat(),
            status=status,
            status_since=status_since.isoformat(),
            actor=actor,
            subject_index=subject_index,
            personal_key=personal_key,
        )

    @event(Registered)
    def __init__(
        self,
        *,
        association_id: str,
        national_id: str,
        name: str,
        joined_on: str,
        status: str,
        status_since: str,
        actor: dict[str, Any] | None = None,
        subject_index: str | None = None,
        personal_key: str | None = None,  # the event's, for the store's mapper
    ):
        self.association_id = association_id
        self.national_id = national_id
        self.name = name
        self.subject_index = subject_index
        self.joined_on = date.fromisoformat(joined_on)
        # (status, effective date), in the order recorded.
        self.history: list[tuple[str, date]] = [(GOOD, self.joined_on)]
        since = date.fromisoformat(status_since)
        if (status, since) != (GOOD, self.joined_on):
            self.history.append((status, since))

    @property
    def status(self) -> str:
        return self.standing_on(date.max).status or GOOD

    @property
    def status_since(self) -> date:
        return self.standing_on(date.max).since or self.joined_on

    def standing_on(self, day: date) -> Standing:
        """The standing in force on a day (the latest change effective on or before it)."""
        effective = [
            (since, order, status)
            for order, (status, since) in enumerate(self.history)
            if since <= day
        ]
        if not effective:
            return NOT_A_MEMBER
        since, _, status = max(effective)
        return Standing(status=status, since=since)

    # Commands -------------------------------------------------------------------

    def apply_registry_row(
        self,
        *,
        name: str,
        status: str,
        status_since: date,
        actor: dict[str, Any] | None = None,
        personal_key: str | None = None,
    ) -> bool:
        """Brings the member up to a registry row; True when anything changed.

        `personal_key` is the id of the member's key, the new name sealed under it."""
        changed = False
        if name != self.name:
            self.trigger_event(self.Renamed, name=name, actor=actor, personal_key=personal_key)
            changed = True
        if (status, status_since) != (self.status, self.status_since) and (
            status,
            status_since,
        ) not in self.history:
            if status == LEFT:
                self.trigger_event(self.Left, effective_on=status_since.isoformat(), actor=actor)
            else:
                self.trigger_event(
                    self.StandingChanged,
                    status=status,
                    effective_on=status_since.isoformat(),
                    actor=actor,
                )
            changed = True
        return changed

    class Renamed(Aggregate.Event):
        name: str
        actor: dict[str, Any] | None = None
        personal_attributes: ClassVar[tuple[str, ...]] = ("name",)
        personal_key: str | None = None  # none: renamed before sealing, the name plain

        def apply(self, aggregate: Member) -> None:
            aggregate.name = self.name

    class StandingChanged(Aggregate.Event):
        """Suspended, or reinstated (good standing again), from a date."""

        status: str
        effective_on: str
        actor: dict[str, Any] | None = None

        def apply(self, aggregate: Member) -> None:
            aggregate.history.append((self.status, date.fromisoformat(self.effective_on)))

    class Left(Aggregate.Event):
        effective_on: str
        actor: dict[str, Any] | None = None

        def apply(self, aggregate: Member) -> None:
            aggregate.history.append((LEFT, date.fromisoformat(self.effective_on)))


# Reading the registry CSV ------------------------------------------------------------


@dataclass(frozen=True)
class RegistryRow:
    line: int
    national_id: str
    name: str
    joined_on: date
    status: str
    status_since: date


@dataclass(frozen=True)
class RowProblem:
    line: int
    en: str
    ar: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "problem": {"ar": self.ar, "en": self.en}}


def read_registry(text: str, *, today: date) -> tuple[list[RegistryRow], list[RowProblem]]:
    """The good rows and the problems of a registry CSV (line 1 is the header).

    Raises Refused when the header is not the expected one (nothing can be read).
    """
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = [column.strip().lower() for column in next(reader)]
    except StopIteration:
        header = []
    if tuple(header) != CSV_COLUMNS:
        raise InvalidRegistry(
            "bad_registry_header",
            "The member registry must start with the header line: " + ",".join(CSV_COLUMNS),
            "يجب أن يبدأ سجل الأعضاء بسطر العناوين: " + ",".join(CSV_COLUMNS),
        )
    rows: list[RegistryRow] = []
    problems: list[RowProblem] = []
    seen: dict[str, int] = {}
    for line, cells in _numbered(reader):
        if not any(cell.strip() for cell in cells):
            continue
        row_or_problem = read_registry_row(line, cells, today=today)
        if isinstance(row_or_problem, RowProblem):
            problems.append(row_or_problem)
            continue
        if row_or_problem.national_id in seen:
            problems.append(
                RowProblem(
                    line,
                    f"The same ID number is already on line {seen[row_or_problem.national_id]}.",
                    f"رقم الهوية نفسه مذكور في السطر {seen[row_or_problem.national_id]}.",
                )
            )
            continue
        seen[row_or_problem.national_id] = line
        rows.append(row_or_problem)
    return rows, problems


def _numbered(reader: Any) -> Iterator[tuple[int, list[str]]]:
    for cells in reader:
        yield reader.line_num, cells


def read_registry_row(line: int, cells: list[str], *, today: date) -> RegistryRow | RowProblem:
    """One line of the registry read, its dates judged on `today` (shared.dates)."""
    if len(cells) != len(CSV_COLUMNS):
        return RowProblem(
            line,
            f"Expected {len(CSV_COLUMNS)} columns, found {len(cells)}.",
            f"المتوقع {len(CSV_COLUMNS)} أعمدة، والموجود {len(cells)}.",
        )
    national_id, name, joined_on, status, status_since = (cell.strip() for cell in cells)
    if id_kind(national_id) is None:
        return RowProblem(
            line,
            "national_id is not a valid Saudi national ID or iqama number (10 digits, "
            "valid check digit).",
            "national_id ليس رقم هوية وطنية أو إقامة صحيحًا (10 أرقام بخانة تحقق صحيحة).",
        )
    if not name or len(name) > MAX_NAME:
        return RowProblem(
            line,
            f"name is required (at most {MAX_NAME} characters).",
            f"name مطلوب (بحد أقصى {MAX_NAME} حرفًا).",
        )
    dates: dict[str, date] = {}
    for column, value in (("joined_on", joined_on), ("status_since", status_since)):
        try:
            dates[column] = accept_day(value, column, REGISTRY_DAYS[column], today)
        except Invalid as refused:
            return RowProblem(line, refused.en, refused.ar)
    status = status.lower()
    if status not in STANDINGS:
        return RowProblem(
            line,
            f"status must be one of {', '.join(STANDINGS)}, not {status!r}.",
            f"status يجب أن يكون إحدى القيم {', '.join(STANDINGS)}، لا {status!r}.",
        )
    if dates["status_since"] < dates["joined_on"]:
        return RowProblem(
            line,
            "status_since cannot be before joined_on.",
            "لا يمكن أن يكون status_since قبل joined_on.",
        )
    return RegistryRow(
        line=line,
        national_id=national_id,
        name=name,
        joined_on=dates["joined_on"],
        status=status,
        status_since=dates["status_since"],
    )
