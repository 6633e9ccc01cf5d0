"""The committee's domain: a case from its receipt to the decision, and the sittings.

The committee learns three things from the other services (a request was
received, its data was verified, the applicant was referred to the social
researcher); the researcher closes referrals; the committee decides in
sittings (members present, quorum, recusals, votes, dissent notes). The
deadline scanner flags cases approaching and past their decision window.
Each command checks its rule, then records a past-tense event, declared after
the command with the fields it stores and an `apply` that changes the state.
The store keeps an event by its class path (its topic, e.g.
`services.committee.domain:CommitteeCase.Decided`) and its fields by name:
renaming either breaks the replay of older stores, and a field added later
needs a default for the events stored without it. Only `CommitteeCase.Decided`
is public: the outbox publishes it as CommitteeDecided.

A request the applicant corrects arrives again with the next revision: the
committee records its data and declaration, and the case is not verified again
until a DataVerified of that revision arrives. The window keeps running from
the first receipt.

Time is given, never read: the application passes its clock's `now`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from shared.errors import Refused

DECISIONS = ("approved", "rejected")
VOTES = ("approve", "reject", "abstain")
AGAINST = {"approved": "reject", "rejected": "approve"}


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


def is_attested(attestation: dict[str, Any] | None) -> bool:
    """The applicant's declaration (step 4): attested, with the hash of the data attested."""
    return bool(attestation and attestation.get("attested") and attestation.get("data_hash"))


# Refusals given in more than one place ---------------------------------------------


def already_decided(decision: str | None) -> Refused:
    return Refused(
        "already_decided",
        f"The committee already decided this request ({decision}).",
        "سبق أن أصدرت اللجنة قرارها في هذا الطلب.",
    )


def unknown_vote() -> Refused:
    return Refused(
        "unknown_vote",
        "Each vote must be 'approve', 'reject' or 'abstain'.",
        "يجب أن يكون كل صوت موافقة أو رفضاً أو امتناعاً.",
    )


def sitting_closed() -> Refused:
    return Refused("sitting_closed", "This sitting is closed.", "هذه الجلسة مغلقة.")


