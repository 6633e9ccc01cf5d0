"""The board report's figures for a period, computed from the integration events.

`compute_figures` reads the events once, in stream order, and keeps one small
record per case (never the events themselves), so memory grows with the number
of cases, not with the length of the history. Everything is "as of the report's
moment": the end of the period, or an earlier `as_of` moment (a report of a
period not yet over, reproduced later as it was first written); events that
happened after that moment are skipped.

Three kinds of figures, each labelled as such in the report:

* the *cohort* of the period (cases received in it), as they stand at its end:
  requests by channel and service, the funnel, verification outcomes, the
  referral rate;
* the *activity* of the period (what happened in it, whatever the receipt
  date): decisions (approval rate, time to decision against the window) and
  the satisfaction answers;
* the open backlog: every case received up to the moment and not closed
  (delivered, or rejected by the committee) by then, by its age then.
"""

from __future__ import annotations

import heapq
import math
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from shared.dates import RIYADH, local_day
from shared.events import IntegrationEvent
from shared.policy import Policies
from shared.suppression import MINIMUM_GROUP_SIZE, hidden_in_breakdowns

SLOWEST = 10  # how many of the slowest decisions the report names
FUNNEL_STAGES: tuple[str, ...] = (
    "received",
    "verified",
    "decided",
    "approved",
    "delivered",
    "surveyed",
)
OUTCOMES: tuple[str, ...] = ("verified", "discrepancies", "ineligible")
# Age buckets of the open backlog, in whole days since receipt: (label, up to).
BACKLOG_BUCKETS: tuple[tuple[str, int | None], ...] = (
    ("0-7", 7),
    ("8-14", 14),
    ("15-30", 30),
    ("31-60", 60),
    ("61+", None),
)
BACKLOG_STAGES: tuple[str, ...] = (
    "awaiting_verification",
    "awaiting_decision",
    "awaiting_delivery",
)


@dataclass(frozen=True)
class Period:
    """Whole days in Riyadh, both ends included."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"the period ends ({self.end}) before it starts ({self.start})")

    @property
    def start_at(self) -> datetime:
        return datetime.combine(self.start, datetime.min.time(), RIYADH)

    @property
    def end_at(self) -> datetime:
        """The first instant after the period."""
        return datetime.combine(self.end + timedelta(days=1), datetime.min.time(), RIYADH)

    @property
    def last_moment(self) -> datetime:
        """The period's last instant (as `python -m audit asof` reads a day: its end)."""
        return self.end_at - timedelta(microseconds=1)

    def moment(self, as_of: datetime | None) -> datetime:
        """The moment a report of the period stands at: `as_of`, at the latest the period's end."""
        if as_of is None or as_of >= self.last_moment:
            return self.last_moment
        if as_of < self.start_at:
            raise ValueError(f"{as_of.isoformat()} is before the period starts ({self.start})")
        return as_of


class _Case:
    """What the figures need to remember of one case (no event is kept)."""

    __slots__ = (
        "association",
        "channel",
        "cohort",
        "decision",
        "delivered",
        "outcome",
        "received",
        "ref",
        "referred",
        "revision",
        "service",
        "surveyed",
    )

    def __init__(self) -> None:
        self.association = ""
        self.ref = ""
        self.channel: str | None = None
        self.service: str | None = None
        self.received: float | None = None
        self.cohort = False
        self.outcome: str | None = None
        self.referred = False
        self.decision: str | None = None
        self.delivered = False
        self.surveyed = False
        self.revision = 0


@dataclass
class SatisfactionGroup:
    bucket: str  # "2026-11" or "2026-W47"
    association_id: str
    key: str  # the service code or the channel
    answers: int | None  # None when suppressed
    mean: float | None  # None when suppressed
    suppressed: bool


@dataclass
class SlowCase:
    case_id: str
    case_ref: str
    association_id: str
    days: float
    window_days: int
    within_window: bool
    decided_on: str


