"""The committee's application: each method loads, calls one command, saves, returns plain values."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

# The recorded actor of a command: the authenticated principal in the role it acted
# in (shared.auth Principal.actor), handed in by the HTTP edge.
Actor = Mapping[str, str]

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.domain import Aggregate

from services.committee.domain import AGAINST, CommitteeCase, Sitting
from services.committee.minutes import render_minutes
from shared.clock import Clock
from shared.consumer import RetryLater
from shared.dates import both_calendars
from shared.errors import NotFound
from shared.events import DataVerified, ReferredToResearcher, RequestReceived
from shared.personal import Sealer
from shared.personal.mapper import ErasedList, ErasedText, is_erased_value
from shared.personal.requests import open_request
from shared.personal.sealing import ERASED, ERASED_TEXT
from shared.personal.wire import opened_from_stream
from shared.policy import PolicyPack
from shared.store import ServiceApplication

DEFAULT_WINDOW_DAYS = 14  # the seeds say two weeks; a pack's own window comes first
DEFAULT_WARNING_DAYS = 3


def _display(moment: datetime | None) -> dict[str, str | None] | None:
    return None if moment is None else both_calendars(moment)


def shown(value: Any) -> Any:
    """A personal value as a reader sees it: itself, or the "erased" marker once its
    subject's key was destroyed (decision 24)."""
    return ERASED_TEXT if is_erased_value(value) else value


