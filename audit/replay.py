"""Replays the history: each service's own store, and separately the KHIDMA stream.

Both readers are generators that page through their source, so memory stays
bounded whatever the length of the history:

* a store is read through its notification log, `page` notifications at a time
  (eventsourcing's `select_notifications` with a limit); each stored event is
  decoded generically (topic + JSON state with the UUID, datetime and Decimal
  transcodings, parsed by msgspec in one walk: `decode_state`), without
  importing the services' modules;
* the stream is read with an ephemeral pull consumer (no acks) on
  `khidma.*.*.*`, STREAM_BATCH messages per pull request (sent by the audit
  itself, `_pull_all`), in a background thread that hands them over through a
  bounded queue (STREAM_QUEUE).

A progress bar (tqdm, on stderr) is shown when asked (`progress=True`) or, with
`progress=None`, when stderr is a terminal.
"""

from __future__ import annotations

import asyncio
import queue
import re
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple
from uuid import UUID

import msgspec
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    InfrastructureFactory,
    JSONTranscoder,
    TranscodingNotRegisteredError,
    UUIDAsHex,
)
from eventsourcing.utils import Environment

from audit.settings import AuditSettings
from audit.stores import SERVICES, store_env, store_exists
from shared.events import IntegrationEvent, decode_event
from shared.subjects import ROOT, STREAM_NAME

PAGE = 1000
STREAM_QUEUE = 4  # batches of STREAM_BATCH messages
STREAM_BATCH = 2000
EVENT_SUBJECTS = f"{ROOT}.*.*.*"

# The aggregates whose id is the case id, per service.
CASE_AGGREGATES: dict[str, frozenset[str]] = {
    "intake": frozenset({"Case"}),
    "verification": frozenset({"Verification"}),
    "committee": frozenset({"CommitteeCase"}),
    "surveys": frozenset({"Survey"}),
}
# Aggregates that are not cases but whose events name one (`case_id` in the state):
# a committee sitting's votes, recusals and decisions belong to the case's timeline.
CASE_LINKED_AGGREGATES: dict[str, frozenset[str]] = {
    "committee": frozenset({"Sitting"}),
}
# The domain events each service's outbox publishes, and as which integration event
# (services/*/integration.py TRANSLATORS; a unit test keeps the two in step).
PUBLISHED: dict[str, str] = {
    "services.intake.domain:Case.Completed": "RequestReceived",
    "services.intake.domain:Case.Resubmitted": "RequestReceived",
    "services.intake.domain:Case.ReferredToResearcher": "ReferredToResearcher",
    "services.intake.domain:Case.ServiceDelivered": "ServiceDelivered",
    "services.verification.domain:Verification.Confirmed": "DataVerified",
    "services.committee.domain:CommitteeCase.Decided": "CommitteeDecided",
    "services.surveys.domain:Survey.Answered": "SurveyAnswered",
    # An anonymous answer, published under its own id (decision 16).
    "services.surveys.domain:AnonymousAnswer.Recorded": "SurveyAnswered",
}


def show_progress(progress: bool | None) -> bool:
    if progress is None:
        return sys.stderr.isatty()
    return progress


def progress_bar(total: int | None, description: str, progress: bool | None) -> Any:
    """A tqdm bar on stderr, or a no-op object when progress is off."""
    if not show_progress(progress):
        return _NoBar()
    from tqdm import tqdm

    # Asked for: shown at once; on a terminal: only once the replay lasts over a second.
    delay = 0.0 if progress else 1.0
    return tqdm(
        total=total, desc=description, unit="ev", file=sys.stderr, mininterval=0.5, delay=delay
    )


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class StoredRecord:
    """One event as a service's store holds it, decoded generically."""

    service: str
    notification_id: int
    originator_id: str
    originator_version: int
    topic: str
    state: dict[str, Any]

    @property
    def aggregate(self) -> str:
        """`Case` for `services.intake.domain:Case.Completed`."""
        return self.topic.partition(":")[2].rpartition(".")[0]

    @property
    def name(self) -> str:
        """`Completed` for `services.intake.domain:Case.Completed`."""
        return self.topic.rpartition(".")[2]

    @property
    def case_id(self) -> str | None:
        """The case this event belongs to, or None for the index aggregates."""
        if self.aggregate in CASE_AGGREGATES.get(self.service, ()):
            return self.originator_id
        if self.aggregate in CASE_LINKED_AGGREGATES.get(self.service, ()):
            case_id = self.state.get("case_id")
            return str(case_id) if case_id else None
        return None

    @property
    def published_as(self) -> str | None:
        """The integration event this domain event is published as, if public."""
        if self.state.get("event_id") is None:
            return None
        return PUBLISHED.get(self.topic)

    @property
    def event_id(self) -> str | None:
        value = self.state.get("event_id")
        return str(value) if value is not None else None


