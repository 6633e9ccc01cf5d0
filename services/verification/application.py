"""Verification's application: each method loads, calls one command, saves, returns plain values."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.persistence import IntegrityError

from services.verification.domain import Verification
from shared.clock import Clock, SystemClock
from shared.errors import NotFound
from shared.events import RequestReceived
from shared.store import ServiceApplication

log = logging.getLogger(__name__)


class VerificationApplication(ServiceApplication):
    name = "verification"

    def __init__(self, env: dict[str, str] | None = None, clock: Clock | None = None):
        super().__init__(env)
        self.clock = clock or SystemClock()

    # What intake tells verification ----------------------------------------------

    def on_request_received(
        self, event: RequestReceived, processing: ProcessingEvent
    ) -> None:
        """Opens the case's verification; the same request arriving again changes nothing."""
        if event.case_id in self.repository:
            log.info(
                "verification already opened; ignoring the request again",
                extra={"case_id": str(event.case_id), "event_id": str(event.event_id)},
            )
            return
        payload = event.payload
        verification = Verification.open(
            case_id=event.case_id,
            request_event_id=event.event_id,
            association_id=event.association_id,
            case_ref=event.case_ref,
            correlation_id=event.correlation_id,
            service_code=payload.service_code,
            channel=payload.channel,
            submitted_at=event.occurred_at,
            applicant=payload.applicant.model_dump(mode="json"),
            attestation=(
                payload.attestation.model_dump(mode="json") if payload.attestation else None
            ),
        )
        processing.collect_events(verification)

    # The verification officer ------------------------------------------------------

    def confirm(
        self,
        case_id: UUID,
        *,
        officer: str,
        outcome: str | None = None,
        reason: str | None = None,
    ) -> str:
        """Confirms (or overrides, with a reason) the suggested outcome; returns the outcome."""
        verification = self._get_verification(case_id)
        verification.confirm(
            event_id=uuid4(),
            officer=officer,
            outcome=outcome,
            reason=reason,
            confirmed_at=self.clock.now(),
        )
        try:
            self.save(verification)
        except IntegrityError:
            # Another instance recorded a confirmation first: confirming again
            # is refused with the usual message rather than a server error.
            self._get_verification(case_id).confirm(
                event_id=uuid4(),
                officer=officer,
                outcome=outcome,
                reason=reason,
                confirmed_at=self.clock.now(),
            )
            raise
        assert verification.outcome is not None
        return verification.outcome

    def verification_status(self, case_id: UUID) -> dict[str, Any]:
        verification = self._get_verification(case_id)
        return {
            "case_id": str(verification.id),
            "case_ref": verification.case_ref,
            "status": verification.status,
            "suggested_outcome": verification.suggested_outcome,
            "outcome": verification.outcome,
            "version": verification.version,
        }

    # -----------------------------------------------------------------------

    def _get_verification(self, case_id: UUID) -> Verification:
        try:
            return self.repository.get(case_id)
        except AggregateNotFoundError:
            raise NotFound(
                "verification_not_found",
                f"No verification for request {case_id} (it may take a moment to appear).",
                f"لا يوجد تحقق للطلب {case_id} (قد يستغرق ظهوره لحظات).",
            ) from None