@dataclass
class Figures:
    period: Period
    granularity: str
    events_read: int = 0
    events_after_period: int = 0
    #: events within the period but after the report's moment (`as_of`): not yet known then
    events_after_as_of: int = 0
    #: the moment the figures stand at: the period's last instant, or an earlier `as_of`
    as_of: datetime | None = None
    requests_total: int = 0
    requests_by_channel: dict[str, dict[str, int]] = field(default_factory=dict)
    requests_by_service: dict[str, dict[str, int]] = field(default_factory=dict)
    funnel: dict[str, int] = field(default_factory=dict)
    verification_outcomes: dict[str, int] = field(default_factory=dict)
    referred: int = 0
    decisions: int = 0
    approved: int = 0
    rejected: int = 0
    within_window: int = 0
    median_days_to_decision: float | None = None
    days_to_decision_histogram: dict[int, int] = field(default_factory=dict)
    slowest: list[SlowCase] = field(default_factory=list)
    backlog: dict[str, dict[str, int]] = field(default_factory=dict)
    backlog_total: int = 0
    satisfaction_by_service: list[SatisfactionGroup] = field(default_factory=list)
    satisfaction_by_channel: list[SatisfactionGroup] = field(default_factory=list)
    associations: list[str] = field(default_factory=list)
    #: the cases received in the period (the period of an exception whose check does
    #: not say when it was proven); one id per case, not part of the exported figures
    cohort_case_ids: frozenset[str] = frozenset()
    #: erasures of personal data done in the period (up to the moment), by association,
    #: from the keyring's destroyed keys (count_erasures) or, without it, the stream's
    #: PersonalDataErased events; None when neither was read
    erasures_by_association: dict[str, int] | None = None
    #: the period's PersonalDataErased events on the stream, by association
    erasures_on_stream: dict[str, int] = field(default_factory=dict)
    #: each association's policy versions in force during the period (up to the
    #: moment), with the cases of the period's cohort each governed
    policy_versions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def erasures_total(self) -> int | None:
        if self.erasures_by_association is None:
            return None
        return sum(self.erasures_by_association.values())

    @property
    def referral_rate(self) -> float | None:
        return _rate(self.referred, self.requests_total)

    @property
    def approval_rate(self) -> float | None:
        return _rate(self.approved, self.decisions)

    @property
    def share_within_window(self) -> float | None:
        return _rate(self.within_window, self.decisions)

    def to_dict(self) -> dict[str, Any]:
        """The figures as plain JSON data (the same numbers as the HTML and the CSV)."""
        return {
            "period": {"from": self.period.start.isoformat(), "to": self.period.end.isoformat()},
            "as_of": (self.as_of or self.period.last_moment).isoformat(),
            "granularity": self.granularity,
            "events_read": self.events_read,
            "events_after_period": self.events_after_period,
            "events_after_as_of": self.events_after_as_of,
            "associations": list(self.associations),
            "policy_versions": [dict(row) for row in self.policy_versions],
            "requests": {
                "total": self.requests_total,
                "by_channel": self.requests_by_channel,
                "by_service": self.requests_by_service,
            },
            "funnel": dict(self.funnel),
            "verification_outcomes": dict(self.verification_outcomes),
            "referral": {
                "referred": self.referred,
                "received": self.requests_total,
                "rate": _round(self.referral_rate),
            },
            "approval": {
                "approved": self.approved,
                "rejected": self.rejected,
                "decisions": self.decisions,
                "rate": _round(self.approval_rate),
            },
            "time_to_decision": {
                "decisions": self.decisions,
                "within_window": self.within_window,
                "share_within_window": _round(self.share_within_window),
                "median_days": _round(self.median_days_to_decision, 2),
                "histogram_days": {
                    str(k): v for k, v in sorted(self.days_to_decision_histogram.items())
                },
                "slowest": [{**vars(slow), "days": round(slow.days, 2)} for slow in self.slowest],
            },
            "backlog": {"total": self.backlog_total, "by_age": self.backlog},
            "erasures": {
                "counted": self.erasures_by_association is not None,
                "total": self.erasures_total,
                "by_association": dict(self.erasures_by_association or {}),
            },
            "satisfaction": {
                "minimum_group": MINIMUM_GROUP_SIZE,
                "by_service": [
                    vars(group) | {"mean": _round(group.mean, 2)}
                    for group in self.satisfaction_by_service
                ],
                "by_channel": [
                    vars(group) | {"mean": _round(group.mean, 2)}
                    for group in self.satisfaction_by_channel
                ],
            },
        }


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def time_bucket(moment: datetime, granularity: str) -> str:
    day = local_day(moment)
    if granularity == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{day.year}-{day.month:02d}"


