"""The committee's read model: the agenda, the researcher's queue, deadlines, and each case."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from services.committee.domain import CommitteeCase
from shared.dates import both_calendars
from shared.views import ViewTransaction

CASES = "committee_cases"
NO_DEADLINE_KEY = "9999-12-31T23:59:59.999999Z"  # cases known only by a referral sort last


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
    undecided = doc["received"] and doc["decision"] is None
    # The agenda: received, attested (step 4), verified and undecided.
    doc["on_agenda"] = bool(
        undecided and doc["attested"] and doc["verification_outcome"] == "verified"
    )
    # Candidates for the deadline scanner: undecided and not yet flagged overdue.
    doc["deadline_watch"] = bool(undecided and doc["deadline_flag"] != "overdue")
    doc["deadline_flagged"] = bool(undecided and doc["deadline_flag"] is not None)


def project(event: Any, views: ViewTransaction) -> None:
    key = str(event.originator_id)
    at = event.timestamp.isoformat()
    if isinstance(event, CommitteeCase.Registered):
        doc: dict[str, Any] = {
            "case_id": key,
            "case_ref": event.case_ref,
            "association_id": event.association_id,
            "received": False,
            "service_code": None,
            "channel": None,
            "received_at": None,
            "received_at_display": None,
            "window_days": None,
            "deadline": None,
            "deadline_display": None,
            "attested": False,
            "attestation": None,
            "verification_outcome": None,
            "referrals": [],
            "decision": None,
            "reasons": [],
            "votes": [],
            "sitting_id": None,
            "members_present": [],
            "quorum": None,
            "recusals": [],
            "dissent_notes": [],
            "within_window": None,
            "decided_at": None,
            "decided_at_display": None,
            "deadline_flag": None,
            "deadline_flagged_at": None,
            "deadline_flagged_at_display": None,
            "updated_at": at,
            "sort_key": NO_DEADLINE_KEY,
        }
        _refresh(doc)
        views.put(CASES, key, doc)
        return
    doc = views.get(CASES, key)  # type: ignore[assignment]
    if doc is None:
        return
    if isinstance(event, CommitteeCase.RequestRecorded):
        doc.update(
            received=True,
            service_code=event.service_code,
            channel=event.channel,
            received_at=event.received_at.isoformat(),
            received_at_display=both_calendars(event.received_at),
            window_days=event.window_days,
            deadline=event.deadline.isoformat(),
            deadline_display=both_calendars(event.deadline),
            attested=event.attested,
            attestation=event.attestation,
            sort_key=sort_key(event.deadline),
        )
    elif isinstance(event, CommitteeCase.VerificationRecorded):
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
    elif isinstance(event, (CommitteeCase.DeadlineApproaching, CommitteeCase.DeadlineOverdue)):
        doc["deadline_flag"] = (
            "overdue" if isinstance(event, CommitteeCase.DeadlineOverdue) else "approaching"
        )
        doc["deadline_flagged_at"] = event.flagged_at.isoformat()
        doc["deadline_flagged_at_display"] = both_calendars(event.flagged_at)
    elif isinstance(event, CommitteeCase.Decided):
        doc.update(
            decision=event.decision,
            reasons=list(event.reasons),
            votes=list(event.votes),
            within_window=event.within_window,
            decided_at=event.decided_at.isoformat(),
            decided_at_display=both_calendars(event.decided_at),
            sitting_id=event.sitting_id,
            members_present=list(event.members_present),
            quorum=event.quorum,
            recusals=list(event.recusals),
            dissent_notes=list(event.dissent_notes),
        )
    else:
        return
    doc["updated_at"] = at
    _refresh(doc)
    views.put(CASES, key, doc)