def _transcoder() -> JSONTranscoder:
    transcoder = JSONTranscoder()
    transcoder.register(UUIDAsHex())
    transcoder.register(DecimalAsStr())
    transcoder.register(DatetimeAsISO())
    return transcoder


class StoreReader:
    """Reads one service's store, read-only, page by page."""

    def __init__(self, service: str, settings: AuditSettings):
        self.service = service
        self.env = store_env(service, settings)
        # Named like the service's application (its `name`), so the PostgreSQL
        # tables are found: <service>_events in schema <service>.
        self.factory = InfrastructureFactory.construct(Environment(name=service, env=self.env))
        self.recorder = self.factory.application_recorder()
        self.transcoder = _transcoder()
        self.cipher = self.factory.cipher()
        self.compressor = self.factory.compressor()

    def max_notification_id(self) -> int:
        return self.recorder.max_notification_id() or 0

    def decode(self, state: bytes) -> dict[str, Any]:
        if self.cipher is not None:
            state = self.cipher.decrypt(state)
        if self.compressor is not None:
            state = self.compressor.decompress(state)
        return decode_state(state, self.transcoder)

    def records(self, *, after: int = 0, page: int = PAGE) -> Iterator[StoredRecord]:
        position = after
        while True:
            notifications = self.recorder.select_notifications(
                start=position, limit=page, inclusive_of_start=False
            )
            if not notifications:
                return
            for notification in notifications:
                yield StoredRecord(
                    service=self.service,
                    notification_id=notification.id,
                    originator_id=str(notification.originator_id),
                    originator_version=notification.originator_version,
                    topic=notification.topic,
                    state=self.decode(notification.state),
                )
            position = notifications[-1].id
            if len(notifications) < page:
                return

    def close(self) -> None:
        self.factory.close()


def decode_state(state: bytes, transcoder: JSONTranscoder) -> dict[str, Any]:
    """A stored event's state (deciphered, decompressed) as the audit reads it."""
    try:
        return _plain_json(_JSON.decode(state))
    except msgspec.DecodeError:
        # What msgspec refuses and json reads (a NaN, an infinity, bytes that are
        # no JSON at all): the library's own transcoder, as before, with its error.
        return _plain(transcoder.decode(state))


def _plain(value: Any) -> Any:
    """UUIDs as strings; datetimes stay datetimes (aware, UTC)."""
    from uuid import UUID

    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


# The library's transcodings of a stored state (eventsourcing.persistence: UUIDAsHex,
# DecimalAsStr, DatetimeAsISO, as `_transcoder` registers them), read the way `_plain`
# leaves them: a UUID as its string, a datetime aware (UTC when stored naive).
def _uuid_text(data: str) -> str:
    # UUIDAsHex writes `uuid.hex`: its string is the same digits with the dashes put in,
    # without building a UUID; anything else is read by UUID, as the library reads it.
    if _UUID_HEX.fullmatch(data):
        return f"{data[:8]}-{data[8:12]}-{data[12:16]}-{data[16:20]}-{data[20:]}"
    return str(UUID(data))


_UUID_HEX = re.compile(r"[0-9a-f]{32}")


def _aware(data: str) -> datetime:
    value = datetime.fromisoformat(data)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


_TRANSCODED: dict[str, Callable[[Any], Any]] = {
    "uuid_hex": _uuid_text,
    "decimal_str": Decimal,
    "datetime_iso": _aware,
}


# msgspec, not orjson: orjson reads an integer past 64 bits as a float, silently.
_JSON = msgspec.json.Decoder()


