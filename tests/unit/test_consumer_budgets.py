"""How many times a message may fail, counted apart from the times it only waited."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from shared.consumer import RetryLater, TrackingConsumer
from shared.events import decode_event, encode_event
from shared.subjects import event_subject
from tests.unit.test_audit_compliance import CaseHistory

pytestmark = pytest.mark.unit


class ImmediateStore:
    async def run(self, fn: Any, app: Any, tracking: Any, handle: Any) -> None:
        handle(None)


class DeadLetters:
    def __init__(self) -> None:
        self.published: list[Any] = []

    async def publish(self, subject: str, data: bytes, headers: Any = None) -> None:
        self.published.append(headers)


def event_subject_of(data: bytes) -> str:
    """The subject the event belongs on: the consumer refuses a body that contradicts it."""
    event = decode_event(data)
    return event_subject(event.association_id, event.case_id, event.event_type)


class Delivery:
    """One stream message, delivered again and again (num_delivered as the server counts)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.subject = event_subject_of(data)
        self.num_delivered = 0
        self.headers = None
        self.outcomes: list[str] = []

    @property
    def metadata(self) -> Any:
        return SimpleNamespace(sequence=SimpleNamespace(stream=7), num_delivered=self.num_delivered)

    async def nak(self, delay: float | None = None) -> None:
        self.outcomes.append("nak")

    async def ack(self) -> None:
        self.outcomes.append("ack")

    async def term(self) -> None:
        self.outcomes.append("term")


def verified_event() -> bytes:
    history = CaseHistory()
    history.clean()
    return encode_event(next(e for e in history.published if e.event_type == "DataVerified"))


def test_waits_at_another_instance_are_not_counted_as_failures_here() -> None:
    delivery = Delivery(verified_event())
    mode = {"now": "wait"}

    def handler(event: Any, processing: Any) -> None:
        if mode["now"] == "wait":
            raise RetryLater("the request has not arrived yet")
        raise RuntimeError("could not serialize access")

    dead = DeadLetters()
    first, second = (
        TrackingConsumer(
            None,
            ImmediateStore(),
            dead,
            service="committee",  # type: ignore[arg-type]
            handlers={"DataVerified": handler},
            max_deliveries=5,
        )
        for _ in range(2)
    )

    async def deliver(consumer: TrackingConsumer, times: int) -> None:
        for _ in range(times):
            delivery.num_delivered += 1
            await consumer.handle_message(delivery)  # type: ignore[arg-type]

    async def scenario() -> None:
        await deliver(first, 6)  # six waits, all at the first instance
        mode["now"] = "fail"
        await deliver(second, 4)  # four real failures at the second: retried
        assert "term" not in delivery.outcomes and dead.published == []
        await deliver(second, 1)  # the fifth real failure: set aside

    asyncio.run(scenario())
    assert delivery.outcomes.count("term") == 1 and len(dead.published) == 1