def backlog_bucket(age_days: float) -> str:
    whole = math.floor(age_days)
    for label, limit in BACKLOG_BUCKETS:
        if limit is None or whole <= limit:
            return label
    raise AssertionError("unreachable")


Cell = tuple[str, str, str]  # (time bucket, association id, service code or channel)


class _Decisions:
    """The committee's decisions taken in the period, tallied as they are read."""

    def __init__(self) -> None:
        self.count = 0
        self.approved = 0
        self.rejected = 0
        self.within_window = 0
        self.histogram: Counter[int] = Counter()
        self.slowest: list[tuple[float, str, SlowCase]] = []  # a min-heap of the slowest

    def add(self, case_id: str, case: _Case, event: IntegrationEvent, ts: float) -> None:
        payload: Any = event.payload
        self.count += 1
        if payload.decision == "approved":
            self.approved += 1
        else:
            self.rejected += 1
        if payload.within_window:
            self.within_window += 1
        if case.received is None:
            return  # no receipt seen: no time to decision
        days = (ts - case.received) / 86400
        self.histogram[math.floor(days)] += 1
        slow = SlowCase(
            case_id,
            case.ref,
            case.association,
            days,
            payload.window_days,
            payload.within_window,
            local_day(event.occurred_at).isoformat(),
        )
        item = (days, case_id, slow)
        if len(self.slowest) < SLOWEST:
            heapq.heappush(self.slowest, item)
        elif item[:2] > self.slowest[0][:2]:
            heapq.heapreplace(self.slowest, item)