def _plain_json(value: Any) -> Any:
    """A stored state parsed by msgspec, its transcoded values decoded: one walk.

    The same result as the library's transcoder followed by `_plain` (children
    first, as its object hook sees them), without json's per-object Python hook.
    """
    if isinstance(value, dict):
        value = {k: _plain_json(v) if isinstance(v, (dict, list)) else v for k, v in value.items()}
        if len(value) == 2 and "_type_" in value and "_data_" in value:
            decode = _TRANSCODED.get(value["_type_"])
            if decode is None:
                raise TranscodingNotRegisteredError(
                    f"Data serialized with name '{value['_type_']}' is not deserializable. "
                    "Please register a custom transcoding for this type."
                )
            return decode(value["_data_"])
        return value
    if isinstance(value, list):
        return [_plain_json(v) if isinstance(v, (dict, list)) else v for v in value]
    return value


def available_services(settings: AuditSettings) -> list[str]:
    return [service for service in SERVICES if store_exists(service, settings)]


def replay_store(
    service: str, settings: AuditSettings, *, progress: bool | None = False, page: int = PAGE
) -> Iterator[StoredRecord]:
    """Every event of one service's store, in notification order."""
    reader = StoreReader(service, settings)
    try:
        bar = progress_bar(reader.max_notification_id(), f"{service} store", progress)
        try:
            for record in reader.records(page=page):
                bar.update(1)
                yield record
        finally:
            bar.close()
    finally:
        reader.close()


def replay_stores(
    settings: AuditSettings, *, progress: bool | None = False, page: int = PAGE
) -> Iterator[StoredRecord]:
    """Every event of every service's store (the services whose store exists)."""
    for service in available_services(settings):
        yield from replay_store(service, settings, progress=progress, page=page)


class StreamRecord(NamedTuple):
    """One integration event as the KHIDMA stream holds it (a named tuple: one is
    made for every message, and a frozen dataclass's init costs ten times more)."""

    sequence: int
    subject: str
    event: IntegrationEvent | None
    error: str | None = None


_END = object()
CONNECT_TIMEOUT = 5.0


class StreamUnavailable(RuntimeError):
    """The KHIDMA stream cannot be read: the server refused or could not be reached.

    Carries the reason in both languages (`message`), for the command line.
    """

    def __init__(self, nats_url: str, reason: str):
        # A URL may carry the user's password (nats://user:password@host): never shown.
        nats_url = re.sub(r"//[^/@]*@", "//", nats_url)
        self.nats_url = nats_url
        self.reason = reason
        self.message = {
            "en": f"cannot read the KHIDMA stream at {nats_url}: {reason}"
            + (" (check KHIDMA_NATS_USER / KHIDMA_NATS_PASSWORD)" if "uthoriz" in reason else ""),
            "ar": f"تعذّرت قراءة تدفق KHIDMA على {nats_url}: {reason}"
            + (" (راجع KHIDMA_NATS_USER و KHIDMA_NATS_PASSWORD)" if "uthoriz" in reason else ""),
        }
        super().__init__(self.message["en"])


async def connect_to_stream(
    nats_url: str, *, user: str | None = None, password: str | None = None
) -> Any:
    """One connection for a read, failing at once with StreamUnavailable.

    nats-py's default is to retry forever: with a wrong or missing password the
    audit would hang silently. An audit is a one-off read, so no reconnection.
    """
    import nats

    errors: list[str] = []

    async def note(error: Exception) -> None:  # instead of nats-py's logged tracebacks
        errors.append(str(error))

    options: dict[str, Any] = {
        "allow_reconnect": False,
        "max_reconnect_attempts": 0,
        "connect_timeout": CONNECT_TIMEOUT,
        "error_cb": note,
    }
    if user:
        options.update(user=user, password=password)
    try:
        return await asyncio.wait_for(
            nats.connect(nats_url, **options), timeout=CONNECT_TIMEOUT * 2
        )
    except Exception as error:  # refused, unreachable, timed out: all mean "cannot read"
        reason = str(error) or (errors[-1] if errors else type(error).__name__)
        raise StreamUnavailable(nats_url, reason) from error


