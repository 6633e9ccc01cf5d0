"""Intake's domain: a request's case, from receipt to delivery.

Each command checks its rule, then records a past-tense event. The events a
request's public life is made of (received, referred, delivered) carry what
the outbox needs to publish them; the others record what intake learnt from
the other services, so it can tell the applicant where the request stands.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, NAMESPACE_URL, uuid5

from eventsourcing.domain import Aggregate, event

from shared.errors import Refused

INTAKE_NAMESPACE = uuid5(NAMESPACE_URL, "https://khidma.example/intake")


def case_reference(association_id: str, case_id: UUID) -> str:
    return f"{association_id[:3].upper()}-{case_id.hex[:8].upper()}"


class Case(Aggregate):
    @staticmethod
    def create_id(case_id: UUID, **_: Any) -> UUID:
        return case_id

    @event("Received")
    def __init__(
        self,
        *,
        case_id: UUID,
        event_id: UUID,
        association_id: str,
        case_ref: str,
        channel: str,
        channel_ref: str,
        service_code: str,
        applicant: dict[str, Any],
        fields: dict[str, Any],
        attestation: dict[str, Any] | None,
        actor: dict[str, str],
        received_at: datetime,
    ):
        self.association_id = association_id
        self.case_ref = case_ref
        self.channel = channel
        self.channel_ref = channel_ref
        self.service_code = service_code
        self.received_event_id = event_id
        self.received_at = received_at
        self.status = "received"
        self.referred = False
        self.verification_outcome: str | None = None
        self.decision: str | None = None
        self.decision_event_id: UUID | None = None
        self.delivered = False
        self.noted_event_ids: list[UUID] = []

    @property
    def correlation_id(self) -> UUID:
        return self.received_event_id

    def _public(self, event_id: UUID, causation_id: UUID) -> dict[str, Any]:
        """What every event intake publishes about this case carries."""
        return {
            "event_id": event_id,
            "causation_id": causation_id,
            "association_id": self.association_id,
            "case_ref": self.case_ref,
            "correlation_id": self.correlation_id,
        }

    # Commands of the front desk -------------------------------------------------

    def refer_to_researcher(
        self,
        *,
        event_id: UUID,
        at: datetime,
        reason: str,
        questions: list[str],
        referred_by: str,
    ) -> None:
        if self.delivered:
            raise Refused(
                "case_closed",
                "The service was already delivered; the case cannot be referred.",
                "تم تقديم الخدمة، ولا يمكن إحالة الطلب.",
            )
        self._referred(
            **self._public(event_id, self.received_event_id),
            at=at,
            reason=reason,
            questions=list(questions),
            referred_by=referred_by,
        )

    @event("ReferredToResearcher")
    def _referred(
        self,
        *,
        event_id: UUID,
        causation_id: UUID,
        association_id: str,
        case_ref: str,
        correlation_id: UUID,
        at: datetime,
        reason: str,
        questions: list[str],
        referred_by: str,
    ) -> None:
        self.referred = True

    def deliver(
        self, *, event_id: UUID, at: datetime, delivered: str, delivered_by: str
    ) -> None:
        if self.decision != "approved" or self.decision_event_id is None:
            raise Refused(
                "not_approved",
                "The service can only be delivered after the committee approved the request.",
                "لا يمكن تقديم الخدمة إلا بعد موافقة لجنة البحث على الطلب.",
            )
        if self.delivered:
            raise Refused(
                "already_delivered",
                "The service was already delivered for this request.",
                "تم تقديم الخدمة لهذا الطلب من قبل.",
            )
        self._delivered(
            **self._public(event_id, self.decision_event_id),
            at=at,
            service_code=self.service_code,
            delivered=delivered,
            delivered_by=delivered_by,
        )

    @event("ServiceDelivered")
    def _delivered(
        self,
        *,
        event_id: UUID,
        causation_id: UUID,
        association_id: str,
        case_ref: str,
        correlation_id: UUID,
        at: datetime,
        service_code: str,
        delivered: str,
        delivered_by: str,
    ) -> None:
        self.delivered = True
        self.status = "delivered"

    # What intake learns from the other services ----------------------------------

    def has_noted(self, source_event_id: UUID) -> bool:
        return source_event_id in self.noted_event_ids

    def note_verification(self, *, source_event_id: UUID, outcome: str) -> None:
        if self.has_noted(source_event_id):
            return
        self._verification_noted(source_event_id=source_event_id, outcome=outcome)

    @event("VerificationNoted")
    def _verification_noted(self, *, source_event_id: UUID, outcome: str) -> None:
        self.noted_event_ids.append(source_event_id)
        self.verification_outcome = outcome
        if self.decision is None:
            self.status = outcome

    def note_decision(self, *, source_event_id: UUID, decision: str) -> None:
        if self.has_noted(source_event_id):
            return
        self._decision_noted(source_event_id=source_event_id, decision=decision)

    @event("DecisionNoted")
    def _decision_noted(self, *, source_event_id: UUID, decision: str) -> None:
        self.noted_event_ids.append(source_event_id)
        self.decision = decision
        self.decision_event_id = source_event_id
        self.status = decision


class ChannelRef(Aggregate):
    """Makes `(association, channel, channel_ref)` unique: its id is derived from them."""

    @staticmethod
    def create_id(association_id: str, channel: str, channel_ref: str, **_: Any) -> UUID:
        return channel_ref_id(association_id, channel, channel_ref)

    @event("Registered")
    def __init__(self, *, association_id: str, channel: str, channel_ref: str, case_id: UUID):
        self.case_id = case_id


def channel_ref_id(association_id: str, channel: str, channel_ref: str) -> UUID:
    return uuid5(INTAKE_NAMESPACE, f"{association_id}\x1f{channel}\x1f{channel_ref}")
