"""Surveys' application: each method loads, calls one command, saves, returns plain values."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, Tracking

from services.surveys.domain import (
    Survey,
    already_answered,
    preferred_language,
    survey_closed,
    survey_not_found,
)
from services.surveys.invitations import (
    CONTACT_ERASED,
    Invitation,
    Undeliverable,
    compose_invitation,
    reachable_contact,
    survey_form,
)
from shared.consumer import RetryLater
from shared.events import CommitteeDecided, Ratings, RequestReceived, ServiceDelivered
from shared.personal.mapper import is_erased_value
from shared.personal.requests import open_request
from shared.policy import PolicyPack
from shared.store import ServiceApplication

log = logging.getLogger(__name__)

# The tracking name under which the dispatcher records the invitations it sent.
DISPATCH_TRACKING = "dispatch:invitations"


def new_token() -> str:
    return secrets.token_urlsafe(16)


class SurveysApplication(ServiceApplication):
    name = "surveys"

    def pack(self, association_id: str) -> PolicyPack | None:
        pack = self.packs.get(association_id)
        if pack is None:
            log.warning(
                "no policy pack for association %r: using the generic survey texts",
                association_id,
            )
        return pack

    # What the other services tell surveys ----------------------------------------

    def on_request_received(self, event: RequestReceived, processing: ProcessingEvent) -> None:
        payload = event.payload
        request = open_request(payload, self.sealer)
        phone = request.applicant.phone if request.applicant else None
        email = request.applicant.email if request.applicant else None
        survey = self._find(event.case_id)
        if survey is None:
            survey = Survey(
                case_id=event.case_id,
                association_id=event.association_id,
                case_ref=event.case_ref,
                correlation_id=event.correlation_id,
                channel=payload.channel,
                service_code=payload.service_code,
                phone=phone,
                email=email,
                language=preferred_language(request.fields),
                revision=payload.revision,
                personal_key=payload.personal_key,
            )
        else:
            # The applicant corrected the request (a later revision), or the same
            # or an earlier revision arrived again, which changes nothing.
            survey.revise(
                revision=payload.revision,
                channel=payload.channel,
                service_code=payload.service_code,
                phone=phone,
                email=email,
                language=preferred_language(request.fields),
                personal_key=payload.personal_key,
            )
        processing.collect_events(survey)

    def on_service_delivered(self, event: ServiceDelivered, processing: ProcessingEvent) -> None:
        self._invite(event.case_id, "delivered", event.event_id, processing)

    def on_committee_decided(self, event: CommitteeDecided, processing: ProcessingEvent) -> None:
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
        anonymous_answer = survey.answer(
            token=token,
            event_id=uuid4(),
            ratings=ratings,
            comment=comment,
            anonymous=anonymous,
            answered_at=self.clock.now(),
        )
        try:
            # One transaction: the spent link and the anonymous answer, or neither.
            self.save(survey, *([anonymous_answer] if anonymous_answer else []))
        except IntegrityError:
            # Another instance recorded an answer to this survey first.
            current = self._find(case_id)
            if current is not None and current.answered:
                raise already_answered() from None
            raise

    def survey_for(self, case_id: UUID, token: str) -> dict[str, Any]:
        """The survey as the applicant sees it, while its link still works."""
        survey = self._find(case_id)
        if survey is None or not survey.invited or token != survey.token:
            raise survey_not_found()
        if survey.answered:
            raise survey_closed()
        assert survey.stage is not None and survey.invited_at is not None
        return survey_form(
            association_id=survey.association_id,
            service_code=survey.service_code,
            stage=survey.stage,
            language=survey.language,
            invited_at=survey.invited_at,
            token=token,
            pack=self.pack(survey.association_id),
        )

    # The dispatcher -------------------------------------------------------------

    def invitation_to_send(self, case_id: UUID, base_url: str) -> Invitation | Undeliverable | None:
        """The message of a recorded invitation not yet sent, or why it cannot be sent.

        None once it was sent, or recorded as undeliverable to the contact held.
        """
        survey = self._find(case_id)
        if survey is None or not survey.awaiting_sending:
            return None
        assert survey.token and survey.stage and survey.invited_at
        if is_erased_value(survey.phone) or is_erased_value(survey.email):
            # The applicant was erased: their contact reads as erased, and is not tried.
            return Undeliverable(case_id=case_id, reason=CONTACT_ERASED)
        contact = reachable_contact(survey.phone, survey.email)
        if isinstance(contact, str):
            return Undeliverable(case_id=case_id, reason=contact)
        return compose_invitation(
            case_id=case_id,
            case_ref=survey.case_ref,
            association_id=survey.association_id,
            channel=survey.channel,
            stage=survey.stage,
            contact=contact,
            language=survey.language,
            token=survey.token,
            invited_at=survey.invited_at,
            pack=self.pack(survey.association_id),
            base_url=base_url,
            personal_key=survey.personal_key,
        )

    def record_sent(self, case_id: UUID, message_id: str, position: int) -> None:
        """Records that the invitation went out, with the dispatcher's position."""
        self._record_dispatched(
            case_id,
            position,
            lambda survey: survey.record_sent(message_id=message_id, sent_at=self.clock.now()),
            done=lambda survey: survey.sent,
        )

    def record_undeliverable(self, case_id: UUID, reason: str, position: int) -> None:
        """Records that the invitation cannot be sent, with the dispatcher's position."""
        self._record_dispatched(
            case_id,
            position,
            lambda survey: survey.record_undeliverable(reason=reason, noted_at=self.clock.now()),
            done=lambda survey: not survey.awaiting_sending,
        )

    def _record_dispatched(
        self,
        case_id: UUID,
        position: int,
        record: Callable[[Survey], None],
        *,
        done: Callable[[Survey], bool],
    ) -> None:
        """What the dispatcher did with an invitation, recorded with its position."""
        survey = self._find(case_id)
        if survey is None:
            raise survey_not_found()
        record(survey)
        processing: ProcessingEvent[UUID] = ProcessingEvent(
            tracking=Tracking(DISPATCH_TRACKING, position)
        )
        processing.collect_events(survey)
        try:
            self.record_processing(processing)
        except IntegrityError:
            # Another dispatcher recorded this position first: fine if it did the same.
            current = self._find(case_id)
            if current is None or not done(current):
                raise

    def dispatch_position(self) -> int:
        return self.process_recorder.max_tracking_id(DISPATCH_TRACKING) or 0

    # -----------------------------------------------------------------------------

    def _find(self, case_id: UUID) -> Survey | None:
        try:
            found: Aggregate = self.repository.get(case_id)
        except AggregateNotFoundError:
            return None
        # Only a survey's id is a case id (an anonymous answer's is its own).
        return found if isinstance(found, Survey) else None
