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
from datetime import date, datetime, timedelta
from typing import Any

from shared.dates import RIYADH, local_day
from shared.events import IntegrationEvent

MIN_GROUP = 5  # satisfaction groups with fewer answers are suppressed
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
            "satisfaction": {
                "minimum_group": MIN_GROUP,
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
    if granularity not in ("month", "week"):
        raise ValueError("granularity is 'month' or 'week'")
    period = Period(start, end)
    moment = period.moment(as_of)
    start_ts, end_ts = period.start_at.timestamp(), period.end_at.timestamp()
    # Ages are counted at the end of the period itself (its first instant after), as before.
    moment_ts = end_ts if moment == period.last_moment else moment.timestamp()
    cases: dict[str, _Case] = {}
    intern = sys.intern
    figures = Figures(period=period, granularity=granularity, as_of=moment)
    by_channel: dict[str, Counter[str]] = defaultdict(Counter)
    by_service: dict[str, Counter[str]] = defaultdict(Counter)
    histogram: Counter[int] = Counter()
    slowest: list[tuple[float, str, SlowCase]] = []  # a min-heap of the slowest
    ratings_by_service: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    ratings_by_channel: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    associations: set[str] = set()

    for event in events:
        figures.events_read += 1
        ts = event.occurred_at.timestamp()
        if ts >= end_ts:
            figures.events_after_period += 1
            continue
        if ts > moment_ts:
            figures.events_after_as_of += 1
            continue
        in_period = ts >= start_ts
        case_id = str(event.case_id)
        kind = event.event_type
        case = cases.get(case_id)
        if case is None:
            case = cases[case_id] = _Case()
            case.association = intern(event.association_id)
            case.ref = event.case_ref
            associations.add(case.association)
        payload: Any = event.payload
        if kind == "RequestReceived":
            revision = payload.revision or 1
            if case.received is not None:
                # A later revision (the applicant corrected the data): the same
                # request, counted once, from when it was first received; its
                # corrected data waits for verification again.
                if revision > case.revision:
                    case.revision = revision
                    case.outcome = None
                continue
            case.revision = revision
            case.channel = intern(payload.channel)
            case.service = intern(payload.service_code)
            case.received = ts
            if in_period:
                case.cohort = True
                by_channel[case.association][case.channel] += 1
                by_service[case.association][case.service] += 1
        elif kind == "DataVerified":
            if (payload.revision or 1) >= case.revision:  # not an earlier revision's, read late
                case.outcome = intern(payload.outcome)
        elif kind == "ReferredToResearcher":
            case.referred = True
        elif kind == "CommitteeDecided":
            case.decision = intern(payload.decision)
            if in_period:
                figures.decisions += 1
                if payload.decision == "approved":
                    figures.approved += 1
                else:
                    figures.rejected += 1
                if payload.within_window:
                    figures.within_window += 1
                if case.received is not None:
                    days = (ts - case.received) / 86400
                    histogram[math.floor(days)] += 1
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
                    if len(slowest) < SLOWEST:
                        heapq.heappush(slowest, item)
                    elif item[:2] > slowest[0][:2]:
                        heapq.heapreplace(slowest, item)
        elif kind == "ServiceDelivered":
            case.delivered = True
        elif kind == "SurveyAnswered":
            case.surveyed = True
            if in_period:
                bucket = time_bucket(event.occurred_at, granularity)
                service = payload.service_code or case.service or "?"
                channel = payload.channel or case.channel or "?"
                rating = payload.ratings.satisfaction
                for table, key in ((ratings_by_service, service), (ratings_by_channel, channel)):
                    cell = table[(bucket, case.association, key)]
                    cell[0] += 1
                    cell[1] += rating

    # The cohort and the backlog, as of the moment.
    funnel = Counter({stage: 0 for stage in FUNNEL_STAGES})
    outcomes = Counter({outcome: 0 for outcome in OUTCOMES})
    backlog = {label: {stage: 0 for stage in BACKLOG_STAGES} for label, _ in BACKLOG_BUCKETS}
    cohort_ids = []
    for case_id, case in cases.items():
        if case.received is None:
            continue  # no RequestReceived seen: not a request of any period
        if case.cohort:
            cohort_ids.append(case_id)
            funnel["received"] += 1
            funnel["verified"] += case.outcome is not None
            funnel["decided"] += case.decision is not None
            funnel["approved"] += case.decision == "approved"
            funnel["delivered"] += case.delivered
            funnel["surveyed"] += case.surveyed
            if case.outcome:
                outcomes[case.outcome] += 1
            figures.referred += case.referred
        closed = case.delivered or case.decision == "rejected"
        if not closed:
            stage = (
                "awaiting_verification"
                if case.outcome is None
                else "awaiting_decision"
                if case.decision is None
                else "awaiting_delivery"
            )
            backlog[backlog_bucket((moment_ts - case.received) / 86400)][stage] += 1
            figures.backlog_total += 1

    known = list(packs or {})
    figures.associations = [a for a in known if a in associations] + sorted(
        associations - set(known)
    )
    figures.requests_by_channel = {
        a: dict(sorted(c.items())) for a, c in sorted(by_channel.items())
    }
    figures.requests_by_service = {
        a: dict(sorted(c.items())) for a, c in sorted(by_service.items())
    }
    figures.requests_total = sum(sum(c.values()) for c in by_channel.values())
    figures.funnel = {stage: funnel[stage] for stage in FUNNEL_STAGES}
    figures.verification_outcomes = {o: outcomes[o] for o in sorted(outcomes, key=_outcome_order)}
    figures.days_to_decision_histogram = dict(sorted(histogram.items()))
    figures.median_days_to_decision = _median_from_histogram(histogram)
    figures.slowest = [slow for _, _, slow in sorted(slowest, key=lambda i: (-i[0], i[1]))]
    figures.backlog = backlog
    figures.satisfaction_by_service, figures.satisfaction_by_channel = _suppressed_groups(
        ratings_by_service, ratings_by_channel
    )
    figures.cohort_case_ids = frozenset(cohort_ids)
    return figures


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
    *partitions: Mapping[tuple[str, str, str], list[int]],
) -> tuple[list[SatisfactionGroup], ...]:
    """Each partition's groups, with those a reader could work out hidden too.

    A group under MIN_GROUP answers is hidden. The partitions (by service, by
    channel) split the same answers of a month and association, so when one
    partition hides nothing, the others' total is known; a partition whose
    hidden groups then add up to fewer than MIN_GROUP answers would give them
    away by subtraction, and its next smallest shown group is hidden with them.
    """
    hidden: list[set[tuple[str, str, str]]] = [
        {cell for cell, (answers, _) in partition.items() if answers < MIN_GROUP}
        for partition in partitions
    ]
    scopes = {cell[:2] for partition in partitions for cell in partition}
    changed = True
    while changed:
        changed = False
        for scope in scopes:
            hidden_answers = [
                sum(partition[cell][0] for cell in hidden[index] if cell[:2] == scope)
                for index, partition in enumerate(partitions)
            ]
            total_known = any(answers == 0 for answers in hidden_answers)
            for index, partition in enumerate(partitions):
                if not (0 < hidden_answers[index] < MIN_GROUP and total_known):
                    continue
                shown = [
                    cell for cell in partition if cell[:2] == scope and cell not in hidden[index]
                ]
                if shown:
                    hidden[index].add(min(shown, key=lambda cell: (partition[cell][0], cell)))
                    changed = True
    return tuple(_groups(partition, hidden[index]) for index, partition in enumerate(partitions))


def _groups(
    cells: Mapping[tuple[str, str, str], list[int]], hidden: set[tuple[str, str, str]]
) -> list[SatisfactionGroup]:
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
