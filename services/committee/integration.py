"""The committee's boundary: its one public domain event becomes CommitteeDecided."""

from __future__ import annotations

from typing import Any

from eventsourcing.utils import get_topic

from services.committee.domain import CommitteeCase
from shared.events import (
    SCHEMA_VERSION,
    Actor,
    CommitteeDecided,
    CommitteeDecidedPayload,
    IntegrationEvent,
    Vote,
    schema_version_of,
)
from shared.outbox import carried_envelope

# The actor of a decision recorded before identities were proven.
COMMITTEE_ACTOR = Actor(kind="committee", id="committee")


def decided_by(event: Any) -> Actor:
    """The chair who recorded the decision, as authenticated; else the committee."""
    actor = getattr(event, "actor", None)
    return Actor.model_validate(actor) if actor else COMMITTEE_ACTOR


def committee_decided(event: Any) -> IntegrationEvent:
    policy_version = getattr(event, "policy_version", None)
    return CommitteeDecided(
        **carried_envelope(event),
        schema_version=schema_version_of(policy_version, SCHEMA_VERSION),
        # The clock's time of the decision, the one `within_window` was judged by.
        occurred_at=event.decided_at,
        actor=decided_by(event),
        payload=CommitteeDecidedPayload(
            decision=event.decision,
            reasons=list(event.reasons),
            votes=[Vote(**vote) for vote in event.votes],
            window_days=event.window_days,
            within_window=event.within_window,
            deadline=event.deadline,
            sitting_id=event.sitting_id,
            members_present=list(event.members_present),
            quorum=event.quorum,
            recusals=list(event.recusals),
            dissent_notes=list(event.dissent_notes),
            policy_version=policy_version,
        ),
    )


TRANSLATORS = {
    get_topic(CommitteeCase.Decided): committee_decided,
}
