"""The privacy service's domain: a data subject's cases, legal holds and erasures.

A data subject is one person within one association, known here only by the
keyed blind index of their national id (`subject_index`, shared/personal): the
number itself is never stored. The subject's aggregate follows their cases
from the request to its closure (the committee rejected it, or the service was
delivered: what closes a case at intake), the legal holds placed on them, and
the erasures of their personal data.

An erasure is recorded in two steps, each an event: the request (who, why, on
what legal basis), then the destruction of the subject's keys (their ids).
Between the two the erasure is pending, and the service completes it on its
next start or sweep: the keyring's destruction can be done again. A case under
a legal hold keeps its subject from erasure until the hold is released. The
retention rule of the association's policy pack erases a subject whose cases
are all closed, the latest longer ago than the pack's retention, and none held.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from shared.errors import Invalid, NotFound, Refused

# Why the keys were destroyed, as the integration event says it.
REQUESTED = "request"
RETENTION = "retention"
REASON_CODES = (REQUESTED, RETENTION)

CLOSING_OUTCOMES = ("rejected", "delivered")
MAX_TEXT = 2000


def subject_id(association_id: str, subject_index: str) -> UUID:
    """The aggregate id of a data subject: derived, so one subject is one aggregate."""
    return uuid5(NAMESPACE_URL, f"khidma:privacy:subject:{association_id}:{subject_index}")


# Refusals -------------------------------------------------------------------------


def legal_hold(case_refs: list[str]) -> Refused:
    refs = ", ".join(case_refs)
    return Refused(
        "legal_hold",
        f"The person's personal data cannot be erased while a case of theirs is under a "
        f"legal hold ({refs}); release the hold first.",
        f"لا يمكن محو البيانات الشخصية لهذا الشخص ما دامت إحدى حالاته تحت حجز قانوني "
        f"({refs})؛ ارفع الحجز أولًا.",
    )


def reason_required() -> Invalid:
    return Invalid(
        "reason_required",
        "Say why the personal data is erased (the reason is required).",
        "اذكر سبب محو البيانات الشخصية (السبب مطلوب).",
    )


def legal_basis_required() -> Invalid:
    return Invalid(
        "legal_basis_required",
        "Name the legal basis of the erasure (for example the PDPL article).",
        "اذكر السند النظامي للمحو (مثل مادة نظام حماية البيانات الشخصية).",
    )


def hold_reason_required() -> Invalid:
    return Invalid(
        "reason_required",
        "Say why the hold is placed or released (the reason is required).",
        "اذكر سبب وضع الحجز أو رفعه (السبب مطلوب).",
    )


def text_too_long(name: str) -> Invalid:
    return Invalid(
        "text_too_long",
        f"The {name} is longer than {MAX_TEXT} characters.",
        f"النص ({name}) أطول من {MAX_TEXT} حرف.",
    )


def case_not_found(case_id: UUID | str) -> NotFound:
    return NotFound(
        "case_not_found",
        f"No request {case_id} is known to the privacy service in this association "
        "(it may take a moment to arrive).",
        f"لا يعرف سجل الخصوصية الطلب {case_id} في هذه الجمعية (قد يستغرق وصوله لحظات).",
    )


def already_held(case_ref: str) -> Refused:
    return Refused(
        "already_held",
        f"The case {case_ref} is already under a legal hold.",
        f"الحالة {case_ref} تحت حجز قانوني بالفعل.",
    )


def not_held(case_ref: str) -> Refused:
    return Refused(
        "not_held",
        f"The case {case_ref} is not under a legal hold.",
        f"الحالة {case_ref} ليست تحت حجز قانوني.",
    )


def required_text(value: str | None, missing: Invalid, name: str) -> str:
    text = (value or "").strip()
    if not text:
        raise missing
    if len(text) > MAX_TEXT:
        raise text_too_long(name)
    return text


# The subject -------------------------------------------------------------------------


@dataclass
class SubjectCase:
    """One of the subject's cases, as the privacy service knows it."""

    case_id: str
    case_ref: str
    personal_key: str | None
    opened_at: datetime
    closed_at: datetime | None = None
    outcome: str | None = None
    hold: dict[str, Any] | None = None
    erased: bool = False


@dataclass
class Erasure:
    erasure_id: str
    reason_code: str
    requested_at: datetime
    completed: bool = False