class CommitteeCase(Aggregate):
    """A case at the committee: its request and revisions, verification, referrals,
    deadline flags and the decision."""

    class Registered(Aggregate.Created):
        """The committee heard of the case: by its request, or by a referral that came first."""

        case_id: UUID
        association_id: str
        case_ref: str
        correlation_id: UUID

    @staticmethod
    def create_id(case_id: UUID, **_: Any) -> UUID:
        return case_id

    @classmethod
    def register(
        cls, *, case_id: UUID, association_id: str, case_ref: str, correlation_id: UUID
    ) -> CommitteeCase:
        """The committee hears of a case: by its request, or by a referral that came first."""
        return cls(
            case_id=case_id,
            association_id=association_id,
            case_ref=case_ref,
            correlation_id=correlation_id,
        )

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
        attestation: dict[str, Any] | None = None,
        revision: int = 1,
    ) -> CommitteeCase:
        """Registers the case and records its request (the usual order)."""
        case = cls.register(
            case_id=case_id,
            association_id=association_id,
            case_ref=case_ref,
            correlation_id=correlation_id,
        )
        case.receive_request(
            request_event_id=request_event_id,
            service_code=service_code,
            channel=channel,
            received_at=received_at,
            window_days=window_days,
            attestation=attestation,
            revision=revision,
        )
        return case

    @event(Registered)
    def __init__(self, *, case_id: UUID, association_id: str, case_ref: str, correlation_id: UUID):
        self.association_id = association_id
        self.case_ref = case_ref
        self.correlation_id = correlation_id
        self.request_event_id: UUID | None = None
        self.service_code: str | None = None
        self.channel: str | None = None
        self.received_at: datetime | None = None
        self.window_days: int | None = None
        self.deadline: datetime | None = None
        # The version of the association's policy the case is governed by, and the
        # quorum that version sets; None for a request recorded before versions.
        self.policy_version: int | None = None
        self.quorum: int | None = None
        self.attestation: dict[str, Any] | None = None
        self.attested = False
        # The id of the applicant's key (from the request), which seals what is personal.
        self.personal_key: str | None = None
        self.revision = 0  # the revision of the request recorded (0: none yet)
        self.revisions: list[dict[str, Any]] = []
        # The newest verification recorded (by revision, then time), perhaps of an
        # older revision than the request's: see `verified`.
        self.verification_outcome: str | None = None
        self.verification_event_id: UUID | None = None
        self.verified_at: datetime | None = None
        self.verification_revision: int | None = None
        # What the newest verification said besides its outcome: the rule an
        # ineligible applicant fails, or the corrections asked for.
        self.verification_details: dict[str, Any] = {}
        self.referrals: list[dict[str, Any]] = []
        self.decision: str | None = None
        self.decision_event_id: UUID | None = None
        self.within_window: bool | None = None
        self.deadline_flags: list[str] = []
        self.noted_event_ids: list[UUID] = []

    def has_noted(self, source_event_id: UUID) -> bool:
        return source_event_id in self.noted_event_ids

    @property
    def received(self) -> bool:
        return self.request_event_id is not None

    @property
    def decided(self) -> bool:
        return self.decision is not None

    @property
    def verified(self) -> bool:
        """Verification of the request as it now stands (its current revision) was recorded."""
        return (
            self.verification_event_id is not None
            and self.verification_outcome is not None
            and self.verification_revision == self.revision
        )

    @property
    def current_verification_outcome(self) -> str | None:
        return self.verification_outcome if self.verified else None

    @property
    def open_referral(self) -> dict[str, Any] | None:
        """The oldest referral the researcher has not closed yet."""
        return next((r for r in self.referrals if r["open"]), None)

    def is_within_window(self, at: datetime) -> bool:
        return self.deadline is not None and at <= self.deadline

    # What the committee learns from the other services ---------------------------

    def receive_request(
        self,
        *,
        request_event_id: UUID,
        service_code: str,
        channel: str,
        received_at: datetime,
        window_days: int,
        attestation: dict[str, Any] | None,
        revision: int = 1,
        corrects: UUID | None = None,
        personal_key: str | None = None,
        policy_version: int | None = None,
        quorum: int | None = None,
    ) -> None:
        """Records the (complete) request; the deadline is fixed now, for good, by the
        window of the policy version that governs it (`policy_version`, with its
        `quorum`).

        `personal_key` is the id of the applicant's key: the declaration (it names
        who attested) is personal data, kept sealed under it (decision 24).

        A newer revision (the applicant corrected the data) records its data and
        declaration; the deadline stays. A repeat, an older revision, and any
        revision after the decision change nothing.
        """
        if self.received:
            if revision > self.revision and not self.decided:
                self.trigger_event(
                    self.RevisionRecorded,
                    request_event_id=request_event_id,
                    revision=revision,
                    corrects=corrects,
                    service_code=service_code,
                    channel=channel,
                    revised_at=received_at,
                    attestation=dict(attestation) if attestation else None,
                    attested=is_attested(attestation),
                    personal_key=personal_key,
                )
            return
        if window_days < 1:
            raise ValueError("the decision window is at least one day")
        self.trigger_event(
            self.RequestRecorded,
            request_event_id=request_event_id,
            service_code=service_code,
            channel=channel,
            received_at=received_at,
            window_days=window_days,
            deadline=decision_deadline(received_at, window_days),
            attestation=dict(attestation) if attestation else None,
            attested=is_attested(attestation),
            revision=revision,
            personal_key=personal_key,
            policy_version=policy_version,
            quorum=quorum,
        )

    class RequestRecorded(Aggregate.Event):
        """The complete request: its window starts and its deadline is fixed."""

        # The declaration names the applicant who attested: sealed at rest under
        # `personal_key` (the store's mapper, shared/personal); older events hold none.
        personal_attributes: ClassVar[tuple[str, ...]] = ("attestation",)

        request_event_id: UUID
        service_code: str
        channel: str
        received_at: datetime
        window_days: int
        deadline: datetime
        attestation: dict[str, Any] | None
        attested: bool
        # Requests recorded before revisions existed are stored without it: the first.
        revision: int = 1
        # The applicant's key id; requests recorded before encryption have none.
        personal_key: str | None = None
        # The policy version governing the case and its quorum; requests recorded
        # before versions have none (the sitting's quorum applies).
        policy_version: int | None = None
        quorum: int | None = None

        def apply(self, aggregate: CommitteeCase) -> None:
            aggregate.received_at = self.received_at
            aggregate.window_days = self.window_days
            aggregate.deadline = self.deadline
            aggregate.policy_version = self.policy_version
            aggregate.quorum = self.quorum
            aggregate._take_revision(self, at=self.received_at)

    class RevisionRecorded(Aggregate.Event):
        """A newer revision of the request (the applicant corrected it); the deadline stays."""

        personal_attributes: ClassVar[tuple[str, ...]] = ("attestation",)

        request_event_id: UUID
        revision: int
        corrects: UUID | None
        service_code: str
        channel: str
        revised_at: datetime
        attestation: dict[str, Any] | None
        attested: bool
        personal_key: str | None = None

        def apply(self, aggregate: CommitteeCase) -> None:
            aggregate._take_revision(self, at=self.revised_at)

    def _take_revision(
        self, recorded: CommitteeCase.RequestRecorded | CommitteeCase.RevisionRecorded, at: datetime
    ) -> None:
        self.request_event_id = recorded.request_event_id
        self.noted_event_ids.append(recorded.request_event_id)
        self.revision = recorded.revision
        self.revisions.append(
            {
                "revision": recorded.revision,
                "request_event_id": recorded.request_event_id,
                "received_at": at,
            }
        )
        self.service_code = recorded.service_code
        self.channel = recorded.channel
        self.attestation = recorded.attestation
        self.attested = recorded.attested
        self.personal_key = recorded.personal_key or self.personal_key

    def record_verification(
        self,
        *,
        source_event_id: UUID,
        outcome: str,
        verified_at: datetime,
        revision: int = 1,
        ineligible_rule: str | None = None,
        ineligible_reason: dict[str, str] | None = None,
        corrections: list[dict[str, str]] | None = None,
    ) -> None:
        """Keeps the newest verification while undecided; its event causes the decision.

        Newest means of the latest revision of the request, then the latest in
        time. A repeated event, an older verification (a message redelivered
        late) and any verification after the decision change nothing.
        """
        if self.has_noted(source_event_id) or self.decided:
            return
        if self.verification_event_id is not None:
            recorded = (self.verification_revision or 1, self.verified_at)
            if (revision, verified_at) < recorded:
                return
        self.trigger_event(
            self.VerificationRecorded,
            source_event_id=source_event_id,
            outcome=outcome,
            verified_at=verified_at,
            revision=revision,
            ineligible_rule=ineligible_rule,
            ineligible_reason=dict(ineligible_reason) if ineligible_reason else None,
            corrections=[dict(c) for c in corrections or []],
        )

    class VerificationRecorded(Aggregate.Event):
        """The outcome of a verification of the request (of one of its revisions)."""

        source_event_id: UUID
        outcome: str
        verified_at: datetime
        # Verifications recorded before revisions existed are stored without these:
        # of the first revision, with no rule, reason or corrections.
        revision: int = 1
        ineligible_rule: str | None = None
        ineligible_reason: dict[str, str] | None = None
        corrections: list[dict[str, str]] | None = None

        def apply(self, aggregate: CommitteeCase) -> None:
            aggregate.noted_event_ids.append(self.source_event_id)
            aggregate.verification_outcome = self.outcome
            aggregate.verification_event_id = self.source_event_id
            aggregate.verified_at = self.verified_at
            aggregate.verification_revision = self.revision
            aggregate.verification_details = {
                "ineligible_rule": self.ineligible_rule,
                "ineligible_reason": dict(self.ineligible_reason)
                if self.ineligible_reason
                else None,
                "corrections": [dict(c) for c in self.corrections or []],
            }

    def open_referral_from(
        self,
        *,
        source_event_id: UUID,
        reason: str,
        questions: list[str],
        referred_by: str,
        personal_key: str | None = None,
    ) -> None:
        """Puts the referred applicant in the researcher's queue, once per referral event.

        `personal_key` is the id of the applicant's key (the referral's): the reason
        and questions are sealed at rest under it; None for a referral made before
        they were sealed."""
        if self.has_noted(source_event_id):
            return
        self.trigger_event(
            self.ReferralOpened,
            source_event_id=source_event_id,
            reason=reason,
            # As given (not copied): an erased list stays marked erased.
            questions=questions,
            referred_by=referred_by,
            personal_key=personal_key or self.personal_key,
        )

    class ReferralOpened(Aggregate.Event):
        """The applicant was referred to the social researcher."""

        # Staff's words about the applicant: sealed at rest under the applicant's key
        # (shared/personal); referrals recorded before they were hold none.
        personal_attributes: ClassVar[tuple[str, ...]] = ("reason", "questions")

        source_event_id: UUID
        reason: str
        questions: list[str]
        referred_by: str
        personal_key: str | None = None

        def apply(self, aggregate: CommitteeCase) -> None:
            aggregate.noted_event_ids.append(self.source_event_id)
            # A referral may come before its request: its key seals what follows too.
            aggregate.personal_key = aggregate.personal_key or self.personal_key
            aggregate.referrals.append(
                {
                    "event_id": self.source_event_id,
                    # As recorded (not copied): an erased value stays marked erased.
                    "reason": self.reason,
                    "questions": self.questions,
                    "referred_by": self.referred_by,
                    "open": True,
                    "researcher": None,
                    "answers": [],
                    "note": None,
                }
            )

    # What the researcher does ------------------------------------------------------

    def close_referral(
        self,
        *,
        researcher: str,
        answers: list[str],
        note: str,
        closed_at: datetime,
        actor: dict[str, str] | None = None,
    ) -> None:
        """The researcher answered the applicant and wrote the note for the committee."""
        referral = self.open_referral
        if referral is None:
            raise Refused(
                "no_open_referral",
                "This request has no open referral to the social researcher.",
                "لا توجد إحالة مفتوحة إلى الباحث الاجتماعي لهذا الطلب.",
            )
        self.trigger_event(
            self.ReferralClosed,
            referral_event_id=referral["event_id"],
            researcher=researcher,
            answers=list(answers),
            note=note,
            closed_at=closed_at,
            actor=dict(actor) if actor else None,
            personal_key=self.personal_key,
        )

    class ReferralClosed(Aggregate.Event):
        """The researcher's answers and note for the committee, closing one referral."""

        # What the applicant told the researcher, and the note about them: sealed at
        # rest under the applicant's key (shared/personal); older closures hold none.
        personal_attributes: ClassVar[tuple[str, ...]] = ("answers", "note")

        referral_event_id: UUID
        researcher: str
        answers: list[str]
        note: str
        closed_at: datetime
        # The authenticated researcher (shared.auth Principal.actor); closures
        # recorded before identities were proven are stored without it.
        actor: dict[str, str] | None = None
        personal_key: str | None = None

        def apply(self, aggregate: CommitteeCase) -> None:
            for referral in aggregate.referrals:
                if referral["event_id"] == self.referral_event_id:
                    referral.update(
                        open=False,
                        researcher=self.researcher,
                        # As recorded (not copied): an erased list stays marked erased.
                        answers=self.answers,
                        note=self.note,
                    )

    # The decision window ---------------------------------------------------------------

    def flag_deadline(self, *, now: datetime, warning_days: int) -> str | None:
        """Flags an undecided case approaching (within `warning_days`) or past its deadline.

        Each flag is recorded once; a case found already past its deadline is
        flagged overdue only. Returns the flag recorded, if any.
        """
        if self.decided or self.deadline is None:
            return None
        if now > self.deadline:
            if "overdue" in self.deadline_flags:
                return None
            self.trigger_event(self.DeadlineOverdue, deadline=self.deadline, flagged_at=now)
            return "overdue"
        if now >= self.deadline - timedelta(days=warning_days):
            if self.deadline_flags:
                return None
            self.trigger_event(self.DeadlineApproaching, deadline=self.deadline, flagged_at=now)
            return "approaching"
        return None

    class DeadlineApproaching(Aggregate.Event):
        deadline: datetime
        flagged_at: datetime

        def apply(self, aggregate: CommitteeCase) -> None:
            aggregate.deadline_flags.append("approaching")

    class DeadlineOverdue(Aggregate.Event):
        deadline: datetime
        flagged_at: datetime

        def apply(self, aggregate: CommitteeCase) -> None:
            aggregate.deadline_flags.append("overdue")

    # The committee's decision (taken in a sitting: see Sitting.decide) -------------

    def decide(
        self,
        *,
        event_id: UUID,
        decision: str,
        reasons: list[str],
        votes: list[dict[str, str]],
        decided_at: datetime,
        sitting_id: UUID | None = None,
        members_present: list[str] | None = None,
        quorum: int | None = None,
        recusals: list[str] | None = None,
        dissent_notes: list[str] | None = None,
        actor: dict[str, str] | None = None,
    ) -> None:
        """The committee's answer on a received, attested, verified request."""
        self._refuse_unless_ready_for_decision()
        self._refuse_unless_valid_decision(decision, reasons, votes)
        assert self.deadline is not None and self.window_days is not None
        assert self.verification_event_id is not None
        self.trigger_event(
            self.Decided,
            event_id=event_id,
            causation_id=self.verification_event_id,
            association_id=self.association_id,
            case_ref=self.case_ref,
            correlation_id=self.correlation_id,
            decision=decision,
            reasons=[reason for reason in reasons if reason.strip()],
            votes=[{"member": v["member"], "vote": v["vote"]} for v in votes],
            window_days=self.window_days,
            deadline=self.deadline,
            within_window=self.is_within_window(decided_at),
            decided_at=decided_at,
            sitting_id=str(sitting_id) if sitting_id else None,
            members_present=list(members_present or []),
            quorum=quorum,
            recusals=list(recusals or []),
            dissent_notes=list(dissent_notes or []),
            actor=dict(actor) if actor else None,
            policy_version=self.policy_version,
        )

    class Decided(Aggregate.Event):
        """The committee's decision: the one event published (as CommitteeDecided).

        It carries what the message needs, so that the outbox translates it
        without loading the case.
        """

        event_id: UUID
        causation_id: UUID  # the verification the decision answers
        association_id: str
        case_ref: str
        correlation_id: UUID
        decision: str
        reasons: list[str]
        votes: list[dict[str, str]]
        window_days: int
        deadline: datetime
        within_window: bool
        decided_at: datetime
        sitting_id: str | None
        members_present: list[str]
        quorum: int | None
        recusals: list[str]
        dissent_notes: list[str]
        # The chair who recorded the decision; decisions recorded before identities
        # were proven are stored without it (published as the committee's).
        actor: dict[str, str] | None = None
        policy_version: int | None = None  # the case's

        def apply(self, aggregate: CommitteeCase) -> None:
            aggregate.decision = self.decision
            aggregate.decision_event_id = self.event_id
            aggregate.within_window = self.within_window

    def _refuse_unless_ready_for_decision(self) -> None:
        """The case may be decided: undecided, its request received, attested and
        verified, and no referral still open."""
        if self.decided:
            raise already_decided(self.decision)
        if not self.received:
            raise Refused(
                "request_not_received",
                "The committee has only a referral for this case; the request itself "
                "has not reached it yet.",
                "لم يصل الطلب نفسه إلى اللجنة بعد، وإنما وصلت إحالته فقط.",
            )
        if not self.attested:
            raise Refused(
                "attestation_missing",
                "The applicant has not signed the declaration that the data is correct "
                "(policy step 4); the request cannot go to the committee.",
                "لم يوقّع مقدم الطلب الإقرار بصحة البيانات ومسؤوليته عنها، "
                "فلا يجوز عرض الطلب على اللجنة.",
            )
        if not self.verified:
            # Never verified, or corrected since (a newer revision not verified yet).
            raise Refused(
                "not_verified",
                "The request's data has not been verified yet; the committee cannot decide.",
                "لم يتم التحقق من بيانات الطلب بعد، ولا يمكن للجنة أن تقرر.",
            )
        if self.open_referral is not None:
            # The researcher's note is written for the committee (policy step 3).
            raise Refused(
                "referral_open",
                "The applicant was referred to the social researcher and the referral is "
                "still open; the committee decides once the researcher's note is in the file.",
                "أحيل مقدم الطلب إلى الباحث الاجتماعي ولم تُغلق الإحالة بعد؛ "
                "تقرر اللجنة بعد إضافة مذكرة الباحث إلى الملف.",
            )

    def _refuse_unless_valid_decision(
        self, decision: str, reasons: list[str], votes: list[dict[str, str]]
    ) -> None:
        """The decision is one the rules allow: reasoned, voted, and following the votes."""
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
            raise unknown_vote()
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
                "The decision does not follow the majority of the votes (a tie cannot approve).",
                "القرار لا يوافق أغلبية أصوات اللجنة (ولا يجوز القبول عند تعادل الأصوات).",
            )


