"""State as of any moment: every case as it stood then, computed from events only."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from audit.timeline import CaseTimeline
from shared.dates import RIYADH, both_calendars, from_hijri


@dataclass
class CaseState:
    case_id: str
    case_ref: str
    association_id: str
    channel: str | None
    service_code: str | None
    status: str
    verification_outcome: str | None
    decision: str | None
    delivered: bool
    referral_open: bool
    survey: str | None  # None, "invited", "answered"
    last_event: dict[str, Any] | None
    #: the request's latest revision received (the applicant's corrections publish it again)
    revision: int = 1
    #: the version of the association's policy the case is governed by (None: received
    #: before policies were versioned, governed by the version in force then)
    policy_version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


STATUS_LABELS = {
    "submitted": {"ar": "مقدَّم (غير مكتمل)", "en": "submitted (incomplete)"},
    "received": {"ar": "مستلم", "en": "received"},
    "verified": {"ar": "تم التحقق", "en": "verified"},
    "approved": {"ar": "مقبول", "en": "approved"},
    "rejected": {"ar": "مرفوض", "en": "rejected"},
    "delivered": {"ar": "سُلّمت الخدمة", "en": "delivered"},
}


def parse_moment(text: str) -> datetime:
    """An ISO moment (UTC when no zone is given) or a day (its end, Riyadh time)."""
    text = text.strip()
    if len(text) == 10:
        return end_of_day(date.fromisoformat(text))
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def end_of_day(day: date) -> datetime:
    """The last moment of a day as people in Riyadh count it, in UTC."""
    return (datetime.combine(day, time(0), RIYADH) + timedelta(days=1, microseconds=-1)).astimezone(
        UTC
    )


def hijri_moment(text: str) -> datetime:
    """`1448-06-11` (Umm al-Qura) → the end of that day."""
    year, month, day = (int(part) for part in text.split("-"))
    return end_of_day(from_hijri(year, month, day))


def state_at(timeline: CaseTimeline, at: datetime) -> CaseState | None:
    """The case as it stood at `at`; None when it did not exist yet."""
    entries = [e for e in timeline.entries if e.occurred_at <= at]
    if not entries:
        return None
    names = {e.event_type for e in entries}
    status = "submitted"
    verification: str | None = None
    decision: str | None = None
    referrals: set[str] = set()
    closed: set[str] = set()
    survey = None
    revision = 0
    policy_version: int | None = None
    for entry in entries:
        kind = entry.event_type
        if kind == "RequestReceived":
            policy_version = policy_version or entry.data.get("policy_version")
            received = entry.revision or 1
            if received > revision and revision and status in ("received", "verified"):
                # A corrected request: its data waits for verification again.
                status, verification = "received", None
            revision = max(revision, received)
            status = "received" if status == "submitted" else status
        elif kind == "DataVerified":
            if (entry.revision or 1) < revision:
                continue  # the verification of an earlier revision, read after the correction
            verification = entry.data.get("outcome")
            status = "verified" if status in ("submitted", "received") else status
        elif kind == "CommitteeDecided":
            decision = entry.data.get("decision")
            if decision is not None and status != "delivered":
                status = decision
        elif kind == "ServiceDelivered":
            status = "delivered"
        elif kind == "ReferredToResearcher" and entry.event_id:
            referrals.add(entry.event_id)
        elif entry.name == "CommitteeCase.ReferralClosed":
            closed.add(str(entry.data.get("referral_event_id")))
        elif entry.name == "Survey.Invited" and survey is None:
            survey = "invited"
        elif kind == "SurveyAnswered" or entry.name == "Survey.AnsweredAnonymously":
            # An anonymous answer is not on the case: only its survey's closure is.
            survey = "answered"
    last = entries[-1]
    return CaseState(
        case_id=timeline.case_id,
        case_ref=timeline.case_ref,
        association_id=timeline.association_id,
        channel=timeline.channel,
        service_code=timeline.service_code,
        status=status,
        verification_outcome=verification,
        decision=decision,
        delivered="ServiceDelivered" in names,
        referral_open=bool(referrals - closed),
        survey=survey,
        last_event={
            "event_type": last.event_type,
            "service": last.service,
            "when": both_calendars(last.occurred_at),
        },
        revision=revision or 1,
        policy_version=policy_version,
    )


def states_as_of(timelines: Iterable[CaseTimeline], at: datetime) -> Iterator[CaseState]:
    for timeline in timelines:
        state = state_at(timeline, at)
        if state is not None:
            yield state
