"""The outbox relay: tails a service's notification log and publishes to JetStream.

Publishing is never a second write inside a command. The relay reads the
events already committed, translates the public ones into integration events,
and publishes them in the store's order, each with `Nats-Msg-Id` = event id,
keeping up to `window` publishes in flight on its one connection (the server
stores a connection's messages in the order they arrive). It records its
position only up to the last event such that it and every event before it was
acknowledged: a failed publish stops the batch there (nothing more is sent),
and the next attempt starts from it; what was in flight behind it is sent again
and the server drops what it already holds. A crash before the position is
recorded re-publishes from there in the same way (docs/decisions.md, 35).

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
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import IntegrityError, Notification, Tracking
from nats.errors import MaxPayloadError
from nats.js import JetStreamContext
from nats.js.api import PubAck
from pydantic import ValidationError

from shared import metrics, tracing
from shared.consumer import REASON_HEADER, SERVICE_HEADER, SUBJECT_HEADER
from shared.events import IntegrationEvent, encode_event
from shared.logging import context_of_event, log_context
from shared.store import OUTBOX_TRACKING, ServiceApplication, StoreRunner
from shared.subjects import dead_letter_subject, event_subject
from shared.wake import woken_or_timed_out

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
    # Acknowledged after an earlier publish of the same window had failed: not
    # recorded, sent again (then a duplicate). If the failed one was not stored,
    # the stream holds these before it.
    acked_past_a_gap: int = 0
    published_by_type: dict[str, int] = field(default_factory=dict)
    # When the relay last moved its position or found nothing to publish
    # (time.monotonic), and why its last attempt failed: /ready reads both.
    last_progress: float = field(default_factory=time.monotonic)
    last_error: str | None = None


@dataclass
class _InFlight:
    """A publish sent and not yet settled."""

    notification: Notification
    event: IntegrationEvent
    ack: asyncio.Future[PubAck]
    span: Any = None  # its `publish` span while tracing, ended at the ack


class _Window:
    """The publishes of one batch in flight, settled oldest first.

    `reached` is the last position such that it and everything before it in
    the batch was acknowledged (or set aside). At most one publish per case is
    in flight: an event is sent only once the one before it of the same case
    was acknowledged, so that a connection lost mid-window (what the client
    had written is lost, what it still held is sent after it reconnects) can
    never put a case's events out of order on the stream.
    """

    def __init__(
        self,
        size: int,
        ack_timeout: float,
        on_ack: Callable[[IntegrationEvent, PubAck], None],
    ):
        self.size = size
        self.ack_timeout = ack_timeout
        self.on_ack = on_ack
        self.in_flight: deque[_InFlight] = deque()
        self.cases: set[Any] = set()
        self.reached: int | None = None

    async def make_room(self, case_id: Any) -> None:
        """Settles the oldest publishes until one more of this case may be sent.

        What is acknowledged already is settled too, without waiting: the
        sends that follow then go out together rather than one per ack.
        """
        while len(self.in_flight) >= self.size or case_id in self.cases:
            await self.settle_oldest()
        while self.in_flight and self.in_flight[0].ack.done():
            await self.settle_oldest()

    def add(self, sent: _InFlight) -> None:
        self.in_flight.append(sent)
        self.cases.add(sent.event.case_id)

    async def settle_oldest(self) -> None:
        sent = self.in_flight.popleft()
        self.cases.discard(sent.event.case_id)
        try:
            if sent.ack.done():
                ack = sent.ack.result()  # raises what the publish failed with
            else:
                ack = await asyncio.wait_for(sent.ack, self.ack_timeout)
        except BaseException as error:
            tracing.end_publish(sent.span, error)
            raise
        tracing.end_publish(sent.span)
        self.on_ack(sent.event, ack)
        self.reached = sent.notification.id

    async def settle_all(self) -> None:
        while self.in_flight:
            await self.settle_oldest()

    async def abandon(self) -> int:
        """After a failure: lets what is still in flight settle; returns how many got
        past it (acknowledged as new messages). None of them is recorded."""
        if not self.in_flight:
            return 0
        done, _ = await asyncio.wait(
            [sent.ack for sent in self.in_flight], timeout=self.ack_timeout
        )
        return sum(
            1
            for ack in done
            if not ack.cancelled() and ack.exception() is None and not ack.result().duplicate
        )

    def cancel(self) -> None:
        """No ack is awaited any more (the client stops waiting for it)."""
        for sent in self.in_flight:
            sent.ack.cancel()
            tracing.end_publish(sent.span, asyncio.CancelledError())
        self.in_flight.clear()
        self.cases.clear()


class OutboxRelay:
    def __init__(
        self,
        app: ServiceApplication,
        store: StoreRunner,
        js: JetStreamContext,
        translators: Mapping[str, Translator],
        *,
        batch_size: int = 256,
        window: int = 64,
        ack_timeout: float = 5.0,
        poll_interval: float = 0.25,
        service: str | None = None,
    ):
        """`translators` maps the topic of each public domain event to its translation.

        `window` publishes at most are in flight at once (1: each waits for the
        ack of the one before); `ack_timeout` is how long one may wait for its ack.
        """
        if window < 1:
            raise ValueError("the relay's window holds at least one publish")
        self.app = app
        self.store = store
        self.js = js
        self.translators = dict(translators)
        self.topics = tuple(self.translators)
        self.batch_size = batch_size
        self.window = window
        self.ack_timeout = ack_timeout
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
                await woken_or_timed_out(self._wake, self.poll_interval)

    async def publish_batch(self) -> int:
        """Publishes the next batch in order; returns how many events it got past.

        Up to `window` publishes are in flight; they are settled oldest first,
        and the position moves over an event only once it and every one before
        it was acknowledged (or set aside). On a failure nothing more is sent,
        the position reached so far is recorded, and the error is raised.
        """
        notifications = await self.store.run(
            self.app.read_notifications, self.stats.position, self.batch_size, self.topics
        )
        window = _Window(self.window, self.ack_timeout, self._count_published)
        try:
            for notification in notifications:
                await self._publish_in_window(window, notification)
            await window.settle_all()
        except Exception:
            self._past_a_gap(await window.abandon())
            if window.reached is not None:
                self.stats.last_progress = time.monotonic()
                await self._record_position(window.reached)
            raise
        finally:
            window.cancel()
        if window.reached is not None:
            await self._record_position(window.reached)
        return len(notifications)

    async def _publish_in_window(self, window: _Window, notification: Notification) -> None:
        try:
            event, data = self._prepare(notification)
            await window.make_room(event.case_id)
            await self._send(window, notification, event, data)
        except Unpublishable as unpublishable:
            # Rare: the window drains first, so that the record's ack, like
            # every other, is settled in the store's order.
            await window.settle_all()
            await self._set_aside(notification, unpublishable)
            window.reached = notification.id

    def _prepare(self, notification: Notification) -> tuple[IntegrationEvent, bytes]:
        """The integration event and its body; `Unpublishable` if it can never be sent."""
        event = self._translate(notification)
        data = encode_event(event)
        limit = self._max_payload() - ENVELOPE_ALLOWANCE
        if len(data) > limit:
            raise self._too_large(event, len(data), limit)
        return event, data

    async def _send(
        self, window: _Window, notification: Notification, event: IntegrationEvent, data: bytes
    ) -> None:
        """Sends one publish into the window.

        If it cannot be sent, what was sent before it is still settled (and counts).
        """
        span = tracing.publish_span(event)
        try:
            ack = await self.js.publish_async(
                event_subject(event.association_id, event.case_id, event.event_type),
                data,
                headers={"Nats-Msg-Id": str(event.event_id), **tracing.publish_headers(event)},
            )
        except MaxPayloadError as error:
            tracing.end_publish(span, error)
            limit = self._max_payload() - ENVELOPE_ALLOWANCE
            raise self._too_large(event, len(data), limit) from None
        except Exception as error:
            tracing.end_publish(span, error)
            await window.settle_all()
            raise
        window.add(_InFlight(notification, event, ack, span))

    def _past_a_gap(self, count: int) -> None:
        if count:
            self.stats.acked_past_a_gap += count
            log.warning(
                "%d publishes were acknowledged after an earlier one failed; they are sent "
                "again from the failed one, and the server drops the copies",
                count,
            )

    def _count_published(self, event: IntegrationEvent, ack: PubAck) -> None:
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

    async def _publish(self, event: IntegrationEvent, data: bytes | None = None) -> PubAck:
        """One publish that waits for its ack (tests use it to crash after publishing)."""
        return await self.js.publish(
            event_subject(event.association_id, event.case_id, event.event_type),
            encode_event(event) if data is None else data,
            headers={"Nats-Msg-Id": str(event.event_id), **tracing.publish_headers(event)},
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
