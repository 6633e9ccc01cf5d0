"""The outbox relay: tails a service's notification log and publishes to JetStream.

Publishing is never a second write inside a command. The relay reads the
events already committed, translates the public ones into integration events,
publishes each with `Nats-Msg-Id` = event id, and records its position only
after the server acknowledged the whole batch. A crash before that position is
recorded re-publishes the batch, and the server drops what it already holds.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import IntegrityError, Tracking
from nats.js import JetStreamContext

from shared import metrics
from shared.events import IntegrationEvent, encode_event
from shared.logging import context_of_event, log_context
from shared.store import OUTBOX_TRACKING, ServiceApplication, StoreRunner
from shared.subjects import event_subject

log = logging.getLogger(__name__)

Translator = Callable[[DomainEventProtocol], IntegrationEvent]


def carried_envelope(event: Any) -> dict[str, Any]:
    """The envelope facts a public domain event records (docs/decisions.md, 5).

    A translator adds only `occurred_at`, `actor` and the payload.
    """
    return {
        "event_id": event.event_id,
        "association_id": event.association_id,
        "case_id": event.originator_id,
        "case_ref": event.case_ref,
        "correlation_id": event.correlation_id,
        "causation_id": event.causation_id,
    }


@dataclass
class RelayStats:
    position: int = 0
    published: int = 0
    duplicates: int = 0
    published_by_type: dict[str, int] = field(default_factory=dict)


class OutboxRelay:
    def __init__(
        self,
        app: ServiceApplication,
        store: StoreRunner,
        js: JetStreamContext,
        translators: Mapping[str, Translator],
        *,
        batch_size: int = 256,
        poll_interval: float = 0.25,
        service: str | None = None,
    ):
        """`translators` maps the topic of each public domain event to its translation."""
        self.app = app
        self.store = store
        self.js = js
        self.translators = dict(translators)
        self.topics = tuple(self.translators)
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.service = service or app.name.lower()
        self.stats = RelayStats()
        self._wake = asyncio.Event()
        self._caught_up = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def lag(self) -> int:
        """Public events recorded but not yet published."""
        notifications = await self.store.run(
            self.app.read_notifications, self.stats.position, 10_000, self.topics
        )
        return len(notifications)

    async def run(self) -> None:
        self.stats.position = (
            await self.store.run(self.app.process_recorder.max_tracking_id, OUTBOX_TRACKING)
            or 0
        )
        backoff = self.poll_interval
        while True:
            self._wake.clear()
            try:
                moved = await self.publish_batch()
                backoff = self.poll_interval
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay failed; retrying in %.1fs", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if moved == 0:
                self._caught_up.set()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval)
                except asyncio.TimeoutError:
                    pass

    async def publish_batch(self) -> int:
        notifications = await self.store.run(
            self.app.read_notifications, self.stats.position, self.batch_size, self.topics
        )
        if not notifications:
            return 0
        events = [
            self.translators[n.topic](self.app.mapper.to_domain_event(n))
            for n in notifications
        ]
        acks = await asyncio.gather(*(self._publish(event) for event in events))
        last = notifications[-1].id
        try:
            await self.store.run(
                self.app.process_recorder.insert_tracking, Tracking(OUTBOX_TRACKING, last)
            )
        except IntegrityError:
            # Several instances of a service share its store and each runs a
            # relay: another one already published this batch and recorded the
            # position (the server dropped our copies as duplicates). Move on.
            log.info("outbox position %d already recorded by another instance", last)
        self.stats.position = max(
            last,
            await self.store.run(self.app.process_recorder.max_tracking_id, OUTBOX_TRACKING)
            or 0,
        )
        metrics.OUTBOX_POSITION.labels(self.service).set(self.stats.position)
        for event, ack in zip(events, acks):
            self.stats.published += 1
            self.stats.published_by_type[event.event_type] = (
                self.stats.published_by_type.get(event.event_type, 0) + 1
            )
            metrics.MESSAGES_PUBLISHED.labels(self.service, event.event_type).inc()
            if ack.duplicate:
                self.stats.duplicates += 1
                metrics.PUBLISH_DUPLICATES.labels(self.service, event.event_type).inc()
            with log_context(**context_of_event(event)):
                log.info(
                    "published %s",
                    event.event_type,
                    extra={"sequence": ack.seq, "duplicate": bool(ack.duplicate)},
                )
        return len(notifications)

    async def _publish(self, event: IntegrationEvent):  # type: ignore[no-untyped-def]
        return await self.js.publish(
            event_subject(event.association_id, event.case_id, event.event_type),
            encode_event(event),
            headers={"Nats-Msg-Id": str(event.event_id)},
        )

    @property
    def caught_up_once(self) -> bool:
        """Whether the relay has published everything it found, at least once."""
        return self._caught_up.is_set()

    async def wait_caught_up(self, timeout: float) -> None:
        await asyncio.wait_for(self._caught_up.wait(), timeout)
