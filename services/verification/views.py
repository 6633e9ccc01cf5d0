"""Verification's read model: the officers' queue of pending and confirmed verifications."""

from __future__ import annotations

from typing import Any

from services.verification.domain import Verification, corrections_of, ineligible_rule_of
from shared.dates import both_calendars
from shared.views import ViewTransaction

VERIFICATIONS = "verifications"
STATUSES: tuple[str, ...] = ("pending", "confirmed")


def project(event: Any, views: ViewTransaction) -> None:
    key = str(event.originator_id)
    if isinstance(event, Verification.Opened):
        submitted_at = event.submitted_at.isoformat()
        views.put(
            VERIFICATIONS,
            key,
            {
                "case_id": key,
                "case_ref": event.case_ref,
                "association_id": event.association_id,
                "service_code": event.service_code,
                "channel": event.channel,
                "status": "pending",
                "suggested_outcome": event.suggested_outcome,
                "outcome": None,
                "checks": event.checks,
                # What the applicant would be told if the officer confirms as suggested.
                "corrections": corrections_of(event.checks),
                "ineligible_rule": ineligible_rule_of(event.checks),
                "override_reason": None,
                "officer": None,
                "reason": None,
                "submitted_at": submitted_at,
                "submitted_at_display": both_calendars(event.submitted_at),
                "confirmed_at": None,
                "confirmed_at_display": None,
                # Oldest submission first: the queue is worked in arrival order.
                "sort_key": submitted_at,
            },
        )
        return
    doc = views.get(VERIFICATIONS, key)
    if doc is None:
        return
    if isinstance(event, Verification.Confirmed):
        doc.update(
            status="confirmed",
            outcome=event.outcome,
            checks=event.checks,
            corrections=getattr(event, "corrections", None) or [],
            ineligible_rule=getattr(event, "ineligible_rule", None),
            override_reason=getattr(event, "override_reason", None),
            officer=event.officer,
            reason=event.reason,
            confirmed_at=event.confirmed_at.isoformat(),
            confirmed_at_display=both_calendars(event.confirmed_at),
        )
        views.put(VERIFICATIONS, key, doc)
