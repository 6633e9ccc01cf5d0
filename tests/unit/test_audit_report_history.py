"""(No test here.) A small history of integration events with known figures, for the report's tests.

Period: 2026-11-01 .. 2026-11-30 (Riyadh days), association `sidr`.

| case | channel | service | what happens | in the period |
|---|---|---|---|---|
| c1 | phone | seedlings | verified, approved after 3 days, delivered, rated 5 | yes |
| c2 | phone | seedlings | verified, approved after 5 days, delivered, rated 4 | yes |
| c3 | phone | seedlings | verified, approved after 20 days (past the 14-day window), delivered, rated 3 | yes |
| c4 | phone | volunteering | referred, verified, approved after 6 days, delivered, rated 5 | yes |
| c5 | website | seedlings | ineligible, rejected after 4 days, rated 2 | yes |
| c6 | website | seedlings | discrepancies, rejected after 6 days, rated 4 | yes |
| c7 | website | volunteering | received on 27 November, nothing since | yes |
| c0 | phone | seedlings | received 10 October, verified; decided on 5 December | no (backlog) |
| c9 | phone | seedlings | received 2 December | no (after) |
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timezone
from typing import Any, Iterator
from uuid import NAMESPACE_URL, UUID, uuid5

from shared.events import (
    CommitteeDecided,
    DataVerified,
    IntegrationEvent,
    ReferredToResearcher,
    RequestReceived,
    ServiceDelivered,
    SurveyAnswered,
)

START, END = date(2026, 11, 1), date(2026, 11, 30)

def case_uuid(name: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"khidma-test-case/{name}")

def at(day: date, hour: int = 9) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=timezone.utc)

class CaseBuilder:
    """Builds one case's events with their causes, in order."""

    def __init__(self, name: str, association: str = "sidr", ref: str | None = None):
        self.case_id = case_uuid(name)
        self.association = association
        self.ref = ref or f"SDR-1448-{name}"
        self.events: list[IntegrationEvent] = []
        self.count = 0

    def _envelope(self, when: datetime, actor: tuple[str, str]) -> dict[str, Any]:
        self.count += 1
        return {
            "event_id": uuid5(self.case_id, str(self.count)),
            "occurred_at": when,
            "association_id": self.association,
            "case_id": self.case_id,
            "case_ref": self.ref,
            "correlation_id": self.case_id,
            "causation_id": self.events[-1].event_id if self.events else None,
            "actor": {"kind": actor[0], "id": actor[1]},
        }

    def received(self, when: datetime, channel: str, service: str) -> "CaseBuilder":
        envelope = self._envelope(when, ("officer", "officer-1"))
        envelope.pop("causation_id")
        self.events.append(RequestReceived(**envelope, payload={
            "channel": channel, "channel_ref": f"ref-{self.case_id}", "service_code": service,
            "applicant": {"national_id": "1000000001", "name": "Test applicant"},
            "attestation": {"attested": True, "method": "in_person", "attested_at": when,
                            "data_hash": hashlib.sha256(str(self.case_id).encode()).hexdigest()},
        }))
        return self

    def verified(self, when: datetime, outcome: str = "verified") -> "CaseBuilder":
        self.events.append(DataVerified(**self._envelope(when, ("officer", "officer-2")), payload={
            "outcome": outcome, "checks": [{"name": "identity", "passed": outcome != "discrepancies"}],
            "officer": "officer-2",
        }))
        return self

    def referred(self, when: datetime) -> "CaseBuilder":
        self.events.append(ReferredToResearcher(**self._envelope(when, ("officer", "officer-1")), payload={
            "reason": "unclear procedure", "referred_by": "officer-1",
        }))
        return self

    def decided(self, when: datetime, decision: str, within: bool = True, window: int = 14) -> "CaseBuilder":
        vote = "approve" if decision == "approved" else "reject"
        self.events.append(CommitteeDecided(**self._envelope(when, ("committee", "sitting-1")), payload={
            "decision": decision, "reasons": ["test"], "window_days": window, "within_window": within,
            "votes": [{"member": m, "vote": vote} for m in ("chair", "member-2", "member-3")],
            "members_present": ["chair", "member-2", "member-3"], "quorum": 3,
        }))
        return self

    def delivered(self, when: datetime) -> "CaseBuilder":
        service = next(e.payload.service_code for e in self.events if e.event_type == "RequestReceived")
        self.events.append(ServiceDelivered(**self._envelope(when, ("officer", "officer-1")), payload={
            "service_code": service, "delivered": "seedlings", "delivered_by": "officer-1",
        }))
        return self

    def surveyed(self, when: datetime, rating: int) -> "CaseBuilder":
        self.events.append(SurveyAnswered(**self._envelope(when, ("applicant", "anonymous")), payload={
            "ratings": {"satisfaction": rating},
        }))
        return self