def replay_stream(
    nats_url: str,
    *,
    subject: str = EVENT_SUBJECTS,
    progress: bool | None = False,
    idle_timeout: float = 2.0,
    user: str | None = None,
    password: str | None = None,
    decode: Callable[[bytes], Any] = decode_event,
) -> Iterator[StreamRecord]:
    """Every event on the KHIDMA stream (or on `subject`), in stream order.

    Reads until no message is pending. The reading runs in a background thread;
    at most (STREAM_QUEUE + 1) * STREAM_BATCH messages wait in memory. Each event
    is decoded by `decode`: pydantic's model (`decode_event`), or, for a pass that
    reads the events' fields by name and nothing else (the board report's
    figures), the contract's struct (`shared.event_structs.decode_event_fast`).
    """
    handover: queue.Queue[Any] = queue.Queue(maxsize=STREAM_QUEUE)
    stop = threading.Event()

    async def read() -> None:
        connection = await connect_to_stream(nats_url, user=user, password=password)
        try:
            js = connection.jetstream()
            info = await js.stream_info(STREAM_NAME)
            handover.put(("total", info.state.messages))
            if not info.state.messages:
                return
            await _pull_all(connection, js, subject, idle_timeout, handover, stop)
        finally:
            await connection.close()

    def run() -> None:
        try:
            asyncio.run(read())
        except BaseException as error:  # noqa: BLE001 — handed to the reading side, which raises it
            _put_until(handover, ("error", error), stop)
        finally:
            _put_until(handover, _END, stop)

    worker = threading.Thread(target=run, name="audit-stream", daemon=True)
    worker.start()
    bar: Any = _NoBar()
    try:
        while True:
            item = handover.get()
            if item is _END:
                return
            if item[0] == "total":
                bar = progress_bar(item[1], "KHIDMA stream", progress)
                continue
            if item[0] == "error":
                raise item[1]
            bar.update(len(item[1]))
            for sequence, subject_name, data in item[1]:
                try:
                    event: IntegrationEvent | None = decode(data)
                    error = None
                except ValueError as problem:
                    event, error = None, str(problem)[:500]
                yield StreamRecord(
                    sequence=sequence, subject=subject_name, event=event, error=error
                )
    finally:
        stop.set()
        bar.close()
        # Drain so the worker is never blocked on a full queue, then let it end.
        while worker.is_alive():
            try:
                handover.get(timeout=0.1)
            except queue.Empty:
                pass
        worker.join(timeout=5)


def _put_until(handover: queue.Queue[Any], item: Any, stop: threading.Event) -> None:
    while True:
        try:
            handover.put(item, timeout=0.2)
            return
        except queue.Full:
            if stop.is_set():
                try:
                    handover.get_nowait()
                except queue.Empty:
                    pass


class _Batch:
    """The messages of one pull request, gathered by the subscription's callback.

    nats-py's own `fetch` waits for each message with a timeout of its own (a task
    per message) and parses each reply subject into a Metadata with a datetime:
    that was most of the replay's time. Here a message costs a tuple and a split.
    """

    def __init__(self, wanted: int, reply: str) -> None:
        self.wanted = wanted
        self.reply = reply
        self.items: list[tuple[int, str, bytes]] = []
        self.pending = -1  # what the server still holds for the consumer after the last one
        self.refused: str | None = None
        self.done = asyncio.Event()

    async def take(self, message: Any) -> None:
        headers = message.headers
        status = headers.get("Status") if headers else None
        if status:
            # Sent to the request's own reply subject (a late one of an earlier
            # request ends nothing): 404 no messages / 408 request expired mean the
            # server has sent all it will; anything else (a 409: the consumer was
            # deleted, ...) must not pass for the end of the stream.
            if message.subject == self.reply:
                if status not in ("404", "408"):
                    self.refused = f"{status} {headers.get('Description', '')}".strip()
                self.done.set()
            return
        tokens = message.reply.split(".")
        # $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ts>.<pending>,
        # or with the domain and account hash in front (11 tokens and more).
        offset = 0 if len(tokens) == ACK_V1_TOKENS else 2
        self.items.append((int(tokens[5 + offset]), message.subject, message.data))
        self.pending = int(tokens[8 + offset])
        if len(self.items) >= self.wanted or self.pending == 0:
            self.done.set()


ACK_V1_TOKENS = 9


