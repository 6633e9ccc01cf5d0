"""The committee's application: each method loads, calls one command, saves, returns plain values."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent

from services.committee.domain import CommitteeCase
from shared.clock import Clock, SystemClock
from shared.consumer import RetryLater
from shared.errors import NotFound
from shared.events import DataVerified, ReferredToResearcher, RequestReceived
from shared.store import ServiceApplication

DEFAULT_WINDOW_DAYS = 14  # the seeds say two weeks


class CommitteeApplication(ServiceApplication):
    name = "committee"

    def __init__(
        self,
        env: dict[str, str] | None = None,
        clock: Clock | None = None,
        window_days: int = DEFAULT_WINDOW_DAYS,
    ):
        super().__init__(env)
        if window_days < 1:
            raise ValueError("the decision window is at least one day")
        self.clock = clock or SystemClock()
        self.window_days = window_days

    # What the other services tell the committee -----------------------------------

    def on_request_received(
        self, event: RequestReceived, processing: ProcessingEvent
    ) -> None:
        if self._find_case(event.case_id) is not None:
            return  # the same request, delivered again
        case = CommitteeCase.open(
            case_id=event.case_id,
            request_event_id=event.event_id,
            association_id=event.association_id,
            case_ref=event.case_ref,
            correlation_id=event.correlation_id,
            service_code=event.payload.service_code,
            channel=event.payload.channel,
            received_at=event.occurred_at,
            window_days=self.window_days,
        )
        processing.collect_events(case)

    def on_data_verified(self, event: DataVerified, processing: ProcessingEvent) -> None:
        case = self._case_or_retry(event.case_id, event.event_type)
        case.record_verification(
            source_event_id=event.event_id,
            outcome=event.payload.outcome,
            verified_at=event.occurred_at,
        )
        processing.collect_events(case)

    def on_referred_to_researcher(
        self, event: ReferredToResearcher, processing: ProcessingEvent
    ) -> None:
        case = self._case_or_retry(event.case_id, event.event_type)
        case.open_referral_from(
            source_event_id=event.event_id,
            reason=event.payload.reason,
            questions=list(event.payload.questions),
            referred_by=event.payload.referred_by,
        )
        processing.collect_events(case)

    # The researcher and the committee ------------------------------------------------

    def close_referral(
        self, case_id: UUID, *, researcher: str, answers: list[str], note: str
    ) -> None:
        case = self._get_case(case_id)
        case.close_referral(
            researcher=researcher, answers=answers, note=note, closed_at=self.clock.now()
        )
        self.save(case)

    def decide(
        self,
        case_id: UUID,
        *,
        decision: str,
        reasons: list[str],
        votes: list[dict[str, str]],
    ) -> dict[str, Any]:
        case = self._get_case(case_id)
        case.decide(
            event_id=uuid4(),
            decision=decision,
            reasons=reasons,
            votes=votes,
            decided_at=self.clock.now(),
        )
        self.save(case)
        return {
            "case_id": str(case.id),
            "decision": case.decision,
            "within_window": case.within_window,
        }

    def case_status(self, case_id: UUID) -> dict[str, Any]:
        case = self._get_case(case_id)
        return {
            "case_id": str(case.id),
            "case_ref": case.case_ref,
            "deadline": case.deadline.isoformat(),
            "verification_outcome": case.verification_outcome,
            "referral_open": case.open_referral is not None,
            "decision": case.decision,
            "within_window": case.within_window,
            "version": case.version,
        }

    # -----------------------------------------------------------------------

    def _find_case(self, case_id: UUID) -> CommitteeCase | None:
        try:
            return self.repository.get(case_id)
        except AggregateNotFoundError:
            return None

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
