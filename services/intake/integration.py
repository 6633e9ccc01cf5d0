"""Intake's boundary: its public domain events become integration events.

The request's personal data, and a referral's reason and questions, go on the
stream sealed under the applicant's key (docs/decisions.md, 24): the translators
are built with the application's sealer (`translators(app.sealer)`). `TRANSLATORS`,
without one, translates stored events read back as they are kept (sealed already,
or plain from before encryption): what the audit compares.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eventsourcing.utils import get_topic

from services.intake.domain import Case
from shared.events import (
    SCHEMA_VERSION,
    Actor,
    Applicant,
    Attestation,
    Document,
    IntegrationEvent,
    ReferredToResearcher,
    ReferredToResearcherPayload,
    RequestReceived,
    RequestReceivedPayload,
    ServiceDelivered,
    ServiceDeliveredPayload,
    schema_version_of,
)
from shared.outbox import carried_envelope
from shared.personal.mapper import is_erased_value
from shared.personal.sealing import Sealer, is_sealed
from shared.personal.wire import sealed_for_stream

Translator = Callable[[Any], IntegrationEvent]


def _check_contract(applicant: Any, documents: Any, attestation: Any) -> None:
    """The plain values are checked against the contract before they are sealed, as
    they were when published plain: a request that breaks it is set aside by the
    outbox (a ValidationError), not sealed for a consumer to fail on."""
    # A value still sealed (read by the audit, which holds no sealer) or erased is
    # passed on as it is: there is no plaintext to check.
    if isinstance(applicant, dict) and not is_erased_value(applicant) and not is_sealed(applicant):
        Applicant.model_validate(applicant)
    if isinstance(documents, list) and not is_erased_value(documents):
        for document in documents:
            Document.model_validate(document)
    if (
        isinstance(attestation, dict)
        and not is_erased_value(attestation)
        and not is_sealed(attestation)
    ):
        Attestation.model_validate(attestation)


def personal_part(event: Any, sealer: Sealer | None) -> dict[str, Any]:
    """The request's personal fields as published: sealed under the applicant's key,
    with the key id and the blind index; plain for a case from before encryption."""
    parts = {name: getattr(event, name) for name in Case.Completed.personal_attributes}
    key_id = getattr(event, "personal_key", None)
    if not key_id:
        return parts
    _check_contract(parts["applicant"], parts["documents"], parts["attestation"])
    return {
        **{name: sealed_for_stream(sealer, key_id, value) for name, value in parts.items()},
        "personal_key": key_id,
        "subject_index": getattr(event, "subject_index", None),
    }


def request_received(event: Any, sealer: Sealer | None = None) -> IntegrationEvent:
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
    return _request(event, envelope, sealer, revision=1, corrects=None)


def request_received_again(event: Any, sealer: Sealer | None = None) -> IntegrationEvent:
    """The request published again, whole, after the applicant corrected it as
    verification asked: a new event id, the first request's correlation id, the
    next revision, and `submitted_at` the time of the correction.

    Chosen by the stored event's topic, not its class, so the audit can translate a
    stored event read back as plain data the same way.
    """
    return _request(
        event, carried_envelope(event), sealer, revision=event.revision, corrects=event.corrects
    )


def _request(
    event: Any,
    envelope: dict[str, Any],
    sealer: Sealer | None,
    *,
    revision: int,
    corrects: Any,
) -> IntegrationEvent:
    policy_version = getattr(event, "policy_version", None)
    return RequestReceived(
        **envelope,
        schema_version=schema_version_of(policy_version, SCHEMA_VERSION),
        occurred_at=event.at,
        actor=Actor(**event.actor),
        payload=RequestReceivedPayload(
            channel=event.channel,
            channel_ref=event.channel_ref,
            service_code=event.service_code,
            **personal_part(event, sealer),
            submitted_at=event.submitted_at,
            revision=revision,
            corrects=corrects,
            policy_version=policy_version,
        ),
    )


def _officer(event: Any, named: str) -> Actor:
    """The authenticated officer the event recorded; for one recorded before
    identities were proven, the officer its body named, as it was published then."""
    actor = getattr(event, "actor", None)
    if actor:
        return Actor(**actor)
    return Actor(kind="officer", id=named)


def referral_text(event: Any, sealer: Sealer | None) -> dict[str, Any]:
    """The referral's reason and questions as published: sealed under the applicant's
    key, with its id; plain for a referral recorded before they were sealed."""
    texts = {name: getattr(event, name) for name in Case.ReferredToResearcher.personal_attributes}
    key_id = getattr(event, "personal_key", None)
    if not key_id:
        return texts
    return {
        **{name: sealed_for_stream(sealer, key_id, value) for name, value in texts.items()},
        "personal_key": key_id,
    }


def referred_to_researcher(event: Any, sealer: Sealer | None = None) -> IntegrationEvent:
    return ReferredToResearcher(
        **carried_envelope(event),
        occurred_at=event.at,
        actor=_officer(event, event.referred_by),
        payload=ReferredToResearcherPayload(
            **referral_text(event, sealer), referred_by=event.referred_by
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


def translators(sealer: Sealer | None) -> dict[str, Translator]:
    """The outbox's translators, by domain event topic; the requests sealed with `sealer`."""

    def sealed_request_received(event: Any) -> IntegrationEvent:
        return request_received(event, sealer)

    def sealed_request_received_again(event: Any) -> IntegrationEvent:
        return request_received_again(event, sealer)

    def sealed_referred_to_researcher(event: Any) -> IntegrationEvent:
        return referred_to_researcher(event, sealer)

    # Named after the event they publish, as the audit reads them.
    sealed_request_received.__name__ = request_received.__name__
    sealed_request_received_again.__name__ = request_received_again.__name__
    sealed_referred_to_researcher.__name__ = referred_to_researcher.__name__
    return {
        get_topic(Case.Completed): sealed_request_received,
        get_topic(Case.Resubmitted): sealed_request_received_again,
        get_topic(Case.ReferredToResearcher): sealed_referred_to_researcher,
        get_topic(Case.ServiceDelivered): service_delivered,
    }


# Stored events as they are kept (sealed, or plain from before encryption): the audit's.
TRANSLATORS = translators(None)