class Sitting(Aggregate):
    """A sitting of the research committee: who is present, and what it did with each case.

    A member who declares a conflict of interest on a case is recused from it;
    a vote that member had already cast on the case is withdrawn by the recusal.
    """

    class Convened(Aggregate.Created):
        association_id: str
        members_present: list[str]
        quorum: int
        held_at: datetime
        # The chair who opened the sitting and recorded attendance; sittings
        # convened before identities were proven are stored without it.
        actor: dict[str, str] | None = None

    @classmethod
    def convene(
        cls,
        *,
        association_id: str,
        committee_members: list[str],
        quorum: int,
        members_present: list[str],
        held_at: datetime,
        actor: dict[str, str] | None = None,
    ) -> Sitting:
        if not members_present:
            raise Refused(
                "members_required",
                "A sitting needs the committee members present.",
                "يجب تحديد أعضاء اللجنة الحاضرين للجلسة.",
            )
        unknown = [m for m in members_present if m not in committee_members]
        if unknown:
            raise Refused(
                "unknown_member",
                f"Not members of this association's committee: {', '.join(unknown)}.",
                f"ليسوا من أعضاء لجنة هذه الجمعية: {'، '.join(unknown)}.",
            )
        if len(set(members_present)) != len(members_present):
            raise Refused(
                "duplicate_member",
                "A member is listed as present more than once.",
                "ذُكر أحد الأعضاء الحاضرين أكثر من مرة.",
            )
        return cls(
            association_id=association_id,
            members_present=list(members_present),
            quorum=quorum,
            held_at=held_at,
            actor=dict(actor) if actor else None,
        )

    @event(Convened)
    def __init__(
        self,
        *,
        association_id: str,
        members_present: list[str],
        quorum: int,
        held_at: datetime,
        actor: dict[str, str] | None = None,
    ):
        self.association_id = association_id
        self.members_present = list(members_present)
        self.quorum = quorum
        self.held_at = held_at
        self.convened_by = actor
        self.closed_at: datetime | None = None
        # case id (text) -> {case_ref, recusals {member: reason}, votes {member: {vote, dissent_note}}, decision...}
        self.cases: dict[str, dict[str, Any]] = {}

    @property
    def closed(self) -> bool:
        return self.closed_at is not None

    @property
    def quorate(self) -> bool:
        return len(self.members_present) >= self.quorum

    def case_record(self, case_id: UUID | str) -> dict[str, Any]:
        return self.cases.get(
            str(case_id),
            {"case_ref": None, "recusals": {}, "votes": {}, "decision": None},
        )

    def voters(self, case_id: UUID | str) -> list[str]:
        """The members present who are not recused from this case."""
        recused = self.case_record(case_id)["recusals"]
        return [m for m in self.members_present if m not in recused]

    def _check_case(self, case: CommitteeCase, member: str | None = None) -> None:
        if self.closed:
            raise sitting_closed()
        if case.association_id != self.association_id:
            raise Refused(
                "case_of_another_association",
                "This case belongs to another association's committee.",
                "هذا الطلب يتبع لجنة جمعية أخرى.",
            )
        if case.decided:
            raise already_decided(case.decision)
        if member is not None and member not in self.members_present:
            raise Refused(
                "not_present",
                f"{member} is not among the members present at this sitting.",
                f"العضو {member} ليس من الأعضاء الحاضرين في هذه الجلسة.",
            )

    # Recusal and votes -------------------------------------------------------------------

    def recuse(
        self,
        *,
        case: CommitteeCase,
        member: str,
        reason: str,
        actor: dict[str, str] | None = None,
    ) -> None:
        """A member declares a conflict of interest; a vote already cast is withdrawn."""
        self._check_case(case, member)
        if not reason.strip():
            raise Refused(
                "recusal_reason_required",
                "A recusal needs the reason (the conflict of interest).",
                "يجب ذكر سبب التنحي (تعارض المصالح).",
            )
        record = self.case_record(case.id)
        if member in record["recusals"]:
            raise Refused(
                "already_recused",
                f"{member} is already recused from this case.",
                f"سبق أن تنحّى العضو {member} عن هذا الطلب.",
            )
        self.trigger_event(
            self.MemberRecused,
            case_id=case.id,
            case_ref=case.case_ref,
            member=member,
            reason=reason.strip(),
            withdrawn_vote=record["votes"].get(member, {}).get("vote"),
            actor=dict(actor) if actor else None,
        )

    class MemberRecused(Aggregate.Event):
        case_id: UUID
        case_ref: str
        member: str
        reason: str
        withdrawn_vote: str | None
        # The member who recused, as authenticated; older recusals have none.
        actor: dict[str, str] | None = None

        def apply(self, aggregate: Sitting) -> None:
            record = aggregate._record(self.case_id, self.case_ref)
            record["recusals"][self.member] = self.reason
            record["votes"].pop(self.member, None)

    def cast_vote(
        self,
        *,
        case: CommitteeCase,
        member: str,
        vote: str,
        dissent_note: str | None,
        actor: dict[str, str] | None = None,
    ) -> None:
        """A member present and not recused votes; a later vote replaces an earlier one."""
        self._check_case(case, member)
        if member in self.case_record(case.id)["recusals"]:
            raise Refused(
                "member_recused",
                f"{member} is recused from this case and cannot vote on it.",
                f"العضو {member} متنحٍّ عن هذا الطلب ولا يحق له التصويت عليه.",
            )
        if vote not in VOTES:
            raise unknown_vote()
        self.trigger_event(
            self.VoteCast,
            case_id=case.id,
            case_ref=case.case_ref,
            member=member,
            vote=vote,
            dissent_note=(dissent_note or "").strip() or None,
            revision=case.revision,
            actor=dict(actor) if actor else None,
        )

    class VoteCast(Aggregate.Event):
        case_id: UUID
        case_ref: str
        member: str
        vote: str
        dissent_note: str | None
        # Votes cast before revisions existed are stored without it: on the first.
        revision: int = 1
        # The member who voted, as authenticated; older votes have none.
        actor: dict[str, str] | None = None

        def apply(self, aggregate: Sitting) -> None:
            aggregate._record(self.case_id, self.case_ref)["votes"][self.member] = {
                "vote": self.vote,
                "dissent_note": self.dissent_note,
                "revision": self.revision,
            }

    # The decision -----------------------------------------------------------------------

    def decide(
        self,
        *,
        case: CommitteeCase,
        event_id: UUID,
        decision: str,
        reasons: list[str],
        decided_at: datetime,
        actor: dict[str, str] | None = None,
    ) -> None:
        """Decides the case by the votes of this sitting; records on the case and here."""
        self._check_case(case)
        self._refuse_without_quorum(case)
        record = self.case_record(case.id)
        self._refuse_votes_on_an_earlier_revision(case, record)
        votes = [
            {"member": member, "vote": record["votes"][member]["vote"]}
            for member in self.members_present
            if member in record["votes"]
        ]
        against = AGAINST.get(decision)
        dissent_notes = [
            f"{member}: {cast['dissent_note']}"
            for member, cast in record["votes"].items()
            if cast["vote"] == against and cast["dissent_note"]
        ]
        recusals = [m for m in self.members_present if m in record["recusals"]]
        case.decide(
            event_id=event_id,
            decision=decision,
            reasons=reasons,
            votes=votes,
            decided_at=decided_at,
            sitting_id=self.id,
            members_present=list(self.members_present),
            quorum=self.quorum_for(case),
            recusals=recusals,
            dissent_notes=dissent_notes,
            actor=actor,
        )
        self.trigger_event(
            self.DecisionRecorded,
            case_id=case.id,
            case_ref=case.case_ref,
            decision_event_id=event_id,
            decision=decision,
            reasons=[reason for reason in reasons if reason.strip()],
            deadline=case.deadline,
            within_window=bool(case.within_window),
            decided_at=decided_at,
            dissent_notes=dissent_notes,
            actor=dict(actor) if actor else None,
        )

    class DecisionRecorded(Aggregate.Event):
        case_id: UUID
        case_ref: str
        decision_event_id: UUID
        decision: str
        reasons: list[str]
        deadline: datetime | None
        within_window: bool
        decided_at: datetime
        dissent_notes: list[str]
        # The chair who recorded it, as authenticated; older decisions have none.
        actor: dict[str, str] | None = None

        def apply(self, aggregate: Sitting) -> None:
            aggregate._record(self.case_id, self.case_ref)["decision"] = {
                "decision": self.decision,
                "reasons": list(self.reasons),
                "deadline": self.deadline,
                "within_window": self.within_window,
                "decided_at": self.decided_at,
                "dissent_notes": list(self.dissent_notes),
            }

    def quorum_for(self, case: CommitteeCase) -> int:
        """The quorum a case is decided by: the one of the policy version that governs
        it; for a case recorded before versions, the sitting's."""
        return case.quorum if case.quorum is not None else self.quorum

    def _refuse_without_quorum(self, case: CommitteeCase) -> None:
        voters = self.voters(case.id)
        quorum = self.quorum_for(case)
        if len(voters) < quorum:
            raise Refused(
                "quorum_not_reached",
                f"{len(voters)} members may vote on this case (present and not recused); "
                f"the quorum is {quorum}.",
                f"عدد الأعضاء الذين يحق لهم التصويت على هذا الطلب {len(voters)}، والنصاب {quorum}.",
            )

    def _refuse_votes_on_an_earlier_revision(
        self, case: CommitteeCase, record: dict[str, Any]
    ) -> None:
        stale = sorted(
            member
            for member, cast in record["votes"].items()
            if cast.get("revision", 1) != case.revision
        )
        if stale:
            # The applicant corrected the request after these votes: they judged other data.
            raise Refused(
                "votes_on_an_earlier_revision",
                f"{', '.join(stale)} voted on an earlier revision of the request; the "
                f"applicant has corrected it since (revision {case.revision}). "
                "They vote again on the corrected request.",
                f"صوّت {'، '.join(stale)} على نسخة سابقة من الطلب، وقد صحّحه مقدم الطلب "
                f"بعد ذلك (النسخة {case.revision})؛ فيعيدون التصويت على الطلب المصحّح.",
            )

    def close(self, *, closed_at: datetime, actor: dict[str, str] | None = None) -> None:
        if self.closed:
            raise sitting_closed()
        self.trigger_event(self.Closed, closed_at=closed_at, actor=dict(actor) if actor else None)

    class Closed(Aggregate.Event):
        closed_at: datetime
        # The chair who closed it, as authenticated; older closures have none.
        actor: dict[str, str] | None = None

        def apply(self, aggregate: Sitting) -> None:
            aggregate.closed_at = self.closed_at

    def _record(self, case_id: UUID, case_ref: str) -> dict[str, Any]:
        return self.cases.setdefault(
            str(case_id),
            {"case_ref": case_ref, "recusals": {}, "votes": {}, "decision": None},
        )
