"""The committee's read model: the agenda, the researcher's queue, and each case."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from services.committee.domain import CommitteeCase
from shared.views import ViewTransaction

CASES = "committee_cases"


def sort_key(at: datetime) -> str:
    """A fixed-width UTC timestamp, so that text order is time order."""
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _current_referral(referrals: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The oldest open referral (the one a closure answers), else the latest one."""
    if not referrals:
        return None
    return next((r for r in referrals if r["open"]), referrals[-1])


def _public_referral(referral: dict[str, Any] | None) -> dict[str, Any] | None:
    if referral is None:
        return None
    return {
        "open": referral["open"],
        "reason": referral["reason"],
        "questions": referral["questions"],
        "referred_by": referral["referred_by"],
        "researcher": referral["researcher"],
        "answers": referral["answers"],
        "note": referral["note"],
    }


def _refresh(doc: dict[str, Any]) -> None:
    """The fields derived from the others, for `ViewStore.find` to filter on."""
    doc["referral"] = _public_referral(_current_referral(doc["referrals"]))
    doc["referral_open"] = any(r["open"] for r in doc["referrals"])
    doc["on_agenda"] = doc["verification_outcome"] == "verified" and doc["decision"] is None


def project(event: Any, views: ViewTransaction) -> None:
    key = str(event.originator_id)
    at = event.timestamp.isoformat()
    if isinstance(event, CommitteeCase.Opened):
        doc: dict[str, Any] = {
            "case_id": key,
            "case_ref": event.case_ref,
            "association_id": event.association_id,
            "service_code": event.service_code,
            "channel": event.channel,
            "received_at": event.received_at.isoformat(),
            "window_days": event.window_days,
            "deadline": event.deadline.isoformat(),
            "verification_outcome": None,
            "referrals": [],
            "decision": None,
            "reasons": [],
            "votes": [],
            "within_window": None,
            "decided_at": None,
            "updated_at": at,
            "sort_key": sort_key(event.deadline),
        }
        _refresh(doc)
        views.put(CASES, key, doc)
        return
    doc = views.get(CASES, key)  # type: ignore[assignment]
    if doc is None:
        return
    if isinstance(event, CommitteeCase.VerificationRecorded):
        doc["verification_outcome"] = event.outcome
    elif isinstance(event, CommitteeCase.ReferralOpened):
        doc["referrals"].append(
            {
                "event_id": str(event.source_event_id),
                "open": True,
                "reason": event.reason,
                "questions": list(event.questions),
                "referred_by": event.referred_by,
                "researcher": None,
                "answers": [],
                "note": None,
            }
        )
    elif isinstance(event, CommitteeCase.ReferralClosed):
        for referral in doc["referrals"]:
            if referral["event_id"] == str(event.referral_event_id):
                referral.update(
                    open=False,
                    researcher=event.researcher,
                    answers=list(event.answers),
                    note=event.note,
                )
    elif isinstance(event, CommitteeCase.Decided):
        doc["decision"] = event.decision
        doc["reasons"] = list(event.reasons)
        doc["votes"] = list(event.votes)
        doc["within_window"] = event.within_window
        doc["decided_at"] = event.decided_at.isoformat()
    else:
        return
    doc["updated_at"] = at
    _refresh(doc)
    views.put(CASES, key, doc)