class FiguresReading:
    """One pass over the events: one small record per case and the period's tallies.

    Fed by `compute_figures`, or one event at a time (`read_event`) by another pass
    over the stream: the board report's one pass that also builds the case timelines
    for the compliance checks (audit.report.build.figures_and_exceptions)."""

    def __init__(
        self, period: Period, moment: datetime, granularity: str, policies: Policies | None = None
    ) -> None:
        self.period = period
        self.moment = moment
        self.granularity = granularity
        self.policies = policies
        # association -> governing policy version -> cases of the period's cohort
        self.by_version: dict[str, Counter[int]] = defaultdict(Counter)
        self.start_ts, self.end_ts = period.start_at.timestamp(), period.end_at.timestamp()
        # Ages are counted at the end of the period itself (its first instant after), as before.
        self.moment_ts = self.end_ts if moment == period.last_moment else moment.timestamp()
        self.events_read = 0
        self.events_after_period = 0
        self.events_after_as_of = 0
        self.cases: dict[str, _Case] = {}
        self.associations: set[str] = set()
        self.erasures: Counter[str] = Counter()
        self.by_channel: dict[str, Counter[str]] = defaultdict(Counter)
        self.by_service: dict[str, Counter[str]] = defaultdict(Counter)
        self.decisions = _Decisions()
        self.ratings_by_service: dict[Cell, list[int]] = defaultdict(lambda: [0, 0])
        self.ratings_by_channel: dict[Cell, list[int]] = defaultdict(lambda: [0, 0])

    def read(self, events: Iterable[IntegrationEvent]) -> None:
        read_event = self.read_event
        for event in events:
            read_event(event)

    def read_event(self, event: IntegrationEvent) -> None:
        """One event, in stream order (also fed by another pass: `start_figures`)."""
        self.events_read += 1
        ts = event.occurred_at.timestamp()
        if ts >= self.end_ts:
            self.events_after_period += 1
        elif ts > self.moment_ts:
            self.events_after_as_of += 1
        else:
            self._read_one(event, ts)

    def _read_one(self, event: IntegrationEvent, ts: float) -> None:
        if event.event_type == ERASED_EVENT:
            # Not a case's event (its case id is the erasure's): counted, nothing else.
            if ts >= self.start_ts:
                self.erasures[event.association_id] += 1
            return
        case_id = str(event.case_id)
        case = self.cases.get(case_id)
        if case is None:
            case = self.cases[case_id] = _Case()
            case.association = sys.intern(event.association_id)
            case.ref = event.case_ref
            self.associations.add(case.association)
        in_period = ts >= self.start_ts
        payload: Any = event.payload
        kind = event.event_type
        if kind == "RequestReceived":
            self._received(case, payload, ts, in_period)
        elif kind == "DataVerified":
            if (payload.revision or 1) >= case.revision:  # not an earlier revision's, read late
                case.outcome = sys.intern(payload.outcome)
        elif kind == "ReferredToResearcher":
            case.referred = True
        elif kind == "CommitteeDecided":
            case.decision = sys.intern(payload.decision)
            if in_period:
                self.decisions.add(case_id, case, event, ts)
        elif kind == "ServiceDelivered":
            case.delivered = True
        elif kind == "SurveyAnswered":
            case.surveyed = True
            if in_period:
                self._answered(case, event)

    def _received(self, case: _Case, payload: Any, ts: float, in_period: bool) -> None:
        revision = payload.revision or 1
        if case.received is not None:
            # A later revision (the applicant corrected the data): the same request,
            # counted once, from when it was first received; its corrected data waits
            # for verification again.
            if revision > case.revision:
                case.revision = revision
                case.outcome = None
            return
        case.revision = revision
        case.channel = sys.intern(payload.channel)
        case.service = sys.intern(payload.service_code)
        case.received = ts
        if in_period:
            case.cohort = True
            self.by_channel[case.association][case.channel] += 1
            self.by_service[case.association][case.service] += 1
            self.by_version[case.association][
                self._governing_version(case.association, payload.policy_version, ts)
            ] += 1

    def _governing_version(self, association: str, named: int | None, ts: float) -> int:
        """The version a request names; for one published before versions, the one in
        force when it was received (the first without the packs)."""
        if named is not None:
            return int(named)
        history = self.policies.history(association) if self.policies is not None else None
        if history is None:
            return 1
        return history.in_force(datetime.fromtimestamp(ts, UTC)).number

    def _answered(self, case: _Case, event: IntegrationEvent) -> None:
        payload: Any = event.payload
        bucket = time_bucket(event.occurred_at, self.granularity)
        service = payload.service_code or case.service or "?"
        channel = payload.channel or case.channel or "?"
        rating = payload.ratings.satisfaction
        for table, key in ((self.ratings_by_service, service), (self.ratings_by_channel, channel)):
            cell = table[(bucket, case.association, key)]
            cell[0] += 1
            cell[1] += rating


def compute_figures(
    events: Iterable[IntegrationEvent],
    *,
    start: date,
    end: date,
    packs: Mapping[str, Any] | None = None,
    granularity: str = "month",
    as_of: datetime | None = None,
) -> Figures:
    """Streams the events once and returns the figures of the period [start, end].

    As of `as_of` when it falls before the period's end (events after it are not
    yet known, the backlog's ages are counted then), otherwise as of the end.
    `packs` (association id -> PolicyPack) only orders the associations; the
    figures come from the events alone. Events must come in stream order (a
    case's RequestReceived before its other events), as the stream gives them.
    """
    reading = start_figures(start=start, end=end, granularity=granularity, as_of=as_of, packs=packs)
    reading.read(events)
    return finish_figures(reading, packs=packs)


def start_figures(
    *,
    start: date,
    end: date,
    granularity: str = "month",
    as_of: datetime | None = None,
    packs: Mapping[str, Any] | None = None,
) -> FiguresReading:
    """The figures of the period [start, end] to come, as `compute_figures` reads them;
    `packs` say which policy version governed a request published before versions."""
    if granularity not in ("month", "week"):
        raise ValueError("granularity is 'month' or 'week'")
    period = Period(start, end)
    policies = Policies.of(packs) if packs else None
    return FiguresReading(period, period.moment(as_of), granularity, policies)


