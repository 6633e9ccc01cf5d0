"""The committee's domain: a case from its receipt to the committee's decision.

The committee learns three things from the other services (a request was
received, its data was verified, the applicant was referred to the social
researcher); it does two things itself (the researcher closes a referral, the
committee decides). Each command checks its rule, then records a past-tense
event. Only `Decided` is public: the outbox publishes it as CommitteeDecided.

Time is given, never read: the application passes its clock's `now`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from shared.errors import Refused

DECISIONS = ("approved", "rejected")
VOTES = ("approve", "reject", "abstain")


def decision_deadline(received_at: datetime, window_days: int) -> datetime:
    """The committee answers within `window_days` of the request's receipt (policy step 5)."""
    return received_at + timedelta(days=window_days)


def majority(votes: list[dict[str, str]]) -> str | None:
    """`approved` or `rejected` when one side has more votes; None on a tie (abstentions do not count)."""
    approvals = sum(1 for vote in votes if vote["vote"] == "approve")
    rejections = sum(1 for vote in votes if vote["vote"] == "reject")
    if approvals > rejections:
        return "approved"
    if rejections > approvals:
        return "rejected"
    return None


class CommitteeCase(Aggregate):
    @staticmethod
    def create_id(case_id: UUID, **_: Any) -> UUID:
        return case_id

    @classmethod
    def open(
        cls,
        *,
        case_id: UUID,
        request_event_id: UUID,
        association_id: str,
        case_ref: str,
        correlation_id: UUID,
        service_code: str,
        channel: str,
        received_at: datetime,
        window_days: int,
    ) -> "CommitteeCase":
        """Opens the case when its request is received; the deadline is fixed now, for good."""
        if window_days < 1:
            raise ValueError("the decision window is at least one day")
        return cls(
            case_id=case_id,
            request_event_id=request_event_id,
            association_id=association_id,
            case_ref=case_ref,
            correlation_id=correlation_id,
            service_code=service_code,
            channel=channel,
            received_at=received_at,
            window_days=window_days,
            deadline=decision_deadline(received_at, window_days),
        )

    @event("Opened")
    def __init__(
        self,
        *,
        case_id: UUID,
        request_event_id: UUID,
        association_id: str,
        case_ref: str,
        correlation_id: UUID,
        service_code: str,
        channel: str,
        received_at: datetime,
        window_days: int,
        deadline: datetime,
    ):
        self.request_event_id = request_event_id
        self.association_id = association_id
        self.case_ref = case_ref
        self.correlation_id = correlation_id
        self.service_code = service_code
        self.channel = channel
        self.received_at = received_at
        self.window_days = window_days
        self.deadline = deadline
        self.verification_outcome: str | None = None
        self.verification_event_id: UUID | None = None
        self.verified_at: datetime | None = None
        self.referrals: list[dict[str, Any]] = []
        self.decision: str | None = None
        self.decision_event_id: UUID | None = None
        self.within_window: bool | None = None
        self.noted_event_ids: list[UUID] = []

    def has_noted(self, source_event_id: UUID) -> bool:
        return source_event_id in self.noted_event_ids

    @property
    def decided(self) -> bool:
        return self.decision is not None

    @property
    def open_referral(self) -> dict[str, Any] | None:
        """The oldest referral the researcher has not closed yet."""
        return next((r for r in self.referrals if r["open"]), None)

    def is_within_window(self, at: datetime) -> bool:
        return at <= self.deadline

    # What the committee learns from the other services ---------------------------

    def record_verification(
        self, *, source_event_id: UUID, outcome: str, verified_at: datetime
    ) -> None:
        """Keeps the latest verification while undecided; its event causes the decision.

        A repeated event, a verification older than the one recorded (a message
        redelivered late) and any verification after the decision change nothing.
        """
        if self.has_noted(source_event_id) or self.decided:
            return
        if self.verified_at is not None and verified_at < self.verified_at:
            return
        self._verification_recorded(
            source_event_id=source_event_id, outcome=outcome, verified_at=verified_at
        )

    @event("VerificationRecorded")
    def _verification_recorded(
        self, *, source_event_id: UUID, outcome: str, verified_at: datetime
    ) -> None:
        self.noted_event_ids.append(source_event_id)
        self.verification_outcome = outcome
        self.verification_event_id = source_event_id
        self.verified_at = verified_at

    def open_referral_from(
        self,
        *,
        source_event_id: UUID,
        reason: str,
        questions: list[str],
        referred_by: str,
    ) -> None:
        """Puts the referred applicant in the researcher's queue, once per referral event."""
        if self.has_noted(source_event_id):
            return
        self._referral_opened(
            source_event_id=source_event_id,
            reason=reason,
            questions=list(questions),
            referred_by=referred_by,
        )

    @event("ReferralOpened")
    def _referral_opened(
        self,
        *,
        source_event_id: UUID,
        reason: str,
        questions: list[str],
        referred_by: str,
    ) -> None:
        self.noted_event_ids.append(source_event_id)
        self.referrals.append(
            {
                "event_id": source_event_id,
                "reason": reason,
                "questions": list(questions),
                "referred_by": referred_by,
                "open": True,
                "researcher": None,
                "answers": [],
                "note": None,
            }
        )

    # What the researcher and the committee do ------------------------------------

    def close_referral(
        self, *, researcher: str, answers: list[str], note: str, closed_at: datetime
    ) -> None:
        """The researcher answered the applicant and wrote the note for the committee."""
        referral = self.open_referral
        if referral is None:
            raise Refused(
                "no_open_referral",
                "This request has no open referral to the social researcher.",
                "لا توجد إحالة مفتوحة إلى الباحث الاجتماعي لهذا الطلب.",
            )
        self._referral_closed(
            referral_event_id=referral["event_id"],
            researcher=researcher,
            answers=list(answers),
            note=note,
            closed_at=closed_at,
        )

    @event("ReferralClosed")
    def _referral_closed(
        self,
        *,
        referral_event_id: UUID,
        researcher: str,
        answers: list[str],
        note: str,
        closed_at: datetime,
    ) -> None:
        for referral in self.referrals:
            if referral["event_id"] == referral_event_id:
                referral.update(
                    open=False, researcher=researcher, answers=list(answers), note=note
                )

    def decide(
        self,
        *,
        event_id: UUID,
        decision: str,
        reasons: list[str],
        votes: list[dict[str, str]],
        decided_at: datetime,
    ) -> None:
        """The committee's answer; quorum and recusal are not rules yet."""
        if self.decided:
            raise Refused(
                "already_decided",
                f"The committee already decided this request ({self.decision}).",
                "سبق أن أصدرت اللجنة قرارها في هذا الطلب.",
            )
        if self.verification_event_id is None or self.verification_outcome is None:
            raise Refused(
                "not_verified",
                "The request's data has not been verified yet; the committee cannot decide.",
                "لم يتم التحقق من بيانات الطلب بعد، ولا يمكن للجنة أن تقرر.",
            )
        if decision not in DECISIONS:
            raise Refused(
                "unknown_decision",
                "The decision must be 'approved' or 'rejected'.",
                "يجب أن يكون القرار إما قبولاً أو رفضاً.",
            )
        if not [reason for reason in reasons if reason.strip()]:
            raise Refused(
                "reasons_required",
                "A decision needs at least one reason.",
                "يجب أن يتضمن القرار سبباً واحداً على الأقل.",
            )
        if not votes:
            raise Refused(
                "votes_required",
                "A decision needs the committee members' votes.",
                "يجب أن يتضمن القرار أصوات أعضاء اللجنة.",
            )
        if any(vote["vote"] not in VOTES for vote in votes):
            raise Refused(
                "unknown_vote",
                "Each vote must be 'approve', 'reject' or 'abstain'.",
                "يجب أن يكون كل صوت موافقة أو رفضاً أو امتناعاً.",
            )
        members = [vote["member"] for vote in votes]
        if len(set(members)) != len(members):
            raise Refused(
                "duplicate_vote",
                "A committee member voted more than once.",
                "صوّت أحد أعضاء اللجنة أكثر من مرة.",
            )
        if decision == "approved" and self.verification_outcome != "verified":
            raise Refused(
                "not_eligible_for_approval",
                "The request cannot be approved: its verification outcome is "
                f"'{self.verification_outcome}', not 'verified'.",
                "لا يمكن قبول الطلب لأن نتيجة التحقق من بياناته ليست «تم التحقق».",
            )
        side = majority(votes)
        if side != decision and not (side is None and decision == "rejected"):
            raise Refused(
                "decision_contradicts_votes",
                "The decision does not follow the majority of the votes "
                "(a tie cannot approve).",
                "القرار لا يوافق أغلبية أصوات اللجنة (ولا يجوز القبول عند تعادل الأصوات).",
            )
        self._decided(
            event_id=event_id,
            causation_id=self.verification_event_id,
            association_id=self.association_id,
            case_ref=self.case_ref,
            correlation_id=self.correlation_id,
            decision=decision,
            reasons=list(reasons),
            votes=[{"member": v["member"], "vote": v["vote"]} for v in votes],
            window_days=self.window_days,
            within_window=self.is_within_window(decided_at),
            decided_at=decided_at,
        )

    @event("Decided")
    def _decided(
        self,
        *,
        event_id: UUID,
        causation_id: UUID,
        association_id: str,
        case_ref: str,
        correlation_id: UUID,
        decision: str,
        reasons: list[str],
        votes: list[dict[str, str]],
        window_days: int,
        within_window: bool,
        decided_at: datetime,
    ) -> None:
        self.decision = decision
        self.decision_event_id = event_id
        self.within_window = within_window
