"""The committee's read model: the agenda, the researcher's queue, deadlines, and each case.

Every received, undecided case is on one list, by the outcome of the
verification of the request as it now stands (its current revision):
- `on_agenda`: attested and verified (decided by the votes), or attested and
  ineligible (`expected_decision` "rejected", with the rule the applicant fails);
- `awaiting_correction`: verification found discrepancies; the applicant is to
  correct them, and the window keeps running (`deadline`);
- `awaiting_verification`: not verified yet, or corrected since (a newer revision).

The read model holds nothing personal: of the applicant's declaration it keeps
whether, when, how and the hash of what was attested, never who attested (the
case file reads that from the case, where it is sealed), and "erased" once the
applicant's key was destroyed; of a referral, who referred it and whether it was
answered, never its reason, questions or answers (the researcher's queue and the
case file read them from the case).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.committee.domain import CommitteeCase, Sitting
from shared.dates import both_calendars
from shared.personal.mapper import is_erased_value
from shared.personal.sealing import ERASED_TEXT
from shared.views import ViewTransaction

CASES = "committee_cases"
SITTINGS = "committee_sittings"
NO_DEADLINE_KEY = "9999-12-31T23:59:59.999999Z"  # cases known only by a referral sort last


def sort_key(at: datetime) -> str:
    """A fixed-width UTC timestamp, so that text order is time order."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# The parts of the declaration that name a person: never in the read model.
PERSONAL_ATTESTATION_FIELDS = ("attested_by",)


def attestation_shown(attestation: dict[str, Any] | None) -> dict[str, Any] | None:
    """The declaration as the read model keeps it: without who attested."""
    if is_erased_value(attestation):
        return dict(ERASED_TEXT)
    if not attestation:
        return None
    return {k: v for k, v in attestation.items() if k not in PERSONAL_ATTESTATION_FIELDS}


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
        # The reason and questions are staff's words about the applicant: sealed in
        # the case, shown by the researcher's queue and the case file, not kept here.
        "referred_by": referral["referred_by"],
        "researcher": referral["researcher"],
        # What the applicant told the researcher is personal: the read model keeps
        # only that it was answered; the case file shows it (GET /cases/{id}/file).
        "answered": bool(referral.get("answered")),
    }


