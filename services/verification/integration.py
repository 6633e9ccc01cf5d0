"""Verification's boundary: its public domain event becomes the integration event DataVerified."""

from __future__ import annotations

from typing import Any

from eventsourcing.utils import get_topic

from services.verification.domain import INELIGIBLE, Verification, ineligible_reason_of
from shared.events import (
    SEALED_WORDS_SCHEMA_VERSION,
    Actor,
    CheckResult,
    Correction,
    DataVerified,
    DataVerifiedPayload,
    Explanation,
    IntegrationEvent,
    schema_version_of,
)
from shared.outbox import carried_envelope
from shared.personal.sealing import Sealer
from shared.personal.wire import sealed_for_stream


def data_verified(event: Any, sealer: Sealer | None = None) -> IntegrationEvent:
    """DataVerified from a `Verification.Confirmed`, or from a stored one's state as it is.

    The audit's crosscheck translates stored states without the event class (an
    older event lacks the later fields), hence `getattr` with each field's default;
    and without a sealer: the override's reason is sealed at rest already.
    """
    policy_version = getattr(event, "policy_version", None)
    return DataVerified(
        **carried_envelope(event),
        schema_version=schema_version_of(policy_version, SEALED_WORDS_SCHEMA_VERSION),
        # The officer's confirmation time, from the service's injectable clock.
        occurred_at=event.confirmed_at,
        actor=Actor(**actor) if (actor := getattr(event, "actor", None)) else _officer(event),
        payload=DataVerifiedPayload(
            outcome=event.outcome,
            checks=[
                CheckResult(name=check["name"], passed=check["passed"], detail=check["detail"])
                for check in event.checks
            ],
            officer=event.officer,
            corrections=[Correction(**c) for c in getattr(event, "corrections", None) or []],
            ineligible_rule=getattr(event, "ineligible_rule", None),
            ineligible_reason=_explanation(event),
            **_override_reason(event, sealer),
            # Confirmations recorded before revisions existed verified the first.
            revision=getattr(event, "revision", 1),
            policy_version=policy_version,
        ),
    )


def _override_reason(event: Any, sealer: Sealer | None) -> dict[str, Any]:
    """The officer's reason for an override as published: sealed under the applicant's
    key, with its id; plain for a confirmation recorded before it was sealed."""
    reason, key_id = getattr(event, "override_reason", None), getattr(event, "personal_key", None)
    if reason is None or not key_id:
        return {"override_reason": reason}
    return {"override_reason": sealed_for_stream(sealer, key_id, reason), "personal_key": key_id}


def _officer(event: Any) -> Actor:
    """The actor of a confirmation recorded before identities were proven: its officer."""
    return Actor(kind="officer", id=event.officer)


def _explanation(event: Any) -> Explanation | None:
    """The rule in both languages; for a confirmation recorded before it was, from its checks."""
    reason = getattr(event, "ineligible_reason", None)
    if reason is None and event.outcome == INELIGIBLE:
        reason = ineligible_reason_of(event.checks)
        if reason is None and getattr(event, "ineligible_rule", None):
            reason = {"ar": event.ineligible_rule, "en": event.ineligible_rule}
    return Explanation(**reason) if reason else None


def translators(sealer: Sealer | None) -> dict[str, Any]:
    """The outbox's translators; the override's reason sealed with `sealer`."""

    def sealed_data_verified(event: Any) -> IntegrationEvent:
        return data_verified(event, sealer)

    # Named after the event it publishes, as the audit reads it.
    sealed_data_verified.__name__ = data_verified.__name__
    return {get_topic(Verification.Confirmed): sealed_data_verified}


# Stored events as they are kept (the reason sealed already): the audit's.
TRANSLATORS = translators(None)
