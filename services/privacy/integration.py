"""The privacy service's boundary: destroyed keys become `PersonalDataErased`."""

from __future__ import annotations

from typing import Any

from eventsourcing.utils import get_topic

from services.privacy.domain import Subject
from shared.events import Actor, IntegrationEvent, PersonalDataErased, PersonalDataErasedPayload


def erasure_ref(erasure_id: Any) -> str:
    """How an erasure is referred to where a case reference is expected."""
    return f"erasure-{str(erasure_id)[:8]}"


def personal_data_erased(event: Any) -> IntegrationEvent:
    # An erasure is not one case's event: its envelope's case is the erasure itself.
    return PersonalDataErased(
        event_id=event.event_id,
        occurred_at=event.destroyed_at,
        association_id=event.association_id,
        case_id=event.erasure_id,
        case_ref=erasure_ref(event.erasure_id),
        correlation_id=event.erasure_id,
        actor=Actor(kind="system", id="privacy"),
        payload=PersonalDataErasedPayload(
            erasure_id=event.erasure_id,
            reason_code=event.reason_code,
            key_ids=list(event.key_ids),
            case_ids=list(event.case_ids),
        ),
    )


TRANSLATORS = {
    get_topic(Subject.KeysDestroyed): personal_data_erased,
}
