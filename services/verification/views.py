"""Verification's read model: the officers' queue of pending and confirmed verifications."""

from __future__ import annotations

from typing import Any

from services.verification.domain import Verification
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
                "officer": None,
                "reason": None,
                "submitted_at": submitted_at,
                "confirmed_at": None,
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
            officer=event.officer,
            reason=event.reason,
            confirmed_at=event.confirmed_at.isoformat(),
        )
        views.put(VERIFICATIONS, key, doc)