def finish_figures(reading: FiguresReading, *, packs: Mapping[str, Any] | None = None) -> Figures:
    """The figures of a reading once every event has been read."""
    period, moment, granularity = reading.period, reading.moment, reading.granularity
    figures = Figures(
        period=period,
        granularity=granularity,
        as_of=moment,
        events_read=reading.events_read,
        events_after_period=reading.events_after_period,
        events_after_as_of=reading.events_after_as_of,
    )
    _request_figures(figures, reading)
    _cohort_figures(figures, reading)
    _decision_figures(figures, reading.decisions)
    _backlog_figures(figures, reading)
    figures.satisfaction_by_service, figures.satisfaction_by_channel = _suppressed_groups(
        reading.ratings_by_service, reading.ratings_by_channel
    )
    figures.associations = _association_order(reading.associations, packs)
    figures.erasures_on_stream = dict(sorted(reading.erasures.items()))
    figures.policy_versions = _policy_version_figures(figures, reading, reading.policies)
    return figures


def _policy_version_figures(
    figures: Figures, reading: FiguresReading, policies: Policies | None
) -> list[dict[str, Any]]:
    """Each association's versions in force during the period, up to its moment, and
    the cohort's cases each governed (a version no pack of the audit holds is listed
    with its cases, without its approval)."""
    rows = []
    start = figures.period.start_at
    moment = figures.as_of or figures.period.last_moment
    for association in figures.associations:
        counted = reading.by_version.get(association, Counter())
        history = policies.history(association) if policies is not None else None
        in_force = (
            {pack.number: pack for pack in history.in_force_during(start, moment)}
            if history
            else {}
        )
        for number in sorted(set(in_force) | set(counted)):
            pack = in_force.get(number) or (history.version(number) if history else None)
            rows.append(_version_row(association, number, pack, counted.get(number, 0)))
    return rows


def _version_row(association: str, number: int, pack: Any, cases: int) -> dict[str, Any]:
    approval = getattr(pack, "board_approval", None)
    takes_effect = pack.version.takes_effect if pack is not None else None
    return {
        "association_id": association,
        "version": number,
        "takes_effect": takes_effect.isoformat() if takes_effect else None,
        "approved_on_hijri": approval.hijri if approval else None,
        "approved_on": approval.gregorian.isoformat() if approval and approval.gregorian else None,
        "approval_as_written": approval.date_as_written if approval else None,
        "meeting": (approval.meeting or approval.session) if approval else None,
        "known": pack is not None,
        "cases": cases,
    }


# The privacy service's event: a data subject's keys were destroyed (shared/events.py).
ERASED_EVENT = "PersonalDataErased"


def count_erasures(figures: Figures, erasures: Iterable[Any] | None) -> Figures:
    """Adds the erasures done in the figures' period, up to their moment, by
    association (`erasures`: audit.personal.Erasure, from the keyring's destroyed
    keys; one per erasure id). None: the keyring could not be read; then the
    stream's PersonalDataErased events count, if any was read; else not counted."""
    if erasures is None:
        figures.erasures_by_association = figures.erasures_on_stream or None
        return figures
    start, moment = figures.period.start_at, figures.as_of or figures.period.last_moment
    counted: Counter[str] = Counter()
    for erasure in erasures:
        if start <= erasure.destroyed_at <= moment:
            counted[erasure.association_id] += 1
    figures.erasures_by_association = dict(sorted(counted.items()))
    return figures


def _request_figures(figures: Figures, reading: FiguresReading) -> None:
    """Requests received in the period, by channel and by service."""
    figures.requests_by_channel = {
        a: dict(sorted(c.items())) for a, c in sorted(reading.by_channel.items())
    }
    figures.requests_by_service = {
        a: dict(sorted(c.items())) for a, c in sorted(reading.by_service.items())
    }
    figures.requests_total = sum(sum(c.values()) for c in reading.by_channel.values())


def _cohort_figures(figures: Figures, reading: FiguresReading) -> None:
    """The funnel, the verification outcomes and the referrals of the period's cohort."""
    cohort = {case_id: case for case_id, case in reading.cases.items() if case.cohort}
    funnel = Counter({stage: 0 for stage in FUNNEL_STAGES})
    outcomes = Counter({outcome: 0 for outcome in OUTCOMES})
    for case in cohort.values():
        funnel["received"] += 1
        funnel["verified"] += case.outcome is not None
        funnel["decided"] += case.decision is not None
        funnel["approved"] += case.decision == "approved"
        funnel["delivered"] += case.delivered
        funnel["surveyed"] += case.surveyed
        if case.outcome:
            outcomes[case.outcome] += 1
    figures.funnel = {stage: funnel[stage] for stage in FUNNEL_STAGES}
    figures.verification_outcomes = {o: outcomes[o] for o in sorted(outcomes, key=_outcome_order)}
    figures.referred = sum(case.referred for case in cohort.values())
    figures.cohort_case_ids = frozenset(cohort)


