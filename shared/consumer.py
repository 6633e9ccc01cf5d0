"""The tracking consumer: exactly-once in effect over an at-least-once stream.

A durable pull consumer with explicit acks. Each message is handled on the
store thread; the handler's new events and the message's stream sequence are
recorded in one transaction, and only then is the message acknowledged. The
event messages of a fetched batch share that transaction, a tracking row each,
handled in stream order (docs/decisions.md, 39). A
message whose sequence is already recorded (redelivered after a crash between
commit and ack, or handled by another instance) is acknowledged and skipped.
A message that fails validation, or still fails after the maximum number of
deliveries, goes to the dead-letter subject with its reason and is terminated,
so it never blocks the ones behind it; so does, at once, a body that contradicts
its subject (another case, association or type, or an association this service
does not serve), which no retry can mend. A handler that says `RetryLater` (an
earlier event it depends on has not arrived yet) is not failing: those
redeliveries have their own, much longer budget in time.

An operator replays a dead letter on `khidma.replay.<service>` (shared/deadletters.py):
the consumer handles it under the original message's stream sequence, so a replay
of what was already applied is skipped like any redelivery, and it then says so on
`khidma.replayed.<service>`. A service given `on_dead_letter` (intake) also reads
every service's dead letters and replay notices, to hold the cases they concern.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from eventsourcing.application import ProcessingEvent
from eventsourcing.persistence import Tracking
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError

from shared import metrics, tracing
from shared.dead_letter import (
    REASON_HEADER,
    SEQUENCE_HEADER,
    SERVICE_HEADER,
    SUBJECT_HEADER,
    DeadLetter,
    read_dead_letter,
)
from shared.events import IntegrationEvent, decode_event
from shared.logging import context_of_event, log_context
from shared.store import (
    DuplicateDelivery,
    ServiceApplication,
    StoreRunner,
    consumer_tracking_name,
    process_tracked,
    process_tracked_all,
)
from shared.subjects import (
    DEAD_LETTER_FILTERS,
    STREAM_NAME,
    dead_letter_subject,
    event_type_filter,
    replay_subject,
    replayed_subject,
    subject_mismatch,
)

log = logging.getLogger(__name__)

Handler = Callable[[IntegrationEvent, ProcessingEvent], None]
DeadLetterHandler = Callable[[DeadLetter, ProcessingEvent], None]

__all__ = [
    "REASON_HEADER",
    "SEQUENCE_HEADER",
    "SERVICE_HEADER",
    "SUBJECT_HEADER",
    "DeadLetterHandler",
    "Handler",
    "RetryLater",
    "TrackingConsumer",
]

# The exit code of a process ended by the fault-injection point (EX_TEMPFAIL).
FAULT_EXIT_CODE = 75


class RetryLater(Exception):
    """A handler cannot act yet (an earlier event has not arrived): redeliver it."""


@dataclass
class _Waiting:
    """A message whose handler said RetryLater: since when, and how many times."""

    since: float
    deliveries: int = 0


@dataclass(frozen=True)
class _Consumed:
    """An event message its handler is to apply, at the position it stands for."""

    message: Msg
    event: IntegrationEvent
    position: int
    handler: Handler


@dataclass(frozen=True)
class _Aside:
    """A message no handler may apply, and why: it goes to the dead letters."""

    reason: str
    invalid_type: str | None = None  # counted as an invalid message of this type


@dataclass
class ConsumerStats:
    handled: int = 0
    duplicates: int = 0
    retried: int = 0
    dead_letters: int = 0
    handled_by_type: dict[str, int] = field(default_factory=dict)
    last_sequence: int = 0


class TrackingConsumer:
    def __init__(
        self,
        app: ServiceApplication,
        store: StoreRunner,
        js: JetStreamContext,
        *,
        service: str,
        handlers: Mapping[str, Handler],
        durable: str | None = None,
        max_deliveries: int = 5,
        retry_later_seconds: float = 600.0,
        ack_wait: float = 30.0,
        batch_size: int = 64,
        on_recorded: Callable[[], None] = lambda: None,
        exit_after_commit: str | None = None,
        on_dead_letter: DeadLetterHandler | None = None,
    ):
        self.app = app
        self.store = store
        self.js = js
        self.service = service
        # Shown at 0 from the start, so an alert on any increase sees the first one.
        metrics.DEAD_LETTERS.labels(service)
        self.handlers = dict(handlers)
        self.durable = durable or service
        self.max_deliveries = max_deliveries
        self.retry_later_seconds = retry_later_seconds
        self.ack_wait = ack_wait
        self.batch_size = batch_size
        self.on_recorded = on_recorded
        self.on_dead_letter = on_dead_letter
        # Testing only (KHIDMA_FAULT_EXIT_AFTER_COMMIT): the event type, or "any",
        # whose commit ends the process before its ack. None in production.
        self.exit_after_commit = exit_after_commit
        self.tracking_name = consumer_tracking_name(STREAM_NAME)
        self.stats = ConsumerStats()
        # Kept in memory, per process: after a restart a waiting message starts a
        # new wait and a failing one a new count (both budgets stay bounded per
        # process); the waits of a message never count as its failures.
        self._waiting: dict[int, _Waiting] = {}
        self._failures: dict[int, int] = {}

    def consumer_config(self) -> ConsumerConfig:
        return durable_consumer_config(
            self.durable,
            self.handlers,
            self.ack_wait,
            self.batch_size,
            service=self.service,
            watches_dead_letters=self.on_dead_letter is not None,
        )

    async def ensure_consumer(self) -> None:
        """Creates the durable consumer or updates it to this code's configuration.

        The server keeps an existing durable's old configuration unless told to
        update it, so a changed filter would otherwise be silently ignored.
        """
        wanted = self.consumer_config()
        info = await self.js.add_consumer(STREAM_NAME, wanted)
        if sorted(info.config.filter_subjects or []) != sorted(wanted.filter_subjects or []):
            log.warning("recreating consumer %s with new filters", self.durable)
            await self.js.delete_consumer(STREAM_NAME, self.durable)
            await self.js.add_consumer(STREAM_NAME, wanted)

    async def run(self) -> None:
        await self.ensure_consumer()
        subscription = await self.js.pull_subscribe_bind(self.durable, STREAM_NAME)
        try:
            while True:
                try:
                    messages = await subscription.fetch(self.batch_size, timeout=1.0)
                except (TimeoutError, NatsTimeoutError):
                    continue
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("fetch failed on %s; binding again", self.durable)
                    await asyncio.sleep(1.0)
                    try:
                        await self.ensure_consumer()
                        await _unsubscribe(subscription)
                        subscription = await self.js.pull_subscribe_bind(self.durable, STREAM_NAME)
                    except Exception:
                        log.exception("could not bind consumer %s", self.durable)
                    continue
                if len(messages) == 1:
                    await self._finishing(messages[0], self.handle_message(messages[0]))
                else:
                    await self.handle_batch(messages)
        finally:
            # A fetch cancelled mid-flight leaves its late reply queued; without
            # this, draining the connection at shutdown waits on it.
            await _unsubscribe(subscription)

    async def handle_message(self, message: Msg) -> None:
        read = self._read(message)
        if isinstance(read, DeadLetter):
            await self._handle_notice(message, read)
        elif isinstance(read, _Aside):
            await self._set_aside(message, read)
        else:
            await self._handle_alone(read)

    async def handle_batch(self, messages: Sequence[Msg]) -> None:
        """A fetched batch, in stream order: its runs of event messages are each
        recorded in one transaction (process_tracked_all); any other message
        (a dead letter or replay notice, one set aside) on its own path, after the
        run before it is settled, so nothing is applied out of order."""
        run: list[_Consumed] = []
        for message in messages:
            try:
                read: _Consumed | _Aside | DeadLetter | None = self._read(message)
            except Exception:  # noqa: BLE001 — its own path says what went wrong
                read = None
            if isinstance(read, _Consumed):
                run.append(read)
                continue
            await self._handle_run(run)
            run = []
            await self._finishing(message, self.handle_message(message))
        await self._handle_run(run)

    def _read(self, message: Msg) -> _Consumed | _Aside | DeadLetter:
        """What a message is: a notice, one to set aside (and why), or an event to apply."""
        notice = read_dead_letter(
            message.subject, message.data, message.headers, message.metadata.sequence.stream
        )
        if notice is not None:
            return notice
        origin = self._origin(message)
        if origin is None:
            return _Aside("a replay without its original subject and sequence")
        subject, position = origin
        event_type = subject.rsplit(".", 1)[-1]
        try:
            event = decode_event(message.data)
        except ValidationError as error:
            return _Aside(f"invalid event: {_summary(error)}", event_type)
        mismatch = subject_mismatch(subject, event, getattr(self.app, "packs", None) or ())
        if mismatch is not None:
            return _Aside(f"body contradicts its subject: {mismatch}", event_type)
        handler = self.handlers.get(event.event_type)
        if handler is None:
            return _Aside(f"no handler for {event.event_type}")
        return _Consumed(message, event, position, handler)

    async def _set_aside(self, message: Msg, aside: _Aside) -> None:
        if aside.invalid_type is not None:
            metrics.MESSAGES_CONSUMED.labels(self.service, aside.invalid_type, "invalid").inc()
        await self.dead_letter(message, aside.reason)

    @contextlib.contextmanager
    def _about(self, consumed: _Consumed) -> Iterator[None]:
        """Every log line about the message, on the loop and on the store thread,
        carries its case and correlation ids; its handling is one consume span."""
        message, event = consumed.message, consumed.event
        delivery = message.metadata.num_delivered or 1
        with (
            log_context(**context_of_event(event)),
            tracing.consume_span(self.service, event, message.headers, delivery),
        ):
            yield

    def _origin(self, message: Msg) -> tuple[str, int] | None:
        """The subject and stream sequence the message stands for: its own, or for a
        replay, those of the message it replays (None when a replay lacks them)."""
        if message.subject != replay_subject(self.service):
            return message.subject, message.metadata.sequence.stream
        headers = message.headers or {}
        subject, sequence = headers.get(SUBJECT_HEADER), headers.get(SEQUENCE_HEADER, "")
        if not subject or not sequence.isdigit():
            return None
        return subject, int(sequence)

    async def _handle_event(self, consumed: _Consumed) -> None:
        """One event message in its own transaction (process_tracked)."""
        tracking = Tracking(self.tracking_name, consumed.position)
        handler, event = consumed.handler, consumed.event
        started = time.perf_counter()
        outcome: Exception | None = None
        try:
            await self.store.run(process_tracked, self.app, tracking, lambda p: handler(event, p))
        except Exception as error:  # noqa: BLE001 — settled below, as any outcome
            outcome = error
        else:
            self._handled(consumed, time.perf_counter() - started)
        await self._settle(consumed, outcome)

    async def _handle_run(self, run: Sequence[_Consumed]) -> None:
        """Event messages recorded in one transaction, then each settled.

        Every message's `_handled` (the fault-injection point among them) comes after
        the commit and before any ack, so a crash there leaves the whole batch to be
        redelivered and skipped as duplicates."""
        if len(run) <= 1:
            for consumed in run:
                await self._finishing(consumed.message, self._handle_alone(consumed))
            return
        items = [(Tracking(self.tracking_name, c.position), self._handling(c)) for c in run]
        metrics.GROUP_COMMIT_SIZE.labels(self.service, "consumed messages").observe(len(run))
        started = time.perf_counter()
        outcomes: Sequence[Exception | None]
        try:
            outcomes = await self.store.run(process_tracked_all, self.app, items)
        except Exception as error:  # noqa: BLE001 — nothing was recorded: each is retried
            outcomes = [error] * len(run)
        # The batch's time shared out: a handler's own time is not measured apart.
        each = (time.perf_counter() - started) / len(run)
        for consumed, outcome in zip(run, outcomes, strict=True):
            if outcome is None:
                self._handled(consumed, each)
        for consumed, outcome in zip(run, outcomes, strict=True):
            await self._finishing(consumed.message, self._settle(consumed, outcome))

    async def _handle_alone(self, consumed: _Consumed) -> None:
        with self._about(consumed):
            await self._handle_event(consumed)

    def _handling(self, consumed: _Consumed) -> Callable[[ProcessingEvent], None]:
        """The handler's call for a batch, on the store thread, in the message's context."""

        def handle(processing: ProcessingEvent) -> None:
            with self._about(consumed):
                consumed.handler(consumed.event, processing)

        return handle

    async def _settle(self, consumed: _Consumed, outcome: Exception | None) -> None:
        """After the message's transaction: acknowledged when recorded (or already
        recorded before), else redelivered or dead-lettered by what its handler raised."""
        message, event, position = consumed.message, consumed.event, consumed.position
        # Retries are counted per message delivered; the effect is tracked at the
        # position it stands for, so a replay of what was applied is a duplicate.
        sequence = message.metadata.sequence.stream
        if isinstance(outcome, DuplicateDelivery):
            self.stats.duplicates += 1
            metrics.MESSAGES_CONSUMED.labels(self.service, event.event_type, "duplicate").inc()
            log.info("skipped %s already handled", event.event_type, extra={"sequence": position})
        elif isinstance(outcome, RetryLater):
            await self._retry_later(message, event, sequence, outcome)
            return
        elif outcome is not None:  # any failure of a handler is retried, then dead-lettered
            await self._failed(message, event, sequence, outcome)
            return
        if position != sequence:
            await self._say_replayed(message, position)
        self.stats.last_sequence = max(self.stats.last_sequence, sequence)
        await message.ack()
        self._waiting.pop(sequence, None)
        self._failures.pop(sequence, None)

    async def _finishing(self, message: Msg, step: Awaitable[None]) -> None:
        try:
            await step
        except asyncio.CancelledError:
            raise
        except Exception:
            # The dead-letter publish or the ack failed (the server is away, a
            # timeout): the message was not acknowledged and comes back; the loop
            # must not die with it.
            log.exception(
                "could not finish a message; it will be redelivered",
                extra={"subject": message.subject},
            )
            await _nak_quietly(message)

    async def _retry_later(
        self, message: Msg, event: IntegrationEvent, sequence: int, error: RetryLater
    ) -> None:
        """An event that waits for an earlier one: redelivered, until it has waited
        `retry_later_seconds`, then dead-lettered."""
        waiting = self._waiting_on(sequence)
        waited = time.monotonic() - waiting.since
        if waited >= self.retry_later_seconds:
            metrics.MESSAGES_CONSUMED.labels(self.service, event.event_type, "dead_letter").inc()
            await self.dead_letter(
                message,
                f"waited {waited:.0f}s ({waiting.deliveries} deliveries) "
                f"for an earlier event: {error!r}",
            )
            return
        waiting.deliveries += 1
        self.stats.retried += 1
        metrics.MESSAGES_CONSUMED.labels(self.service, event.event_type, "retried").inc()
        log.info(
            "will retry message: %r",
            error,
            extra={"case_id": str(event.case_id), "sequence": sequence},
        )
        await message.nak(delay=min(0.2 * 2**waiting.deliveries, 10.0))

    async def _failed(
        self, message: Msg, event: IntegrationEvent, sequence: int, error: Exception
    ) -> None:
        """A handler that raised: redelivered with a backoff, dead-lettered after
        `max_deliveries` failures."""
        # Counted here, not from the server's delivery count: that one also counts
        # the deliveries that only waited (RetryLater), here or at another instance
        # sharing the durable, which are not failures.
        failures = self._count_failure(sequence)
        if failures >= self.max_deliveries:
            log.exception(
                "giving up on message",
                extra={"case_id": str(event.case_id), "sequence": sequence},
            )
            metrics.MESSAGES_CONSUMED.labels(self.service, event.event_type, "dead_letter").inc()
            await self.dead_letter(message, f"failed {failures} times: {error!r}")
            return
        self.stats.retried += 1
        metrics.MESSAGES_CONSUMED.labels(self.service, event.event_type, "retried").inc()
        log.warning(
            "will retry message: %r",
            error,
            extra={"case_id": str(event.case_id), "sequence": sequence},
        )
        await message.nak(delay=min(0.2 * 2**failures, 10.0))

    def _handled(self, consumed: _Consumed, seconds: float) -> None:
        event, sequence = consumed.event, consumed.message.metadata.sequence.stream
        metrics.HANDLER_SECONDS.labels(self.service, event.event_type).observe(seconds)
        metrics.MESSAGES_CONSUMED.labels(self.service, event.event_type, "handled").inc()
        log.info("handled %s", event.event_type, extra={"sequence": sequence})
        self.stats.handled += 1
        self.stats.handled_by_type[event.event_type] = (
            self.stats.handled_by_type.get(event.event_type, 0) + 1
        )
        self.on_recorded()
        if self.exit_after_commit is not None:
            self._exit_if_injected(event.event_type, sequence)

    def _exit_if_injected(self, event_type: str, sequence: int) -> None:
        """FAULT INJECTION, testing only: dies between the commit and the ack.

        The effect and its tracking position are committed; the message is not
        acknowledged, so the server redelivers it to the restarted process,
        which must skip it. `os._exit` runs no cleanup, as a killed process would.
        """
        if self.exit_after_commit not in ("any", event_type):
            return
        log.warning(
            "fault injection: exiting after the commit and before the ack",
            extra={"sequence": sequence, "exit_code": FAULT_EXIT_CODE},
        )
        os._exit(FAULT_EXIT_CODE)

    def _count_failure(self, sequence: int) -> int:
        """One more failure of this message in this process; how many so far."""
        if sequence not in self._failures and len(self._failures) >= 10_000:
            # Messages another instance finished never come back here.
            self._failures.clear()
        self._failures[sequence] = self._failures.get(sequence, 0) + 1
        return self._failures[sequence]

    def _waiting_on(self, sequence: int) -> _Waiting:
        """The wait of this message, started now if it is its first RetryLater."""
        if sequence not in self._waiting and len(self._waiting) >= 10_000:
            # Messages another instance finished never come back here: forget
            # the waits that are long over.
            horizon = time.monotonic() - 2 * self.retry_later_seconds
            for stale in [s for s, w in self._waiting.items() if w.since < horizon]:
                del self._waiting[stale]
        return self._waiting.setdefault(sequence, _Waiting(since=time.monotonic()))

    async def _say_replayed(self, message: Msg, position: int) -> None:
        """Tells the watchers (intake) that the replay of a dead letter was applied.

        Said before the ack, and again when a redelivered replay is skipped as a
        duplicate, so a crash in between loses no notice; the server drops a
        repeated one (Nats-Msg-Id)."""
        headers = message.headers or {}
        await self.js.publish(
            replayed_subject(self.service),
            message.data,
            headers={
                SUBJECT_HEADER: headers.get(SUBJECT_HEADER, ""),
                SEQUENCE_HEADER: str(position),
                SERVICE_HEADER: self.service,
                "Nats-Msg-Id": f"replayed:{self.service}:{message.metadata.sequence.stream}",
            },
        )
        log.info("applied the replay of a dead letter", extra={"sequence": position})

    async def _handle_notice(self, message: Msg, notice: DeadLetter) -> None:
        """A dead letter or replay notice, for a service that watches them (intake).

        Tracked like an event, so each is applied once. One that cannot be applied
        is dropped with an error after max_deliveries, never dead-lettered: its
        dead letter would come back here."""
        sequence = message.metadata.sequence.stream
        watcher = self.on_dead_letter
        if watcher is not None:
            tracking = Tracking(self.tracking_name, sequence)
            try:
                await self.store.run(
                    process_tracked, self.app, tracking, lambda p: watcher(notice, p)
                )
            except DuplicateDelivery:
                pass
            except Exception:
                failures = self._count_failure(sequence)
                if failures < self.max_deliveries:
                    await message.nak(delay=min(0.2 * 2**failures, 10.0))
                    return
                log.exception("could not apply a dead letter", extra={"sequence": sequence})
            else:
                self.on_recorded()
        await message.ack()
        self._failures.pop(sequence, None)

    async def dead_letter(self, message: Msg, reason: str) -> None:
        sequence = message.metadata.sequence.stream
        subject, position = self._origin(message) or (message.subject, sequence)
        await self.js.publish(
            dead_letter_subject(self.service),
            message.data,
            headers={
                REASON_HEADER: _header_safe(reason),
                SUBJECT_HEADER: subject,
                SEQUENCE_HEADER: str(position),
                SERVICE_HEADER: self.service,
                # A replay that fails again is a new dead letter of the same message.
                "Nats-Msg-Id": f"deadletter:{self.service}:{sequence}",
            },
        )
        self.stats.dead_letters += 1
        metrics.DEAD_LETTERS.labels(self.service).inc()
        log.error("dead-lettered message: %s", reason, extra={"sequence": sequence})
        await message.term()
        self._waiting.pop(sequence, None)
        self._failures.pop(sequence, None)

    async def pending(self) -> int:
        info = await self.js.consumer_info(STREAM_NAME, self.durable)
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)


def durable_consumer_config(
    durable: str,
    event_types: Iterable[str],
    ack_wait: float,
    batch_size: int,
    *,
    service: str | None = None,
    watches_dead_letters: bool = False,
) -> ConsumerConfig:
    """The configuration of a service's durable pull consumer on the stream: the
    event types it handles, the replays of its dead letters and, for a service
    that holds the cases they concern, every service's dead letters."""
    filters = [event_type_filter(t) for t in sorted(event_types)]
    filters.append(replay_subject(service or durable))
    if watches_dead_letters:
        filters.extend(DEAD_LETTER_FILTERS)
    return ConsumerConfig(
        name=durable,
        durable_name=durable,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        # Dead-lettering is ours (after max_deliveries); the server must not
        # stop redelivering first and strand the message.
        max_deliver=-1,
        max_ack_pending=max(1000, batch_size * 4),
        filter_subjects=filters,
    )


async def _unsubscribe(subscription: JetStreamContext.PullSubscription) -> None:
    try:
        await subscription.unsubscribe()
    except Exception:
        log.debug("unsubscribe failed", exc_info=True)


async def _nak_quietly(message: Msg) -> None:
    """Asks for an early redelivery; if even that fails, ack_wait brings it back."""
    try:
        await message.nak(delay=1.0)
    except Exception:
        log.debug("nak failed", exc_info=True)


def _summary(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in problem['loc']) or '(body)'}: {problem['msg']}"
        for problem in error.errors()[:5]
    )


def _header_safe(text: str) -> str:
    return " ".join(text.split())[:1000]
