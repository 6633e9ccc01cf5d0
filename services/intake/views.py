"""Intake's read model: where each request stands, for the applicant and the front desk."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.intake.domain import Case, CaseStatus, explained_ineligibility, status_after
from shared.views import ViewTransaction

CASES = "cases"
REFS = "case_refs"
# The cases a dead letter holds, by case id: what /ready and the metrics count.
HELD = "held_cases"


def _iso(moment: Any) -> str:
    return moment.isoformat() if isinstance(moment, datetime) else str(moment)


def project(event: Any, views: ViewTransaction) -> None:
    key = str(event.originator_id)
    # The clock's time where the event has it (testable); the store's otherwise.
    at = _iso(getattr(event, "at", None) or getattr(event, "submitted_at", None) or event.timestamp)
    if isinstance(event, Case.Submitted):
        views.put(
            CASES,
            key,
            {
                "case_id": key,
                "case_ref": event.case_ref,
                "association_id": event.association_id,
                "channel": event.channel,
                "channel_ref": event.channel_ref,
                "linked_channels": [],
                "service_code": event.service_code,
                "status": CaseStatus.INCOMPLETE,
                "complete": False,
                "missing": [],
                "revision": 1,
                # What verification asks the applicant to correct, while it does.
                "corrections": [],
                # Why the applicant is not eligible, when verification found so.
                "ineligible_reason": None,
                "referred": False,
                "submitted_at": at,
                "received_at": None,
                "updated_at": at,
                "sort_key": at,
                "history": [{"at": at, "what": "submitted"}],
            },
        )
        views.put(REFS, event.case_ref, {"case_id": key})
        return
    doc = views.get(CASES, key)
    if doc is None:
        return
    if isinstance(event, Case.InformationRequested):
        doc["missing"] = event.missing
        what = "information_requested"
    elif isinstance(event, Case.InformationAdded):
        what = "information_added"
    elif isinstance(event, Case.Completed):
        doc["complete"] = True
        doc["missing"] = []
        doc["received_at"] = at
        what = "received"
    elif isinstance(event, Case.DuplicateLinked):
        doc["linked_channels"].append(
            {"channel": event.channel, "channel_ref": event.channel_ref, "at": at}
        )
        what = f"duplicate_linked:{event.channel}"
    elif isinstance(event, Case.ReferredToResearcher):
        doc["referred"] = True
        what = "referred_to_researcher"
    elif isinstance(event, Case.Corrected):
        what = "corrected"
    elif isinstance(event, Case.Resubmitted):
        doc["revision"] = event.revision
        doc["corrections"] = []
        doc["missing"] = []
        doc["resubmitted_at"] = at
        what = f"resubmitted:{event.revision}"
    elif isinstance(event, Case.VerificationNoted):
        doc["corrections"] = (
            list(event.corrections or []) if event.outcome == "discrepancies" else []
        )
        doc["ineligible_reason"] = (
            explained_ineligibility(event.ineligible_reason, event.ineligible_rule)
            if event.outcome == "ineligible"
            else None
        )
        doc["verified_revision"] = event.revision
        what = f"verification:{event.outcome}"
    elif isinstance(event, Case.DecisionNoted):
        what = f"decision:{event.decision}"
    elif isinstance(event, Case.ServiceDelivered):
        doc["delivered_at"] = at
        what = "delivered"
    elif isinstance(event, Case.Held | Case.HoldLifted):
        what = _project_hold(event, doc, views)
    else:
        return
    doc["status"] = status_after(CaseStatus(doc["status"]), event)
    doc["updated_at"] = at
    doc["history"].append({"at": at, "what": what})
    views.put(CASES, key, doc)


def _project_hold(
    event: Case.Held | Case.HoldLifted, doc: dict[str, Any], views: ViewTransaction
) -> str:
    """The dead letters holding the case, on its document and in the held view."""
    held_by = [h for h in doc.get("held_by", []) if h["key"] != event.key]
    if isinstance(event, Case.Held):
        held_by.append(
            {
                "key": event.key,
                "service": event.service,
                "reason": event.reason,
                "at": _iso(event.at),
            }
        )
    doc["held_by"] = held_by
    doc["held"] = bool(held_by)
    if held_by:
        views.put(HELD, doc["case_id"], {"case_id": doc["case_id"], "held_by": held_by})
    else:
        views.delete(HELD, doc["case_id"])
    return "held" if isinstance(event, Case.Held) else "hold_lifted"
