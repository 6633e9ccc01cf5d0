"""Intake's boundary: its public domain events become integration events."""

from __future__ import annotations

from typing import Any

from eventsourcing.utils import get_topic

from services.intake.domain import Case
from shared.events import (
    Actor,
    IntegrationEvent,
    ReferredToResearcher,
    ReferredToResearcherPayload,
    RequestReceived,
    RequestReceivedPayload,
    ServiceDelivered,
    ServiceDeliveredPayload,
)
from shared.outbox import carried_envelope


def request_received(event: Any) -> IntegrationEvent:
    """The request, whole and attested, published when the case completed (revision 1).

    Its event id is the case's correlation id: every later event correlates with it.
    """
    envelope = {
        "event_id": event.event_id,
        "association_id": event.association_id,
        "case_id": event.originator_id,
        "case_ref": event.case_ref,
        "correlation_id": event.event_id,
    }
    return _request(event, envelope, revision=1, corrects=None)


def request_received_again(event: Any) -> IntegrationEvent:
    """The request published again, whole, after the applicant corrected it as
    verification asked: a new event id, the first request's correlation id, the
    next revision, and `submitted_at` the time of the correction.

    Chosen by the stored event's topic, not its class, so the audit can translate a
    stored event read back as plain data the same way.
    """
    return _request(
        event, carried_envelope(event), revision=event.revision, corrects=event.corrects
    )


def _request(
    event: Any, envelope: dict[str, Any], *, revision: int, corrects: Any
) -> IntegrationEvent:
    return RequestReceived(
        **envelope,
        occurred_at=event.at,
        actor=Actor(**event.actor),
        payload=RequestReceivedPayload(
            channel=event.channel,
            channel_ref=event.channel_ref,
            service_code=event.service_code,
            applicant=event.applicant,
            fields=event.fields,
            documents=event.documents,
            attestation=event.attestation,
            submitted_at=event.submitted_at,
            revision=revision,
            corrects=corrects,
        ),
    )


def _officer(event: Any, named: str) -> Actor:
    """The authenticated officer the event recorded; for one recorded before
    identities were proven, the officer its body named, as it was published then."""
    actor = getattr(event, "actor", None)
    if actor:
        return Actor(**actor)
    return Actor(kind="officer", id=named)


def referred_to_researcher(event: Any) -> IntegrationEvent:
    return ReferredToResearcher(
        **carried_envelope(event),
        occurred_at=event.at,
        actor=_officer(event, event.referred_by),
        payload=ReferredToResearcherPayload(
            reason=event.reason, questions=event.questions, referred_by=event.referred_by
        ),
    )


def service_delivered(event: Any) -> IntegrationEvent:
    return ServiceDelivered(
        **carried_envelope(event),
        occurred_at=event.at,
        actor=_officer(event, event.delivered_by),
        payload=ServiceDeliveredPayload(
            service_code=event.service_code,
            delivered=event.delivered,
            delivered_by=event.delivered_by,
        ),
    )


TRANSLATORS = {
    get_topic(Case.Completed): request_received,
    get_topic(Case.Resubmitted): request_received_again,
    get_topic(Case.ReferredToResearcher): referred_to_researcher,
    get_topic(Case.ServiceDelivered): service_delivered,
}