def _current_verification(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The verification recorded for the request's current revision, if any."""
    if "verification" not in doc:  # a document projected before revisions existed
        outcome = doc.get("verification_outcome")
        return {"revision": 1, "outcome": outcome} if outcome else None
    latest = doc["verification"]
    if latest is None or latest["revision"] != doc.get("revision", 1):
        return None
    return latest


def _refresh(doc: dict[str, Any]) -> None:
    """The fields derived from the others, for `ViewStore.find` to filter on."""
    doc["referral"] = _public_referral(_current_referral(doc["referrals"]))
    doc["referral_open"] = any(r["open"] for r in doc["referrals"])
    current = _current_verification(doc) or {}
    outcome = current.get("outcome")
    doc["verification_outcome"] = outcome
    doc["ineligible_rule"] = current.get("ineligible_rule") if outcome == "ineligible" else None
    doc["ineligible_reason"] = current.get("ineligible_reason") if outcome == "ineligible" else None
    doc["corrections"] = current.get("corrections", []) if outcome == "discrepancies" else []
    undecided = doc["received"] and doc["decision"] is None
    # The agenda: received, attested (step 4), undecided, verified or ineligible
    # (the committee answers within the window: an ineligible applicant is rejected),
    # and no referral still open (the committee waits for the researcher's note).
    doc["on_agenda"] = bool(
        undecided
        and doc["attested"]
        and outcome in ("verified", "ineligible")
        and not doc.get("referral_open")
    )
    doc["awaiting_research"] = bool(undecided and doc.get("referral_open"))
    doc["expected_decision"] = "rejected" if doc["on_agenda"] and outcome == "ineligible" else None
    doc["awaiting_correction"] = bool(undecided and outcome == "discrepancies")
    doc["awaiting_verification"] = bool(undecided and outcome is None)
    # Candidates for the deadline scanner: undecided and not yet flagged overdue.
    doc["deadline_watch"] = bool(undecided and doc["deadline_flag"] != "overdue")
    doc["deadline_flagged"] = bool(undecided and doc["deadline_flag"] is not None)


def _revision(revision: int, request_event_id: Any, at: datetime) -> dict[str, Any]:
    return {
        "revision": revision,
        "request_event_id": str(request_event_id),
        "received_at": at.isoformat(),
        "received_at_display": both_calendars(at),
    }


def newest_first(at: datetime) -> str:
    """A fixed-width key whose text order is the reverse of time order."""
    return f"{10**17 - int(at.timestamp() * 1_000_000):017d}"


def project_sitting(event: Any, views: ViewTransaction) -> None:
    """The list of sittings: when each was held, who was present, and whether it is closed."""
    key = str(event.originator_id)
    if isinstance(event, Sitting.Convened):
        views.put(
            SITTINGS,
            key,
            {
                "sitting_id": key,
                "association_id": event.association_id,
                "held_at": event.held_at.isoformat(),
                "held_at_display": both_calendars(event.held_at),
                "members_present": list(event.members_present),
                "quorum": event.quorum,
                "closed": False,
                "closed_at": None,
                "sort_key": newest_first(event.held_at),
            },
        )
    elif isinstance(event, Sitting.Closed) and (doc := views.get(SITTINGS, key)):
        doc.update(closed=True, closed_at=event.closed_at.isoformat())
        views.put(SITTINGS, key, doc)


def project(event: Any, views: ViewTransaction) -> None:
    if isinstance(event, (Sitting.Convened, Sitting.Closed)):
        project_sitting(event, views)
        return
    key = str(event.originator_id)
    at = event.timestamp.isoformat()
    if isinstance(event, CommitteeCase.Registered):
        doc = _registered(event, key, at)
    else:
        found = views.get(CASES, key)
        if found is None or not _updated(found, event):
            return
        doc = found
        doc["updated_at"] = at
    _refresh(doc)
    views.put(CASES, key, doc)


def _registered(event: CommitteeCase.Registered, key: str, at: str) -> dict[str, Any]:
    return {
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
        "revision": 0,
        "revisions": [],
        "verification": None,
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


def _updated(doc: dict[str, Any], event: Any) -> bool:
    """Applies one of the case's later events to its document; False for any other event."""
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
            attestation=attestation_shown(event.attestation),
            revision=event.revision,
            revisions=[_revision(event.revision, event.request_event_id, event.received_at)],
            sort_key=sort_key(event.deadline),
        )
    elif isinstance(event, CommitteeCase.RevisionRecorded):
        # The corrected data and its declaration; the deadline stays.
        doc.update(
            service_code=event.service_code,
            channel=event.channel,
            attested=event.attested,
            attestation=attestation_shown(event.attestation),
            revision=event.revision,
            revisions=[
                *doc.get("revisions", []),
                _revision(event.revision, event.request_event_id, event.revised_at),
            ],
        )
    elif isinstance(event, CommitteeCase.VerificationRecorded):
        doc["verification"] = {
            "revision": event.revision,
            "outcome": event.outcome,
            "ineligible_rule": event.ineligible_rule,
            "ineligible_reason": event.ineligible_reason,
            "corrections": list(event.corrections or []),
            "verified_at": event.verified_at.isoformat(),
            "verified_at_display": both_calendars(event.verified_at),
        }
    elif isinstance(event, CommitteeCase.ReferralOpened):
        doc["referrals"].append(
            {
                "event_id": str(event.source_event_id),
                "open": True,
                "referred_by": event.referred_by,
                "researcher": None,
                "answered": False,
            }
        )
    elif isinstance(event, CommitteeCase.ReferralClosed):
        for referral in doc["referrals"]:
            if referral["event_id"] == str(event.referral_event_id):
                referral.update(open=False, researcher=event.researcher, answered=True)
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
        return False
    return True
