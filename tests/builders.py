"""Integration events for tests, built in one place.

Each builder makes a valid event of `shared.events` from defaults; keywords
override any field of the envelope or of the payload, side by side (the two
never share a name): `request_received(case_ref="SDR-1446-000001", service_code="aid")`.

An event after the first of a case takes the event it answers (`after=`, an
event or its JSON as read from the stream): it keeps that event's association,
case and correlation and names it as its cause. Without `after` it belongs to a
case of its own.

A test that asserts on a value passes it explicitly; the defaults are there to
make the event valid, not to be relied on.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import uuid4

from shared.events import (
    Actor,
    Applicant,
    CommitteeDecided,
    Contract,
    DataVerified,
    IntegrationEvent,
    Ratings,
    ReferredToResearcher,
    RequestReceived,
    ServiceDelivered,
    SurveyAnswered,
)

E = TypeVar("E", bound=IntegrationEvent)

DEFAULT_ASSOCIATION = "sidr"
DEFAULT_CASE_REF = "SDR-1448-000001"

Earlier = IntegrationEvent | Mapping[str, Any]


def request_received(**overrides: Any) -> RequestReceived:
    """A complete request as intake publishes it: the first event of a new case."""
    event_id = overrides.pop("event_id", None) or uuid4()
    channel = overrides.get("channel", "website")
    envelope = {
        "event_id": event_id,
        "occurred_at": datetime.now(UTC),
        "association_id": DEFAULT_ASSOCIATION,
        "case_id": uuid4(),
        "case_ref": DEFAULT_CASE_REF,
        "correlation_id": event_id,
        "actor": Actor(kind="adapter", id=f"http:{channel}"),
    }
    payload = {
        "channel": channel,
        "channel_ref": f"form-{uuid4().hex[:8]}",
        "service_code": "seedlings",
        "applicant": Applicant(national_id="1000000008", name="Applicant"),
    }
    return _build(RequestReceived, envelope, payload, overrides)


def data_verified(after: Earlier | None = None, **overrides: Any) -> DataVerified:
    """Verification's outcome for a request (by default: verified, no checks)."""
    payload = {"outcome": "verified", "checks": [], "officer": "verifier-1"}
    actor = Actor(kind="officer", id=overrides.get("officer", "verifier-1"))
    return _build(DataVerified, _following(after, actor), payload, overrides)


def referred_to_researcher(after: Earlier | None = None, **overrides: Any) -> ReferredToResearcher:
    """The front desk's referral of a case to the social researcher."""
    payload = {
        "reason": "the procedures are unclear to the applicant",
        "questions": ["which documents are needed?"],
        "referred_by": "officer-7",
    }
    actor = Actor(kind="officer", id=overrides.get("referred_by", "officer-7"))
    return _build(ReferredToResearcher, _following(after, actor), payload, overrides)


def committee_decided(after: Earlier | None = None, **overrides: Any) -> CommitteeDecided:
    """The committee's decision (by default: approved, within a 14-day window)."""
    payload = {
        "decision": "approved",
        "reasons": ["per policy"],
        "votes": [],
        "window_days": 14,
        "within_window": True,
    }
    actor = Actor(kind="committee", id="committee")
    return _build(CommitteeDecided, _following(after, actor), payload, overrides)


def service_delivered(after: Earlier | None = None, **overrides: Any) -> ServiceDelivered:
    """The delivery of the service, of the service the request asked for when `after` is one."""
    service_code = "seedlings"
    if isinstance(after, RequestReceived):
        service_code = after.payload.service_code
    payload = {
        "service_code": service_code,
        "delivered": "the service",
        "delivered_by": "officer-7",
    }
    actor = Actor(kind="officer", id=overrides.get("delivered_by", "officer-7"))
    return _build(ServiceDelivered, _following(after, actor), payload, overrides)


def survey_answered(after: Earlier | None = None, **overrides: Any) -> SurveyAnswered:
    """An anonymous answer to the satisfaction survey."""
    payload = {"ratings": Ratings(satisfaction=5)}
    actor = Actor(kind="applicant", id="anonymous")
    return _build(SurveyAnswered, _following(after, actor), payload, overrides)


def _following(after: Earlier | None, actor: Actor) -> dict[str, Any]:
    """The envelope of an event that answers `after` (or of a case of its own)."""
    envelope: dict[str, Any] = {
        "event_id": uuid4(),
        "occurred_at": datetime.now(UTC),
        "actor": actor,
    }
    if after is None:
        return {
            **envelope,
            "association_id": DEFAULT_ASSOCIATION,
            "case_id": uuid4(),
            "case_ref": DEFAULT_CASE_REF,
            "correlation_id": uuid4(),
            "causation_id": uuid4(),
        }
    earlier = after.model_dump() if isinstance(after, IntegrationEvent) else after
    return {
        **envelope,
        "association_id": earlier["association_id"],
        "case_id": earlier["case_id"],
        "case_ref": earlier["case_ref"],
        "correlation_id": earlier["correlation_id"],
        "causation_id": earlier["event_id"],
    }


def _build(
    cls: type[E],
    envelope: dict[str, Any],
    payload: dict[str, Any],
    overrides: dict[str, Any],
) -> E:
    """The event with each override put in the envelope or the payload, by its name."""
    payload_cls = cls.model_fields["payload"].annotation
    assert isinstance(payload_cls, type) and issubclass(payload_cls, Contract)
    envelope, payload = dict(envelope), dict(payload)
    for name, value in overrides.items():
        if name in cls.model_fields and name != "payload":
            envelope[name] = value
        elif name in payload_cls.model_fields:
            payload[name] = value
        else:
            raise TypeError(f"{cls.__name__} has no field '{name}'")
    return cls(**envelope, payload=payload_cls(**payload))

