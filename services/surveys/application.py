"""Surveys' application: each method loads, calls one command, saves, returns plain values."""

from __future__ import annotations

import secrets
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.persistence import IntegrityError

from services.surveys.domain import Survey, already_answered, survey_not_found
from shared.clock import Clock, SystemClock
from shared.consumer import RetryLater
from shared.events import CommitteeDecided, Ratings, RequestReceived, ServiceDelivered
from shared.store import ServiceApplication


def new_token() -> str:
    return secrets.token_urlsafe(16)


class SurveysApplication(ServiceApplication):
    name = "surveys"

    def __init__(self, env: dict[str, str] | None = None, clock: Clock | None = None):
        super().__init__(env)
        self.clock = clock or SystemClock()

    # What the other services tell surveys ----------------------------------------

    def on_request_received(
        self, event: RequestReceived, processing: ProcessingEvent
    ) -> None:
        if self._find(event.case_id) is not None:
            return  # the same request arrived again
        survey = Survey(
            case_id=event.case_id,
            association_id=event.association_id,
            case_ref=event.case_ref,
            correlation_id=event.correlation_id,
            channel=event.payload.channel,
            service_code=event.payload.service_code,
        )
        processing.collect_events(survey)

    def on_service_delivered(
        self, event: ServiceDelivered, processing: ProcessingEvent
    ) -> None:
        self._invite(event.case_id, "delivered", event.event_id, processing)

    def on_committee_decided(
        self, event: CommitteeDecided, processing: ProcessingEvent
    ) -> None:
        # An approved request is surveyed after delivery, not after the decision.
        if event.payload.decision != "rejected":
            return
        self._invite(event.case_id, "rejected", event.event_id, processing)

    def _invite(
        self, case_id: UUID, stage: str, causation_id: UUID, processing: ProcessingEvent
    ) -> None:
        survey = self._find(case_id)
        if survey is None:
            raise RetryLater(f"case {case_id} is not registered yet")
        survey.invite(
            stage=stage,
            causation_id=causation_id,
            token=new_token(),
            invited_at=self.clock.now(),
        )
        processing.collect_events(survey)

    # The applicant ----------------------------------------------------------------

    def answer(
        self,
        case_id: UUID,
        *,
        token: str,
        ratings: Ratings,
        comment: str | None,
        anonymous: bool,
    ) -> None:
        survey = self._find(case_id)
        if survey is None:
            raise survey_not_found()
        survey.answer(
            token=token,
            event_id=uuid4(),
            ratings=ratings,
            comment=comment,
            anonymous=anonymous,
            answered_at=self.clock.now(),
        )
        try:
            self.save(survey)
        except IntegrityError:
            # Another instance recorded an answer to this survey first.
            current = self._find(case_id)
            if current is not None and current.answered:
                raise already_answered() from None
            raise

    # -----------------------------------------------------------------------------

    def _find(self, case_id: UUID) -> Survey | None:
        try:
            return self.repository.get(case_id)
        except AggregateNotFoundError:
            return None