class Subject(Aggregate):
    """One data subject within one association; its id is derived from both."""

    class Registered(Aggregate.Created):
        association_id: str
        subject_index: str

    @staticmethod
    def create_id(association_id: str, subject_index: str, **_: Any) -> UUID:
        return subject_id(association_id, subject_index)

    @event(Registered)
    def __init__(self, *, association_id: str, subject_index: str):
        self.association_id = association_id
        self.subject_index = subject_index
        self.cases: dict[str, SubjectCase] = {}
        self.erasures: dict[str, Erasure] = {}

    # What the subject's cases are ----------------------------------------------------

    @property
    def live_cases(self) -> list[SubjectCase]:
        """The cases whose personal data has not been erased."""
        return [case for case in self.cases.values() if not case.erased]

    @property
    def held_cases(self) -> list[SubjectCase]:
        return [case for case in self.cases.values() if case.hold is not None]

    @property
    def pending_erasure(self) -> Erasure | None:
        return next((e for e in self.erasures.values() if not e.completed), None)

    def retention_from(self) -> datetime | None:
        """When the retention period of the subject's data began (the latest closure),
        or None while a case is open, held, or nothing is left to erase."""
        live = self.live_cases
        if not live or self.held_cases or self.pending_erasure:
            return None
        if any(case.closed_at is None for case in live):
            return None
        return max(case.closed_at for case in live if case.closed_at is not None)

    def retention_due(self, now: datetime, retention_days: int) -> bool:
        began = self.retention_from()
        return began is not None and now >= began + timedelta(days=retention_days)

    # From the stream ------------------------------------------------------------

    def open_case(
        self, *, case_id: UUID, case_ref: str, personal_key: str | None, opened_at: datetime
    ) -> None:
        """A request of the subject arrived; a revision of a known case changes nothing."""
        if str(case_id) in self.cases:
            return
        self.trigger_event(
            self.CaseOpened,
            case_id=case_id,
            case_ref=case_ref,
            personal_key=personal_key,
            opened_at=opened_at,
        )

    class CaseOpened(Aggregate.Event):
        case_id: UUID
        case_ref: str
        personal_key: str | None
        opened_at: datetime

        def apply(self, subject: Subject) -> None:
            subject.cases[str(self.case_id)] = SubjectCase(
                case_id=str(self.case_id),
                case_ref=self.case_ref,
                personal_key=self.personal_key,
                opened_at=self.opened_at,
            )

    def close_case(
        self, *, case_id: UUID, outcome: str, closed_at: datetime, source_event_id: UUID
    ) -> None:
        """The case closed (rejected, or delivered); once."""
        if outcome not in CLOSING_OUTCOMES:
            raise ValueError(f"a case does not close with {outcome!r}")
        case = self.cases.get(str(case_id))
        if case is None or case.closed_at is not None:
            return
        self.trigger_event(
            self.CaseClosed,
            case_id=case_id,
            outcome=outcome,
            closed_at=closed_at,
            source_event_id=source_event_id,
        )

    class CaseClosed(Aggregate.Event):
        case_id: UUID
        outcome: str
        closed_at: datetime
        source_event_id: UUID

        def apply(self, subject: Subject) -> None:
            case = subject.cases[str(self.case_id)]
            case.closed_at = self.closed_at
            case.outcome = self.outcome

    # Legal holds ------------------------------------------------------------------

    def case(self, case_id: UUID | str) -> SubjectCase:
        case = self.cases.get(str(case_id))
        if case is None:
            raise case_not_found(case_id)
        return case

    def place_hold(
        self, *, case_id: UUID, reason: str, actor: dict[str, Any], placed_at: datetime
    ) -> None:
        case = self.case(case_id)
        reason = required_text(reason, hold_reason_required(), "reason")
        if case.hold is not None:
            raise already_held(case.case_ref)
        self.trigger_event(
            self.HoldPlaced, case_id=case_id, reason=reason, actor=actor, placed_at=placed_at
        )

    class HoldPlaced(Aggregate.Event):
        case_id: UUID
        reason: str
        actor: dict[str, Any]
        placed_at: datetime

        def apply(self, subject: Subject) -> None:
            subject.cases[str(self.case_id)].hold = {
                "reason": self.reason,
                "actor": self.actor,
                "placed_at": self.placed_at,
            }

    def release_hold(
        self, *, case_id: UUID, reason: str, actor: dict[str, Any], released_at: datetime
    ) -> None:
        case = self.case(case_id)
        reason = required_text(reason, hold_reason_required(), "reason")
        if case.hold is None:
            raise not_held(case.case_ref)
        self.trigger_event(
            self.HoldReleased,
            case_id=case_id,
            reason=reason,
            actor=actor,
            released_at=released_at,
        )

    class HoldReleased(Aggregate.Event):
        case_id: UUID
        reason: str
        actor: dict[str, Any]
        released_at: datetime

        def apply(self, subject: Subject) -> None:
            subject.cases[str(self.case_id)].hold = None

    # Erasure ------------------------------------------------------------------------

    def request_erasure(
        self,
        *,
        erasure_id: UUID,
        reason_code: str,
        reason: str,
        legal_basis: str,
        actor: dict[str, Any],
        requested_at: datetime,
    ) -> str:
        """Records the erasure request; returns its id (a pending one's, if any: the
        same person's erasure is completed, not requested twice). Refused while a
        case of the subject is under a legal hold."""
        if reason_code not in REASON_CODES:
            raise ValueError(f"no erasure reason code {reason_code!r}")
        reason = required_text(reason, reason_required(), "reason")
        legal_basis = required_text(legal_basis, legal_basis_required(), "legal basis")
        held = self.held_cases
        if held:
            raise legal_hold(sorted(case.case_ref for case in held))
        pending = self.pending_erasure
        if pending is not None:
            return pending.erasure_id
        self.trigger_event(
            self.ErasureRequested,
            erasure_id=erasure_id,
            reason_code=reason_code,
            reason=reason,
            legal_basis=legal_basis,
            actor=actor,
            requested_at=requested_at,
            case_ids=[case.case_id for case in self.live_cases],
        )
        return str(erasure_id)

    def erase_for_retention(self, *, erasure_id: UUID, now: datetime, retention_days: int) -> bool:
        """Requests the erasure the retention rule calls for; False when it does not."""
        if not self.retention_due(now, retention_days):
            return False
        self.request_erasure(
            erasure_id=erasure_id,
            reason_code=RETENTION,
            reason=f"retention period of {retention_days} days after the case closed ended",
            legal_basis="PDPL: personal data is kept no longer than its purpose needs; "
            f"the association's policy pack keeps it {retention_days} days",
            actor={"kind": "system", "id": "privacy-retention"},
            requested_at=now,
        )
        return True

    class ErasureRequested(Aggregate.Event):
        erasure_id: UUID
        reason_code: str
        reason: str
        legal_basis: str
        actor: dict[str, Any]
        requested_at: datetime
        case_ids: list[str]

        def apply(self, subject: Subject) -> None:
            subject.erasures[str(self.erasure_id)] = Erasure(
                erasure_id=str(self.erasure_id),
                reason_code=self.reason_code,
                requested_at=self.requested_at,
            )

    def record_keys_destroyed(
        self, *, event_id: UUID, erasure_id: str, key_ids: list[str], destroyed_at: datetime
    ) -> None:
        """The keyring destroyed the subject's keys: the erasure is done; once."""
        erasure = self.erasures.get(erasure_id)
        if erasure is None:
            raise ValueError(f"no erasure {erasure_id} was requested for this subject")
        if erasure.completed:
            return
        self.trigger_event(
            self.KeysDestroyed,
            event_id=event_id,
            association_id=self.association_id,
            erasure_id=UUID(erasure_id),
            reason_code=erasure.reason_code,
            key_ids=sorted(key_ids),
            case_ids=[case.case_id for case in self.live_cases],
            destroyed_at=destroyed_at,
        )

    class KeysDestroyed(Aggregate.Event):
        """The subject's keys are destroyed: published as PersonalDataErased."""

        event_id: UUID
        association_id: str
        erasure_id: UUID
        reason_code: str
        key_ids: list[str]
        case_ids: list[str]
        destroyed_at: datetime

        def apply(self, subject: Subject) -> None:
            subject.erasures[str(self.erasure_id)].completed = True
            for case_id in self.case_ids:
                if case_id in subject.cases:
                    subject.cases[case_id].erased = True


class CaseLink(Aggregate):
    """Which subjects a case belongs to (its id is the case id): the closing events
    name the case, not the person."""

    class Registered(Aggregate.Created):
        case_id: UUID
        association_id: str
        subject_ids: list[str]

    @staticmethod
    def create_id(case_id: UUID, **_: Any) -> UUID:
        return case_id

    @event(Registered)
    def __init__(self, *, case_id: UUID, association_id: str, subject_ids: list[str]):
        self.association_id = association_id
        self.subject_ids = list(subject_ids)

    def add_subject(self, subject: UUID) -> None:
        """A correction changed the applicant's national id: the case is theirs too."""
        if str(subject) in self.subject_ids:
            return
        self.trigger_event(self.SubjectAdded, subject_id=str(subject))

    class SubjectAdded(Aggregate.Event):
        subject_id: str

        def apply(self, link: CaseLink) -> None:
            link.subject_ids.append(self.subject_id)