async def _ephemeral_consumer(js: Any, subject: str) -> str:
    """An ephemeral pull consumer without acks: the audit reads, it consumes nothing."""
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    consumer = await js.add_consumer(
        STREAM_NAME,
        ConsumerConfig(
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.NONE,
            filter_subject=subject,
            inactive_threshold=60.0,
            mem_storage=True,
        ),
    )
    return str(consumer.name)


def _hand_over(handover: queue.Queue[Any], items: list[Any], stop: threading.Event) -> None:
    # Waits for room (the reading side is slower), unless the reading side stopped.
    while not stop.is_set():
        try:
            handover.put(("batch", items), timeout=0.2)
            return
        except queue.Full:
            continue


async def _pull_all(
    connection: Any,
    js: Any,
    subject: str,
    idle_timeout: float,
    handover: queue.Queue[Any],
    stop: threading.Event,
) -> None:
    """Reads the stream through an ephemeral pull consumer, STREAM_BATCH per request:
    off the protocol in bulk (audit.stream_wire) where a plain connection can be
    made, else through nats-py's subscription."""
    from audit.stream_wire import WireReader, WireUnavailable

    name = await _ephemeral_consumer(js, subject)
    try:
        try:
            wire = await WireReader.open(connection)
        except WireUnavailable:
            await _pull_with_nats(connection, name, idle_timeout, handover, stop)
        else:
            try:
                await _pull_wire(wire, name, idle_timeout, handover, stop)
            finally:
                await wire.close()
    finally:
        try:
            await js.delete_consumer(STREAM_NAME, name)
        except Exception:  # noqa: BLE001, S110 — the ephemeral consumer expires on its own anyway
            pass


_PULL_REQUEST = f'{{"batch": {STREAM_BATCH}, "no_wait": true}}'.encode()


async def _pull_wire(
    wire: Any, name: str, idle_timeout: float, handover: queue.Queue[Any], stop: threading.Event
) -> None:
    from audit.stream_wire import StatusRefused

    next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{STREAM_NAME}.{name}"
    requests = 0
    while not stop.is_set():
        requests += 1
        reply = f"{wire.inbox}.{requests}"
        wire.request(next_subject, reply, _PULL_REQUEST)
        try:
            items, pending, ended = await wire.batch(STREAM_BATCH, reply, idle_timeout)
        except StatusRefused as refused:
            raise RuntimeError(f"the server stopped the read of {STREAM_NAME}: {refused}") from None
        if not ended and not items:
            return
        if items:
            _hand_over(handover, items, stop)
        if not items or pending == 0:
            return


async def _pull_with_nats(
    connection: Any,
    name: str,
    idle_timeout: float,
    handover: queue.Queue[Any],
    stop: threading.Event,
) -> None:
    """The same read through nats-py's subscription (a TLS or nkey connection)."""
    import json

    inbox = connection.new_inbox()
    batch = _Batch(0, "")

    async def deliver(message: Any) -> None:
        await batch.take(message)

    # One request in flight at a time: at most STREAM_BATCH messages and a status wait
    # here, well under the limit past which nats-py would drop messages (slow consumer).
    subscription = await connection.subscribe(
        f"{inbox}.*", cb=deliver, pending_msgs_limit=STREAM_BATCH * 4, pending_bytes_limit=-1
    )
    request = json.dumps({"batch": STREAM_BATCH, "no_wait": True}).encode()
    next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{STREAM_NAME}.{name}"
    requests = 0
    try:
        while not stop.is_set():
            requests += 1
            batch = _Batch(STREAM_BATCH, f"{inbox}.{requests}")
            await connection.publish(next_subject, request, reply=batch.reply)
            try:
                await asyncio.wait_for(batch.done.wait(), timeout=idle_timeout)
            except TimeoutError:
                if not batch.items:
                    return
            if batch.refused:
                raise RuntimeError(f"the server stopped the read of {STREAM_NAME}: {batch.refused}")
            if batch.items:
                _hand_over(handover, batch.items, stop)
            if not batch.items or batch.pending == 0:
                return
    finally:
        try:
            await subscription.unsubscribe()
        except Exception:  # noqa: BLE001, S110 — closing the connection ends it anyway
            pass
