"""The privacy service's read models: the subjects (for the retention sweep), their
cases with their legal holds, and the erasures."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from eventsourcing.domain import DomainEventProtocol

from services.privacy.domain import Subject
from shared.dates import both_calendars
from shared.views import ViewTransaction

SUBJECTS = "privacy_subjects"
CASES = "privacy_cases"
ERASURES = "privacy_erasures"


def retention_from(doc: dict[str, Any]) -> str | None:
    """The latest closure of a subject whose live cases are all closed and none held,
    with no erasure pending (as Subject.retention_from, for finding candidates)."""
    live = [case for case in doc["cases"].values() if not case["erased"]]
    if not live or doc["pending_erasure"] or any(case["held"] for case in doc["cases"].values()):
        return None
    if any(case["closed_at"] is None for case in live):
        return None
    return max(case["closed_at"] for case in live)


def _subject(views: ViewTransaction, key: str, change: Any) -> None:
    doc = views.get(SUBJECTS, key)
    if doc is None:
        return
    change(doc)
    began = retention_from(doc)
    doc["retention_from"] = began
    doc["retention_candidate"] = began is not None
    views.put(SUBJECTS, key, doc)


def _case(views: ViewTransaction, case_id: str, change: Any) -> None:
    doc = views.get(CASES, case_id)
    if doc is not None:
        change(doc)
        views.put(CASES, case_id, doc)


def project(event: DomainEventProtocol, views: ViewTransaction) -> None:
    key = str(event.originator_id)
    if isinstance(event, Subject.Registered):
        views.put(
            SUBJECTS,
            key,
            {
                "subject_id": key,
                "association_id": event.association_id,
                "cases": {},
                "pending_erasure": None,
                "retention_from": None,
                "retention_candidate": False,
                "sort_key": key,
            },
        )
    elif isinstance(event, Subject.CaseOpened | Subject.CaseClosed):
        _project_case(event, key, views)
    elif isinstance(event, Subject.HoldPlaced | Subject.HoldReleased):
        _project_hold(event, key, views)
    elif isinstance(event, Subject.ErasureRequested | Subject.KeysDestroyed):
        _project_erasure(event, key, views)


def _project_case(event: Any, key: str, views: ViewTransaction) -> None:
    case_id = str(event.case_id)
    if isinstance(event, Subject.CaseOpened):
        subject = views.get(SUBJECTS, key) or {}
        opened = event.opened_at.isoformat()
        views.put(
            CASES,
            case_id,
            {
                "case_id": case_id,
                "case_ref": event.case_ref,
                "association_id": subject.get("association_id"),
                "subject_id": key,
                "opened_at": opened,
                "closed_at": None,
                "outcome": None,
                "held": False,
                "hold": None,
                "erased": False,
                "sort_key": opened,
            },
        )
        new = {"closed_at": None, "held": False, "erased": False}
        _subject(views, key, lambda doc: doc["cases"].__setitem__(case_id, new))
        return
    closed = event.closed_at.isoformat()

    def close(doc: dict[str, Any]) -> None:
        doc["closed_at"] = closed
        doc["outcome"] = event.outcome

    _case(views, case_id, close)
    _subject(views, key, lambda doc: doc["cases"][case_id].__setitem__("closed_at", closed))


def _project_hold(event: Any, key: str, views: ViewTransaction) -> None:
    case_id = str(event.case_id)
    placed = isinstance(event, Subject.HoldPlaced)
    at: datetime = event.placed_at if placed else event.released_at

    def hold(doc: dict[str, Any]) -> None:
        doc["held"] = placed
        doc["hold"] = (
            {
                "reason": event.reason,
                "placed_by": event.actor,
                "placed_at": at.isoformat(),
                "placed_at_display": both_calendars(at),
            }
            if placed
            else None
        )

    _case(views, case_id, hold)
    _subject(views, key, lambda doc: doc["cases"][case_id].__setitem__("held", placed))


def _project_erasure(event: Any, key: str, views: ViewTransaction) -> None:
    erasure_id = str(event.erasure_id)
    if isinstance(event, Subject.ErasureRequested):
        subject = views.get(SUBJECTS, key) or {}
        requested = event.requested_at.isoformat()
        views.put(
            ERASURES,
            erasure_id,
            {
                "erasure_id": erasure_id,
                "association_id": subject.get("association_id"),
                "subject_id": key,
                "reason_code": event.reason_code,
                "reason": event.reason,
                "legal_basis": event.legal_basis,
                "requested_by": event.actor,
                "requested_at": requested,
                "requested_at_display": both_calendars(event.requested_at),
                "case_refs": _case_refs(views, event.case_ids),
                "status": "requested",
                "key_ids": [],
                "completed_at": None,
                "completed_at_display": None,
                "sort_key": requested,
            },
        )
        _subject(views, key, lambda doc: doc.__setitem__("pending_erasure", erasure_id))
        return

    def complete(doc: dict[str, Any]) -> None:
        doc["status"] = "completed"
        doc["key_ids"] = list(event.key_ids)
        doc["completed_at"] = event.destroyed_at.isoformat()
        doc["completed_at_display"] = both_calendars(event.destroyed_at)

    doc = views.get(ERASURES, erasure_id)
    if doc is not None:
        complete(doc)
        views.put(ERASURES, erasure_id, doc)
    for case_id in event.case_ids:
        _case(views, case_id, lambda case: case.__setitem__("erased", True))

    def erased(subject: dict[str, Any]) -> None:
        subject["pending_erasure"] = None
        for case_id in event.case_ids:
            if case_id in subject["cases"]:
                subject["cases"][case_id]["erased"] = True

    _subject(views, key, erased)


def _case_refs(views: ViewTransaction, case_ids: list[str]) -> list[str]:
    refs = []
    for case_id in case_ids:
        doc = views.get(CASES, case_id)
        if doc is not None:
            refs.append(doc["case_ref"])
    return sorted(refs)
