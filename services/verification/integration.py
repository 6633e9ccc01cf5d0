"""Verification's boundary: its public domain event becomes the integration event DataVerified."""

from __future__ import annotations

from typing import Any

from eventsourcing.utils import get_topic

from services.verification.domain import Verification
from shared.events import (
    Actor,
    CheckResult,
    Correction,
    DataVerified,
    DataVerifiedPayload,
    IntegrationEvent,
)
from shared.outbox import carried_envelope


def data_verified(event: Any) -> IntegrationEvent:
    return DataVerified(
        **carried_envelope(event),
        # The officer's confirmation time, from the service's injectable clock.
        occurred_at=event.confirmed_at,
        actor=Actor(kind="officer", id=event.officer),
        payload=DataVerifiedPayload(
            outcome=event.outcome,
            checks=[
                CheckResult(name=check["name"], passed=check["passed"], detail=check["detail"])
                for check in event.checks
            ],
            officer=event.officer,
            corrections=[Correction(**c) for c in getattr(event, "corrections", None) or []],
            ineligible_rule=getattr(event, "ineligible_rule", None),
            override_reason=getattr(event, "override_reason", None),
        ),
    )


TRANSLATORS = {
    get_topic(Verification.Confirmed): data_verified,
}