def nov(day: int, hour: int = 9) -> datetime:
    return at(date(2026, 11, day), hour)

def known_cases() -> list[CaseBuilder]:
    c1 = CaseBuilder("c1").received(nov(2), "phone", "seedlings").verified(nov(3)).decided(nov(5), "approved") \
        .delivered(nov(6)).surveyed(nov(7), 5)
    c2 = CaseBuilder("c2").received(nov(3), "phone", "seedlings").verified(nov(4)).decided(nov(8), "approved") \
        .delivered(nov(9)).surveyed(nov(10), 4)
    c3 = CaseBuilder("c3").received(nov(1), "phone", "seedlings").verified(nov(2)) \
        .decided(nov(21), "approved", within=False).delivered(nov(22)).surveyed(nov(23), 3)
    c4 = CaseBuilder("c4").received(nov(4), "phone", "volunteering").referred(nov(4, 10)).verified(nov(5)) \
        .decided(nov(10), "approved").delivered(nov(11)).surveyed(nov(12), 5)
    c5 = CaseBuilder("c5").received(nov(5), "website", "seedlings").verified(nov(6), "ineligible") \
        .decided(nov(9), "rejected").surveyed(nov(10), 2)
    c6 = CaseBuilder("c6").received(nov(6), "website", "seedlings").verified(nov(7), "discrepancies") \
        .decided(nov(12), "rejected").surveyed(nov(13), 4)
    c7 = CaseBuilder("c7").received(nov(27), "website", "volunteering")
    c0 = CaseBuilder("c0").received(at(date(2026, 10, 10)), "phone", "seedlings").verified(at(date(2026, 10, 11))) \
        .decided(at(date(2026, 12, 5)), "approved")
    c9 = CaseBuilder("c9").received(at(date(2026, 12, 2)), "phone", "seedlings")
    return [c0, c1, c2, c3, c4, c5, c6, c7, c9]

def known_history() -> list[IntegrationEvent]:
    """The events of all the cases, in the order they happened (as the stream holds them)."""
    events = [event for case in known_cases() for event in case.events]
    return sorted(events, key=lambda e: e.occurred_at)

def generated(events: list[IntegrationEvent]) -> Iterator[IntegrationEvent]:
    """A one-pass iterator: proves compute_figures never reads the events twice."""
    yield from events

EXPECTED = {
    "requests_total": 7,
    "by_channel": {"sidr": {"phone": 4, "website": 3}},
    "by_service": {"sidr": {"seedlings": 5, "volunteering": 2}},
    "funnel": {"received": 7, "verified": 6, "decided": 6, "approved": 4, "delivered": 4, "surveyed": 6},
    "outcomes": {"verified": 4, "discrepancies": 1, "ineligible": 1},
    "referred": 1,
    "decisions": 6, "approved": 4, "rejected": 2, "within_window": 5,
    "median_days": 5.0,
    "slowest_first": ("SDR-1448-c3", 20.0),
    "backlog_total": 2,
    "backlog": {"0-7": {"awaiting_verification": 1}, "31-60": {"awaiting_decision": 1}},
    "events_after_period": 2,
}
