"""Verification's read model: the officers' queue of pending and confirmed verifications.

A document shows the current round (the latest revision of the request) at its
top level, and the rounds before it in `earlier_rounds`, as each was found and
confirmed, so the officer and the auditor see the whole history of the case.

A document holds no personal data: the applicant's data and the officer's reason
for a confirmation or an override stay sealed in the store (the case file opens
them; the document says only whether the officer overrode), and a phone check
recorded before its detail stopped naming the number is shown in today's words.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import DomainEventProtocol

from services.verification.domain import (
    Verification,
    corrections_of,
    ineligible_reason_of,
    ineligible_rule_of,
    without_phone_number,
)
from shared.dates import both_calendars
from shared.views import ViewTransaction

VERIFICATIONS = "verifications"
STATUSES: tuple[str, ...] = ("pending", "confirmed")

# The fields of a document that describe one round (moved to `earlier_rounds` by a revision).
ROUND_FIELDS: tuple[str, ...] = (
    "revision",
    "request_event_id",
    "service_code",
    "channel",
    "status",
    "suggested_outcome",
    "outcome",
    "checks",
    "corrections",
    "ineligible_rule",
    "ineligible_reason",
    "overridden",
    "officer",
    "actor",
    "submitted_at",
    "submitted_at_display",
    "confirmed_at",
    "confirmed_at_display",
    "data_verified_event_id",
)


def _new_round(event: Verification.Opened | Verification.Revised) -> dict[str, Any]:
    """A round as the automatic checks found it, before the officer confirms it."""
    return {
        "revision": event.revision,
        "request_event_id": str(event.request_event_id),
        "service_code": event.service_code,
        "channel": event.channel,
        "status": "pending",
        "suggested_outcome": event.suggested_outcome,
        "outcome": None,
        "checks": without_phone_number(event.checks),
        # What the applicant would be told if the officer confirms as suggested.
        "corrections": corrections_of(event.checks),
        "ineligible_rule": ineligible_rule_of(event.checks),
        "ineligible_reason": ineligible_reason_of(event.checks),
        # Whether the officer overrode the suggestion; their reason is in the case file.
        "overridden": False,
        "officer": None,
        # The principal who confirmed ({kind, id, name, role}); none before identities.
        "actor": None,
        "submitted_at": event.submitted_at.isoformat(),
        "submitted_at_display": both_calendars(event.submitted_at),
        "confirmed_at": None,
        "confirmed_at_display": None,
        "data_verified_event_id": None,
    }


def project(event: DomainEventProtocol, views: ViewTransaction) -> None:
    key = str(event.originator_id)
    if isinstance(event, Verification.Opened):
        current = _new_round(event)
        views.put(
            VERIFICATIONS,
            key,
            {
                "case_id": key,
                "case_ref": event.case_ref,
                "association_id": event.association_id,
                **current,
                "earlier_rounds": [],
                # Oldest first submission first: the queue is worked in arrival order,
                # and a corrected request keeps its place (its window kept running).
                "sort_key": current["submitted_at"],
            },
        )
        return
    doc = views.get(VERIFICATIONS, key)
    if doc is None:
        return
    if isinstance(event, Verification.Revised):
        earlier = doc.get("earlier_rounds", [])
        earlier.append({field: doc.get(field) for field in ROUND_FIELDS})
        doc.update(_new_round(event), earlier_rounds=earlier)
        views.put(VERIFICATIONS, key, doc)
    elif isinstance(event, Verification.Confirmed):
        doc.update(
            status="confirmed",
            outcome=event.outcome,
            checks=without_phone_number(event.checks),
            corrections=event.corrections or [],
            ineligible_rule=event.ineligible_rule,
            ineligible_reason=event.ineligible_reason
            or (ineligible_reason_of(event.checks) if event.outcome == "ineligible" else None),
            overridden=event.outcome != event.suggested_outcome,
            officer=event.officer,
            actor=getattr(event, "actor", None),
            confirmed_at=event.confirmed_at.isoformat(),
            confirmed_at_display=both_calendars(event.confirmed_at),
            data_verified_event_id=str(event.event_id),
        )
        views.put(VERIFICATIONS, key, doc)