def _decision_figures(figures: Figures, decisions: _Decisions) -> None:
    """The committee's decisions of the period against their windows."""
    figures.decisions = decisions.count
    figures.approved = decisions.approved
    figures.rejected = decisions.rejected
    figures.within_window = decisions.within_window
    figures.days_to_decision_histogram = dict(sorted(decisions.histogram.items()))
    figures.median_days_to_decision = _median_from_histogram(decisions.histogram)
    figures.slowest = [
        slow for _, _, slow in sorted(decisions.slowest, key=lambda i: (-i[0], i[1]))
    ]


def _backlog_figures(figures: Figures, reading: FiguresReading) -> None:
    """Every case open at the moment (not delivered, not rejected), by its age then."""
    backlog = {label: {stage: 0 for stage in BACKLOG_STAGES} for label, _ in BACKLOG_BUCKETS}
    for case in reading.cases.values():
        if case.received is None:
            continue  # no RequestReceived seen: not a request of any period
        if case.delivered or case.decision == "rejected":
            continue
        backlog[backlog_bucket((reading.moment_ts - case.received) / 86400)][
            _waiting_for(case)
        ] += 1
        figures.backlog_total += 1
    figures.backlog = backlog


def _waiting_for(case: _Case) -> str:
    if case.outcome is None:
        return "awaiting_verification"
    if case.decision is None:
        return "awaiting_decision"
    return "awaiting_delivery"


def _association_order(associations: set[str], packs: Mapping[str, Any] | None) -> list[str]:
    """The packs' order first, then any other association seen, by id."""
    known = list(packs or {})
    return [a for a in known if a in associations] + sorted(associations - set(known))


def _outcome_order(outcome: str) -> tuple[int, str]:
    return (OUTCOMES.index(outcome) if outcome in OUTCOMES else len(OUTCOMES), outcome)


def _median_from_histogram(histogram: Counter[int]) -> float | None:
    """The median day bucket (whole days), from the histogram: no list of durations."""
    total = sum(histogram.values())
    if not total:
        return None
    seen = 0
    for days in sorted(histogram):
        seen += histogram[days]
        if seen * 2 >= total:
            return float(days)
    return None


def _suppressed_groups(
    *partitions: Mapping[Cell, list[int]],
) -> tuple[list[SatisfactionGroup], ...]:
    """Each partition's groups, with those a reader could work out hidden too.

    The partitions (by service, by channel) split the same answers of a time
    bucket and association: within each such scope they are breakdowns of the
    same answers side by side (`shared.suppression.hidden_in_breakdowns`).
    """
    # Each scope's breakdowns: key -> answers, one mapping per partition.
    scopes: dict[tuple[str, str], list[dict[str, int]]] = defaultdict(
        lambda: [{} for _ in partitions]
    )
    for index, partition in enumerate(partitions):
        for (bucket, association, key), (answers, _) in partition.items():
            scopes[(bucket, association)][index][key] = answers
    hidden: list[set[Cell]] = [set() for _ in partitions]
    for (bucket, association), breakdowns in scopes.items():
        for index, hidden_keys in enumerate(hidden_in_breakdowns(breakdowns, MINIMUM_GROUP_SIZE)):
            hidden[index].update((bucket, association, key) for key in hidden_keys)
    return tuple(_groups(partition, hidden[index]) for index, partition in enumerate(partitions))


def _groups(cells: Mapping[Cell, list[int]], hidden: set[Cell]) -> list[SatisfactionGroup]:
    groups = []
    for cell, (answers, total) in sorted(cells.items()):
        bucket, association, key = cell
        if cell in hidden:
            groups.append(SatisfactionGroup(bucket, association, key, None, None, True))
        else:
            groups.append(
                SatisfactionGroup(bucket, association, key, answers, total / answers, False)
            )
    return groups
