"""The outbox relay: tails a service's notification log and publishes to JetStream.

Publishing is never a second write inside a command. The relay reads the
events already committed, translates the public ones into integration events,
and publishes them one after the other, in the store's order, each with
`Nats-Msg-Id` = event id. It records its position only up to the last event the
server acknowledged: a failed publish stops the batch there (no later event may
reach the stream before an earlier one), and the next attempt starts from it. A
crash before that position is recorded re-publishes from there, and the server
drops what it already holds.

An event that can never be published (larger than the server's maximum
payload, or one its translator refuses) would otherwise hold back every event
behind it for good. It is set aside: a small record of it, with the reason,
goes to the service's dead-letter subject, and the relay moves on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import IntegrityError, Notification, Tracking
from nats.errors import MaxPayloadError
from nats.js import JetStreamContext
from nats.js.api import PubAck
from pydantic import ValidationError

from shared import metrics
from shared.consumer import REASON_HEADER, SERVICE_HEADER, SUBJECT_HEADER
from shared.events import IntegrationEvent, encode_event
from shared.logging import context_of_event, log_context
from shared.store import OUTBOX_TRACKING, ServiceApplication, StoreRunner
from shared.subjects import dead_letter_subject, event_subject

log = logging.getLogger(__name__)

Translator = Callable[[DomainEventProtocol], IntegrationEvent]

# Says who set a dead letter aside: the relay's records are not event bodies.
SOURCE_HEADER = "Khidma-Dead-Letter-Source"
# What a message carries besides its body (subject, headers, protocol line), kept
# free under the server's max_payload: the server counts headers too and closes
# the connection of a client that goes over, where the client itself checks only
# the body.
ENVELOPE_ALLOWANCE = 1024
# The server's default, used when the connection does not say.
DEFAULT_MAX_PAYLOAD = 1024 * 1024


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


class Unpublishable(Exception):
    """This event can never be published as it is; `record` says what it was."""

    def __init__(self, reason: str, record: dict[str, Any]):
        super().__init__(reason)
        self.reason = reason
        self.record = record


@dataclass
class RelayStats:
    position: int = 0
    published: int = 0
    duplicates: int = 0
    set_aside: int = 0
    published_by_type: dict[str, int] = field(default_factory=dict)
    # When the relay last moved its position or found nothing to publish
    # (time.monotonic), and why its last attempt failed: /ready reads both.
    last_progress: float = field(default_factory=time.monotonic)
    last_error: str | None = None


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

    def stalled_for(self) -> float:
        """Seconds since the relay last made progress (moved, or had nothing to do)."""
        return time.monotonic() - self.stats.last_progress

    async def run(self) -> None:
        reached = await self.store.run(self.app.process_recorder.max_tracking_id, OUTBOX_TRACKING)
        self.stats.position = reached or 0
        self.stats.last_progress = time.monotonic()
        backoff = self.poll_interval
        while True:
            self._wake.clear()
            try:
                moved = await self.publish_batch()
                backoff = self.poll_interval
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.stats.last_error = repr(error)
                log.exception("outbox relay failed; retrying in %.1fs", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            self.stats.last_error = None
            self.stats.last_progress = time.monotonic()
            if moved == 0:
                self._caught_up.set()
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that
                    # arrives as the wake fires, and stopping the service then hangs.
                    async with asyncio.timeout(self.poll_interval):
                        await self._wake.wait()
                except TimeoutError:
                    pass

    async def publish_batch(self) -> int:
        """Publishes the next batch in order; returns how many events it got past.

        On a failure, the position reached so far is recorded before the error
        is raised, so the events already acknowledged are not sent again.
        """
        notifications = await self.store.run(
            self.app.read_notifications, self.stats.position, self.batch_size, self.topics
        )
        reached: int | None = None
        try:
            for notification in notifications:
                await self._publish_or_set_aside(notification)
                reached = notification.id
        except Exception:
            if reached is not None:
                self.stats.last_progress = time.monotonic()
                await self._record_position(reached)
            raise
        if reached is not None:
            await self._record_position(reached)
        return len(notifications)

    async def _publish_or_set_aside(self, notification: Notification) -> None:
        try:
            event = self._translate(notification)
            data = encode_event(event)
            ack = await self._send(event, data)
        except Unpublishable as unpublishable:
            await self._set_aside(notification, unpublishable)
            return
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

    def _translate(self, notification: Notification) -> IntegrationEvent:
        domain_event = self.app.mapper.to_domain_event(notification)
        try:
            return self.translators[notification.topic](domain_event)
        except ValidationError as error:
            # The stored event breaks the contract: translating it again will
            # not change that, only a new version of the code can.
            raise Unpublishable(
                f"not a valid integration event: {_summary(error)}",
                {
                    "reason_code": "untranslatable",
                    "event_id": _text(getattr(domain_event, "event_id", None)),
                    "event_type": None,
                    "case_id": _text(getattr(domain_event, "originator_id", None)),
                    "association_id": _text(getattr(domain_event, "association_id", None)),
                    "case_ref": _text(getattr(domain_event, "case_ref", None)),
                },
            ) from error

    async def _send(self, event: IntegrationEvent, data: bytes) -> PubAck:
        limit = self._max_payload() - ENVELOPE_ALLOWANCE
        if len(data) > limit:
            raise self._too_large(event, len(data), limit)
        try:
            return await self._publish(event, data)
        except MaxPayloadError:
            raise self._too_large(event, len(data), limit) from None

    async def _publish(self, event: IntegrationEvent, data: bytes | None = None) -> PubAck:
        return await self.js.publish(
            event_subject(event.association_id, event.case_id, event.event_type),
            encode_event(event) if data is None else data,
            headers={"Nats-Msg-Id": str(event.event_id)},
        )

    def _max_payload(self) -> int:
        connection = getattr(self.js, "_nc", None)
        return int(getattr(connection, "max_payload", 0) or DEFAULT_MAX_PAYLOAD)

    def _too_large(self, event: IntegrationEvent, size: int, limit: int) -> Unpublishable:
        return Unpublishable(
            f"the event takes {size} bytes; the server accepts at most {limit}",
            {
                "reason_code": "too_large",
                "event_id": str(event.event_id),
                "event_type": event.event_type,
                "case_id": str(event.case_id),
                "association_id": event.association_id,
                "case_ref": event.case_ref,
                "size_bytes": size,
                "limit_bytes": limit,
            },
        )

    async def _set_aside(self, notification: Notification, unpublishable: Unpublishable) -> None:
        """Publishes a small record of the event to the dead-letter subject.

        If that publish fails, the error stops the batch here like any other
        failure: the event is never skipped without its record on the stream.
        """
        record = {
            "source": "outbox",
            "service": self.service,
            "notification_id": notification.id,
            "topic": notification.topic,
            **unpublishable.record,
            "reason": unpublishable.reason,
        }
        headers = {
            REASON_HEADER: _header_safe(unpublishable.reason),
            SERVICE_HEADER: self.service,
            SOURCE_HEADER: "outbox",
            # Set aside again after a crash, it is still one record.
            "Nats-Msg-Id": f"deadletter:{self.service}:outbox:{notification.id}",
        }
        if record.get("event_type"):  # translated: the subject it was meant for
            headers[SUBJECT_HEADER] = event_subject(
                record["association_id"], record["case_id"], record["event_type"]
            )
        await self.js.publish(
            dead_letter_subject(self.service),
            json.dumps(record, ensure_ascii=False).encode("utf-8"),
            headers=headers,
        )
        self.stats.set_aside += 1
        event_type = record.get("event_type") or notification.topic.rsplit(":", 1)[-1]
        metrics.OUTBOX_SET_ASIDE.labels(self.service, event_type, record["reason_code"]).inc()
        with log_context(case_id=record.get("case_id"), event_id=record.get("event_id")):
            log.error(
                "set aside an event that cannot be published: %s",
                unpublishable.reason,
                extra={"notification_id": notification.id, "topic": notification.topic},
            )

    async def _record_position(self, last: int) -> None:
        try:
            await self.store.run(
                self.app.process_recorder.insert_tracking, Tracking(OUTBOX_TRACKING, last)
            )
        except IntegrityError:
            # Several instances of a service share its store and each runs a
            # relay: another one already published this batch and recorded the
            # position (the server dropped our copies as duplicates). Move on.
            log.info("outbox position %d already recorded by another instance", last)
        reached = await self.store.run(self.app.process_recorder.max_tracking_id, OUTBOX_TRACKING)
        self.stats.position = max(last, reached or 0)
        metrics.OUTBOX_POSITION.labels(self.service).set(self.stats.position)

    @property
    def caught_up_once(self) -> bool:
        """Whether the relay has published everything it found, at least once."""
        return self._caught_up.is_set()

    async def wait_caught_up(self, timeout: float) -> None:
        await asyncio.wait_for(self._caught_up.wait(), timeout)


def _summary(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in problem['loc']) or '(event)'}: {problem['msg']}"
        for problem in error.errors()[:5]
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _header_safe(text: str) -> str:
    return " ".join(text.split())[:1000]
