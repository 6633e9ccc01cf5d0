"""Intake's application: each method loads, calls one command, saves, returns plain values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.persistence import IntegrityError

from services.intake.domain import Case, ChannelRef, case_reference, channel_ref_id
from shared.clock import Clock, SystemClock
from shared.errors import NotFound
from shared.events import CommitteeDecided, DataVerified
from shared.store import ServiceApplication
from shared.submissions import Submission


@dataclass(frozen=True)
class SubmissionResult:
    case_id: UUID
    case_ref: str
    duplicate: bool


class IntakeApplication(ServiceApplication):
    name = "intake"

    def __init__(self, env: dict[str, str] | None = None, clock: Clock | None = None):
        super().__init__(env)
        self.clock = clock or SystemClock()

    # Front desk --------------------------------------------------------------

    def submit(self, submission: Submission, actor: dict[str, str]) -> SubmissionResult:
        existing = self._case_for_channel_ref(submission)
        if existing is not None:
            return SubmissionResult(existing.id, existing.case_ref, duplicate=True)
        case_id = uuid4()
        case = Case(
            case_id=case_id,
            event_id=uuid4(),
            association_id=submission.association_id,
            case_ref=case_reference(submission.association_id, case_id),
            channel=submission.channel,
            channel_ref=submission.channel_ref,
            service_code=submission.service_code,
            applicant=submission.applicant.model_dump(mode="json"),
            fields=submission.fields,
            attestation=(
                submission.attestation.model_dump(mode="json")
                if submission.attestation
                else None
            ),
            actor=actor,
            received_at=self.clock.now(),
        )
        index = ChannelRef(
            association_id=submission.association_id,
            channel=submission.channel,
            channel_ref=submission.channel_ref,
            case_id=case_id,
        )
        try:
            self.save(case, index)
        except IntegrityError:
            # Another instance registered the same channel reference first.
            existing = self._case_for_channel_ref(submission)
            if existing is None:
                raise
            return SubmissionResult(existing.id, existing.case_ref, duplicate=True)
        return SubmissionResult(case.id, case.case_ref, duplicate=False)

    def refer_to_researcher(
        self, case_id: UUID, *, reason: str, questions: list[str], referred_by: str
    ) -> None:
        case = self._get_case(case_id)
        case.refer_to_researcher(
            event_id=uuid4(),
            at=self.clock.now(),
            reason=reason,
            questions=questions,
            referred_by=referred_by,
        )
        self.save(case)

    def deliver(self, case_id: UUID, *, delivered: str, delivered_by: str) -> None:
        case = self._get_case(case_id)
        case.deliver(
            event_id=uuid4(),
            at=self.clock.now(),
            delivered=delivered,
            delivered_by=delivered_by,
        )
        self.save(case)

    def case_status(self, case_id: UUID) -> dict[str, Any]:
        case = self._get_case(case_id)
        return {
            "case_id": str(case.id),
            "case_ref": case.case_ref,
            "status": case.status,
            "referred": case.referred,
            "version": case.version,
        }

    # What the other services tell intake ---------------------------------------

    def on_data_verified(self, event: DataVerified, processing: ProcessingEvent) -> None:
        case = self._get_case(event.case_id)
        case.note_verification(
            source_event_id=event.event_id, outcome=event.payload.outcome
        )
        processing.collect_events(case)

    def on_committee_decided(
        self, event: CommitteeDecided, processing: ProcessingEvent
    ) -> None:
        case = self._get_case(event.case_id)
        case.note_decision(source_event_id=event.event_id, decision=event.payload.decision)
        processing.collect_events(case)

    # -----------------------------------------------------------------------

    def _get_case(self, case_id: UUID) -> Case:
        try:
            return self.repository.get(case_id)
        except AggregateNotFoundError:
            raise NotFound(
                "case_not_found",
                f"No request with id {case_id}.",
                f"لا يوجد طلب بالرقم {case_id}.",
            ) from None

    def _case_for_channel_ref(self, submission: Submission) -> Case | None:
        index_id = channel_ref_id(
            submission.association_id, submission.channel, submission.channel_ref
        )
        try:
            index: ChannelRef = self.repository.get(index_id)
        except AggregateNotFoundError:
            return None
        return self.repository.get(index.case_id)