class CommitteeApplication(ServiceApplication):
    name = "committee"

    def __init__(
        self,
        env: dict[str, str] | None = None,
        clock: Clock | None = None,
        window_days: int = DEFAULT_WINDOW_DAYS,
        packs: Mapping[str, PolicyPack] | None = None,
        warning_days: int = DEFAULT_WARNING_DAYS,
        sealer: Sealer | None = None,
    ):
        super().__init__(env, clock, packs, sealer)
        if window_days < 1:
            raise ValueError("the decision window is at least one day")
        if warning_days < 0:
            raise ValueError("the warning days cannot be negative")
        self.window_days = window_days
        self.warning_days = warning_days

    def governing(self, event: RequestReceived) -> dict[str, Any]:
        """The request's window and quorum, from the policy version that governs it
        (the one it names, or for a request published before versions the one in
        force when it was received); the setting's window without a pack."""
        pack = self.packs.governing(
            event.association_id, event.payload.policy_version, event.occurred_at
        )
        if pack is None:
            return {"window_days": self.window_days, "policy_version": None, "quorum": None}
        return {
            "window_days": pack.decision_window_days,
            "policy_version": pack.number,
            "quorum": pack.committee.quorum,
        }

    # What the other services tell the committee -----------------------------------

    def on_request_received(self, event: RequestReceived, processing: ProcessingEvent) -> None:
        """Records the request, or a newer revision of it (the applicant corrected it)."""
        case = self._find_case(event.case_id)
        if case is not None and case.received and event.payload.revision <= case.revision:
            return  # the same request delivered again, or an older revision late
        if case is None:
            case = CommitteeCase.register(
                case_id=event.case_id,
                association_id=event.association_id,
                case_ref=event.case_ref,
                correlation_id=event.correlation_id,
            )
        # The declaration is sealed on the stream (it names who attested): opened here,
        # at the boundary, and sealed again at rest under the applicant's key.
        attestation = open_request(event.payload, self.sealer).attestation
        case.receive_request(
            request_event_id=event.event_id,
            service_code=event.payload.service_code,
            channel=event.payload.channel,
            # The request is complete when RequestReceived is published: the window starts
            # (a later revision does not restart it).
            received_at=event.occurred_at,
            **self.governing(event),
            attestation=attestation.model_dump(mode="json") if attestation else None,
            revision=event.payload.revision,
            corrects=event.payload.corrects,
            personal_key=event.payload.personal_key,
        )
        processing.collect_events(case)

    def on_data_verified(self, event: DataVerified, processing: ProcessingEvent) -> None:
        case = self._case_or_retry(event.case_id, event.event_type)
        payload = event.payload
        case.record_verification(
            source_event_id=event.event_id,
            outcome=payload.outcome,
            verified_at=event.occurred_at,
            revision=payload.revision,
            ineligible_rule=payload.ineligible_rule,
            ineligible_reason=(
                payload.ineligible_reason.model_dump() if payload.ineligible_reason else None
            ),
            corrections=[correction.model_dump() for correction in payload.corrections],
        )
        processing.collect_events(case)

    def on_referred_to_researcher(
        self, event: ReferredToResearcher, processing: ProcessingEvent
    ) -> None:
        # Intake may refer an incomplete request, before its RequestReceived: the
        # researcher's queue takes it at once; the request merges when it arrives.
        case = self._find_case(event.case_id)
        if case is None:
            case = CommitteeCase.register(
                case_id=event.case_id,
                association_id=event.association_id,
                case_ref=event.case_ref,
                correlation_id=event.correlation_id,
            )
        # Sealed on the stream under the applicant's key: opened here, at the boundary,
        # and sealed again at rest under it. An erased referral is recorded as erased.
        payload = event.payload
        reason = opened_from_stream(payload.reason, self.sealer)
        questions = opened_from_stream(payload.questions, self.sealer)
        case.open_referral_from(
            source_event_id=event.event_id,
            reason=ErasedText("") if reason is ERASED else reason,
            questions=ErasedList() if questions is ERASED else list(questions),
            referred_by=payload.referred_by,
            personal_key=payload.personal_key,
        )
        processing.collect_events(case)

    # The researcher ------------------------------------------------------------------

    def close_referral(
        self,
        case_id: UUID,
        *,
        researcher: str,
        answers: list[str],
        note: str,
        actor: Actor | None = None,
    ) -> None:
        def close() -> None:
            case = self._get_case(case_id)
            case.close_referral(
                researcher=researcher,
                answers=answers,
                note=note,
                closed_at=self.clock.now(),
                actor=dict(actor) if actor else None,
            )
            self.save(case)

        self.retrying(close, "the referral's closure")

    # Sittings -------------------------------------------------------------------------

    def convene(
        self,
        *,
        association_id: str,
        members_present: list[str],
        held_at: datetime | None = None,
        actor: Actor | None = None,
    ) -> dict[str, Any]:
        pack = self._pack(association_id)
        sitting = Sitting.convene(
            association_id=association_id,
            committee_members=self.seats(association_id),
            quorum=pack.committee.quorum,
            members_present=members_present,
            held_at=held_at or self.clock.now(),
            actor=dict(actor) if actor else None,
        )
        self.save(sitting)
        return self.sitting_status(sitting.id)

    def recuse(
        self,
        sitting_id: UUID,
        case_id: UUID,
        *,
        member: str,
        reason: str,
        actor: Actor | None = None,
    ) -> dict[str, Any]:
        def recuse() -> dict[str, Any]:
            sitting, case = self._get_sitting(sitting_id), self._get_case(case_id)
            sitting.recuse(
                case=case, member=member, reason=reason, actor=dict(actor) if actor else None
            )
            self.save(sitting)
            return self._case_in_sitting(sitting, case_id)

        return self.retrying(recuse, "the recusal")

    def vote(
        self,
        sitting_id: UUID,
        case_id: UUID,
        *,
        member: str,
        vote: str,
        dissent_note: str | None = None,
        actor: Actor | None = None,
    ) -> dict[str, Any]:
        def cast() -> dict[str, Any]:
            sitting, case = self._get_sitting(sitting_id), self._get_case(case_id)
            sitting.cast_vote(
                case=case,
                member=member,
                vote=vote,
                dissent_note=dissent_note,
                actor=dict(actor) if actor else None,
            )
            self.save(sitting)
            return self._case_in_sitting(sitting, case_id)

        return self.retrying(cast, "the vote")

    def decide(
        self,
        sitting_id: UUID,
        case_id: UUID,
        *,
        decision: str,
        reasons: list[str],
        actor: Actor | None = None,
    ) -> dict[str, Any]:
        # Decided at the same moment through another instance: reloaded, the case
        # is refused as already decided.
        return self.retrying(
            lambda: self._decide_once(
                sitting_id, case_id, decision=decision, reasons=reasons, actor=actor
            ),
            "the decision",
        )

    def _decide_once(
        self,
        sitting_id: UUID,
        case_id: UUID,
        *,
        decision: str,
        reasons: list[str],
        actor: Actor | None,
    ) -> dict[str, Any]:
        sitting, case = self._get_sitting(sitting_id), self._get_case(case_id)
        sitting.decide(
            case=case,
            event_id=uuid4(),
            decision=decision,
            reasons=reasons,
            decided_at=self.clock.now(),
            actor=dict(actor) if actor else None,
        )
        self.save(sitting, case)  # one transaction: the sitting's record and the case's decision
        assert case.deadline is not None
        return {
            "case_id": str(case.id),
            "case_ref": case.case_ref,
            "sitting_id": str(sitting.id),
            "decision": case.decision,
            "within_window": case.within_window,
            "deadline": case.deadline.isoformat(),
            "deadline_display": both_calendars(case.deadline),
        }

    def close_sitting(self, sitting_id: UUID, actor: Actor | None = None) -> dict[str, Any]:
        def close() -> None:
            sitting = self._get_sitting(sitting_id)
            sitting.close(closed_at=self.clock.now(), actor=dict(actor) if actor else None)
            self.save(sitting)

        self.retrying(close, "the sitting's closure")
        return self.sitting_status(sitting_id)

    def sitting_status(self, sitting_id: UUID) -> dict[str, Any]:
        sitting = self._get_sitting(sitting_id)
        return {
            "sitting_id": str(sitting.id),
            "association_id": sitting.association_id,
            "held_at": sitting.held_at.isoformat(),
            "held_at_display": both_calendars(sitting.held_at),
            "members_present": list(sitting.members_present),
            "quorum": sitting.quorum,
            "quorate": sitting.quorate,
            "closed": sitting.closed,
            "closed_at": sitting.closed_at.isoformat() if sitting.closed_at else None,
            "closed_at_display": _display(sitting.closed_at),
            "cases": [self._case_in_sitting(sitting, case_id) for case_id in sitting.cases],
        }

    def sitting_association(self, sitting_id: UUID) -> str:
        """The association whose committee holds the sitting (NotFound: no such sitting)."""
        return self._get_sitting(sitting_id).association_id

    def seats(self, association_id: str) -> list[str]:
        """The ids of the seats of the association's committee, as its pack names them:
        each is the username its member signs in with."""
        return [member.id for member in self._pack(association_id).committee.members]

    def minutes(self, sitting_id: UUID, lang: str = "ar") -> str:
        """The sitting's minutes: a printable, self-contained HTML page."""
        status = self.sitting_status(sitting_id)
        return render_minutes(status, self._pack(status["association_id"]), lang)

    # The decision window ----------------------------------------------------------------

    def scan_deadlines(self, case_ids: Iterable[UUID | str]) -> list[dict[str, Any]]:
        """Flags each undecided candidate approaching or past its deadline, once per flag.

        The candidates come from the read model; the case itself decides.
        Returns the flags recorded by this scan. Another instance's scanner may
        flag a case between this scan's load and its save: the scan is then
        judged again on the cases as they now are (each flag stays recorded once).
        """
        candidates = list(case_ids)
        return self.retrying(lambda: self._scan_once(candidates), "the deadline flags")

    def _scan_once(self, case_ids: Iterable[UUID | str]) -> list[dict[str, Any]]:
        now = self.clock.now()
        flagged: list[dict[str, Any]] = []
        changed: list[CommitteeCase] = []
        for case_id in case_ids:
            case = self._find_case(UUID(str(case_id)))
            if case is None:
                continue
            flag = case.flag_deadline(now=now, warning_days=self.warning_days)
            if flag:
                changed.append(case)
                flagged.append({"case_id": str(case.id), "case_ref": case.case_ref, "flag": flag})
        if changed:
            self.save(*changed)
        return flagged

    def case_association(self, case_id: UUID) -> str:
        """The association of a case the committee knows (NotFound otherwise)."""
        return self._get_case(case_id).association_id

    def case_file(self, case_id: UUID) -> dict[str, Any]:
        """What the committee holds of the request: what it recorded of the request
        (each revision, the declaration), the verification of it, and each referral
        with its questions, the researcher's answers and note. From the case itself,
        not the read model: what was recorded, at once."""
        case = self._get_case(case_id)
        return {
            "case_id": str(case.id),
            "case_ref": case.case_ref,
            "association_id": case.association_id,
            "request": {
                "received": case.received,
                "service_code": case.service_code,
                "channel": case.channel,
                "received_at": case.received_at.isoformat() if case.received_at else None,
                "received_at_display": _display(case.received_at),
                "window_days": case.window_days,
                "deadline": case.deadline.isoformat() if case.deadline else None,
                "deadline_display": _display(case.deadline),
                # The policy version that governs the case, and the quorum it sets.
                "policy_version": case.policy_version,
                "quorum": case.quorum,
                "revision": case.revision,
                "revisions": [
                    {
                        "revision": revision["revision"],
                        "request_event_id": str(revision["request_event_id"]),
                        "received_at": revision["received_at"].isoformat(),
                        "received_at_display": both_calendars(revision["received_at"]),
                    }
                    for revision in case.revisions
                ],
                "attested": case.attested,
                "attestation": shown(case.attestation),
            },
            "verification": None
            if case.verification_outcome is None
            else {
                "outcome": case.verification_outcome,
                "revision": case.verification_revision,
                # False when the applicant corrected the request since.
                "of_current_revision": case.verified,
                "verified_at": case.verified_at.isoformat() if case.verified_at else None,
                "verified_at_display": _display(case.verified_at),
                **case.verification_details,
            },
            "referrals": [
                {
                    "open": referral["open"],
                    "reason": shown(referral["reason"]),
                    "questions": shown(referral["questions"]),
                    "referred_by": referral["referred_by"],
                    "researcher": referral["researcher"],
                    "answers": shown(referral["answers"]),
                    "note": shown(referral["note"]),
                }
                for referral in case.referrals
            ],
            "decision": case.decision,
        }

    def open_referrals_shown(self, case_ids: Iterable[UUID]) -> dict[str, dict[str, Any]]:
        """The reason and questions of each case's open referral, as the researcher
        reads them (opened from the case, or "erased"), by case id."""
        shown_by_case: dict[str, dict[str, Any]] = {}
        for case_id in case_ids:
            case = self._find_case(case_id)
            referral = case.open_referral if case is not None else None
            if referral is not None:
                shown_by_case[str(case_id)] = {
                    "reason": shown(referral["reason"]),
                    "questions": shown(referral["questions"]),
                }
        return shown_by_case

    def case_status(self, case_id: UUID) -> dict[str, Any]:
        case = self._get_case(case_id)
        return {
            "case_id": str(case.id),
            "case_ref": case.case_ref,
            "association_id": case.association_id,
            "received": case.received,
            "attested": case.attested,
            "deadline": case.deadline.isoformat() if case.deadline else None,
            "deadline_display": _display(case.deadline),
            "revision": case.revision,
            # The outcome of the request as it now stands: none while a correction
            # (a newer revision) waits for its verification.
            "verification_outcome": case.current_verification_outcome,
            "verification_revision": case.verification_revision,
            "referral_open": case.open_referral is not None,
            "decision": case.decision,
            "within_window": case.within_window,
            "deadline_flags": list(case.deadline_flags),
            "version": case.version,
        }

    # -----------------------------------------------------------------------

    def _case_in_sitting(self, sitting: Sitting, case_id: UUID | str) -> dict[str, Any]:
        record = sitting.case_record(case_id)
        decision = record["decision"]
        return {
            "case_id": str(case_id),
            "case_ref": record["case_ref"],
            "voters": sitting.voters(case_id),
            "recusals": [
                {"member": member, "reason": reason}
                for member, reason in record["recusals"].items()
            ],
            "votes": [
                {"member": member, "vote": cast["vote"], "dissent_note": cast["dissent_note"]}
                for member, cast in record["votes"].items()
            ],
            "decision": None
            if decision is None
            else {
                "decision": decision["decision"],
                "reasons": list(decision["reasons"]),
                "within_window": decision["within_window"],
                "dissent_notes": list(decision["dissent_notes"]),
                # The same notes by member, for the minutes to name the member.
                "dissents": [
                    {"member": member, "note": cast["dissent_note"]}
                    for member, cast in record["votes"].items()
                    if cast["vote"] == AGAINST.get(decision["decision"]) and cast["dissent_note"]
                ],
                "deadline": decision["deadline"].isoformat() if decision["deadline"] else None,
                "deadline_display": _display(decision["deadline"]),
                "decided_at": decision["decided_at"].isoformat(),
                "decided_at_display": both_calendars(decision["decided_at"]),
            },
        }

    def _pack(self, association_id: str) -> PolicyPack:
        pack = self.packs.get(association_id)
        if pack is None:
            raise NotFound(
                "unknown_association",
                f"No policy pack for association '{association_id}'.",
                f"لا توجد سياسة معتمدة للجمعية '{association_id}'.",
            )
        return pack

    def _find_case(self, case_id: UUID) -> CommitteeCase | None:
        try:
            found: Aggregate = self.repository.get(case_id)
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, CommitteeCase) else None

    def _case_or_retry(self, case_id: UUID, event_type: str) -> CommitteeCase:
        """The case, or RetryLater: its RequestReceived has not been consumed yet."""
        case = self._find_case(case_id)
        if case is None:
            raise RetryLater(f"{event_type} for case {case_id} before its RequestReceived")
        return case

    def _get_case(self, case_id: UUID) -> CommitteeCase:
        case = self._find_case(case_id)
        if case is None:
            raise NotFound(
                "case_not_found",
                f"No request with id {case_id} has reached the committee.",
                f"لم يصل إلى اللجنة طلب بالرقم {case_id}.",
            )
        return case

    def _get_sitting(self, sitting_id: UUID) -> Sitting:
        try:
            found: Aggregate | None = self.repository.get(sitting_id)
        except AggregateNotFoundError:
            found = None
        if not isinstance(found, Sitting):
            raise NotFound(
                "sitting_not_found",
                f"No committee sitting with id {sitting_id}.",
                f"لا توجد جلسة للجنة بالرقم {sitting_id}.",
            )
        return found
