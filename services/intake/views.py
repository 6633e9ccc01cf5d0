"""Intake's read model: where each request stands, for the applicant and the front desk."""

from __future__ import annotations

from typing import Any

from services.intake.domain import Case
from shared.views import ViewTransaction

CASES = "cases"
REFS = "case_refs"


def project(event: Any, views: ViewTransaction) -> None:
    key = str(event.originator_id)
    at = event.timestamp.isoformat()
    if isinstance(event, Case.Received):
        views.put(
            CASES,
            key,
            {
                "case_id": key,
                "case_ref": event.case_ref,
                "association_id": event.association_id,
                "channel": event.channel,
                "channel_ref": event.channel_ref,
                "service_code": event.service_code,
                "status": "received",
                "referred": False,
                "received_at": at,
                "updated_at": at,
                "sort_key": at,
                "history": [{"at": at, "what": "received"}],
            },
        )
        views.put(REFS, event.case_ref, {"case_id": key})
        return
    doc = views.get(CASES, key)
    if doc is None:
        return
    if isinstance(event, Case.ReferredToResearcher):
        doc["referred"] = True
        what = "referred_to_researcher"
    elif isinstance(event, Case.VerificationNoted):
        if doc["status"] not in ("approved", "rejected", "delivered"):
            doc["status"] = event.outcome
        what = f"verification:{event.outcome}"
    elif isinstance(event, Case.DecisionNoted):
        doc["status"] = event.decision
        what = f"decision:{event.decision}"
    elif isinstance(event, Case.ServiceDelivered):
        doc["status"] = "delivered"
        what = "delivered"
    else:
        return
    doc["updated_at"] = at
    doc["history"].append({"at": at, "what": what})
    views.put(CASES, key, doc)
