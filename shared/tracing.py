"""OpenTelemetry traces: the one place that configures them (docs/decisions.md, 35).

A case's events share its correlation id (the `RequestReceived` event id), and
that id's 128 bits are the trace id, so every process names the same trace
without being told. Span ids that another process must find are derived too:

- the *root* span, the HTTP request that recorded the case's first event
  (the one whose event id is the correlation id): `span_id("root", correlation)`;
- the relay's *publish* of an event: `span_id("publish", event id)`; its parent
  is the publish of the event that caused it, or the root for an event with no
  cause. The relay also carries it in the message's `traceparent` header.

A service adds its own spans under those: the HTTP request (shared/http.py),
the store commit (shared/store.py), the consume of each message (shared/consumer.py,
parent: the `traceparent` it carried). An HTTP request is only known to belong to a
case once it committed an event of it, so its span is written when it ends, with
the time it started and the id its commit span named as parent.

A request one of our own apps makes to another (the web app, the channels) carries
the caller's request in `traceparent`; the called request hangs from it. When the
called request joined a case, its answer's `traceresponse` names the case's trace,
and the caller's span, written when it ends, goes into that trace: at its top when
the call opened the case, else under the case's root. The caller cannot know the
case before it asks, which is why the answer says it.

Traces go out over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, or the setting `KHIDMA_OTLP_ENDPOINT`) is
set. Without one nothing is configured: every helper here returns at once
(`enabled()` is false), no header is added, and no span object is made.
The provider is this module's own, not OpenTelemetry's global one.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status, StatusCode

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
# What a call carries while tracing is off, or outside any request.
_NO_HEADERS: Mapping[str, str] = {}
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)

_provider: TracerProvider | None = None
_tracer: trace.Tracer | None = None
# What every helper returns while tracing is off: entered, it gives None.
_OFF: contextlib.nullcontext[None] = contextlib.nullcontext()
# The ids the next span is given (trace id, span id), when they are not random.
_forced: ContextVar[tuple[int | None, int | None]] = ContextVar(
    "khidma_forced_span_ids", default=(None, None)
)


def enabled() -> bool:
    return _tracer is not None


def otlp_traces_endpoint(setting: str | None = None) -> str | None:
    """Where spans go: the traces URL, or None when no endpoint is configured."""
    full = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if full:
        return full
    # The setting, for the apps without the services' settings (web, channels, audit) too.
    base = (
        setting
        or os.environ.get("KHIDMA_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    ).strip()
    return f"{base.rstrip('/')}/v1/traces" if base else None


def configure_tracing(
    service: str,
    endpoint: str | None = None,
    *,
    exporter: SpanExporter | None = None,
    batch: bool = False,
) -> TracerProvider | None:
    """Sets up traces for this process: to `exporter` (tests: in memory, each span at
    once unless `batch`), else over OTLP/HTTP to the configured endpoint in batches,
    else nothing."""
    global _provider, _tracer
    shutdown_tracing()
    if exporter is None:
        url = otlp_traces_endpoint(endpoint)
        if url is None:
            return None
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processor: Any = BatchSpanProcessor(OTLPSpanExporter(endpoint=url))
        log.info("traces go to %s", url)
    else:
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    _provider = TracerProvider(
        resource=Resource.create({"service.name": service}), id_generator=_Ids()
    )
    _provider.add_span_processor(processor)
    _tracer = _provider.get_tracer("khidma")
    return _provider


def shutdown_tracing() -> None:
    """Sends what is still buffered and stops tracing (at the end of the process)."""
    global _provider, _tracer
    provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()


def force_flush(timeout_millis: int = 5000) -> None:
    if _provider is not None:
        _provider.force_flush(timeout_millis)


class _Ids(RandomIdGenerator):
    """Random ids, except those `_start` asks for."""

    def generate_span_id(self) -> int:
        return _forced.get()[1] or super().generate_span_id()

    def generate_trace_id(self) -> int:
        return _forced.get()[0] or super().generate_trace_id()


# The ids every process derives alike.


def trace_id_of(correlation_id: UUID | str) -> int:
    return UUID(str(correlation_id)).int or 1


def span_id(kind: str, *parts: object) -> int:
    digest = hashlib.blake2b("|".join([kind, *map(str, parts)]).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") or 1


def root_span_id(correlation_id: UUID | str) -> int:
    return span_id("root", correlation_id)


def publish_span_id(event_id: UUID | str) -> int:
    return span_id("publish", event_id)


def publish_parent_id(event: Any) -> int:
    """The span an event's publish hangs from: its cause's publish, or the root."""
    if event.causation_id is None:
        return root_span_id(event.correlation_id)
    return publish_span_id(event.causation_id)


def traceparent(trace_id: int, span: int) -> str:
    return f"00-{trace_id:032x}-{span:016x}-01"


def parse_traceparent(value: str | None) -> tuple[int, int] | None:
    parts = (value or "").split("-")
    if len(parts) != 4 or parts[0] == "ff" or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        trace_id, parent = int(parts[1], 16), int(parts[2], 16)
    except ValueError:
        return None
    return (trace_id, parent) if trace_id and parent else None


# Our own apps' calls say so in `tracestate` (the W3C header for a vendor's own data):
# `khidma=follows` while the caller's span is in no case yet (it follows the answer's
# `traceresponse`), `khidma=joined` once it is in its case's trace. A `traceparent`
# without it (a browser's, a partner system's instrumented client) is not followed.
TRACESTATE = "tracestate"
_STATE_KEY = "khidma"


@dataclass(frozen=True)
class Carried:
    """The caller's span, from one of our own apps' `traceparent` and `tracestate`."""

    trace_id: int
    span: int
    # The caller's span goes where this request's answer says (it joined no case yet).
    follows: bool


def carried_from(traceparent_value: str | None, tracestate: str | None) -> Carried | None:
    """The caller of ours a request names, or None for anyone else's headers."""
    ids = parse_traceparent(traceparent_value)
    states = dict(
        entry.strip().split("=", 1) for entry in (tracestate or "").split(",") if "=" in entry
    )
    state = states.get(_STATE_KEY)
    if ids is None or state not in ("follows", "joined"):
        return None
    return Carried(*ids, follows=state == "follows")


def _start(
    name: str,
    *,
    trace_id: int | None,
    parent: int | None,
    span: int | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    start_time: int | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Span:
    assert _tracer is not None
    if parent is not None and trace_id is not None:
        remote = SpanContext(trace_id, parent, is_remote=True, trace_flags=_SAMPLED)
        context = trace.set_span_in_context(NonRecordingSpan(remote))
    else:
        context = otel_context.Context()  # a root: the trace id is `trace_id`
    token = _forced.set((trace_id, span))
    try:
        return _tracer.start_span(
            name, context=context, kind=kind, start_time=start_time, attributes=attributes
        )
    finally:
        _forced.reset(token)


# The HTTP request.


@dataclass
class RequestTrace:
    """A request in progress: its span is written when it ends (see the module)."""

    name: str
    started: int = field(default_factory=time.time_ns)
    span: int = field(default_factory=lambda: RandomIdGenerator().generate_span_id())
    trace_id: int | None = None
    root: bool = False
    correlation: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    # The caller of ours whose span is the parent of this one.
    carried: Carried | None = None
    kind: SpanKind = SpanKind.SERVER
    # The trace this request is in until it joins a case: the caller's, else its own.
    own_trace: int = 0

    def __post_init__(self) -> None:
        if not self.own_trace:
            self.own_trace = (
                self.carried.trace_id
                if self.carried
                else _uuid_int(self.correlation) or RandomIdGenerator().generate_trace_id()
            )


_request: ContextVar[RequestTrace | None] = ContextVar("khidma_request_trace", default=None)


def request_span(
    name: str,
    correlation: str | None,
    attributes: Mapping[str, Any] | None = None,
    carried: Carried | None = None,
    kind: SpanKind = SpanKind.SERVER,
) -> contextlib.AbstractContextManager[RequestTrace | None]:
    """Around one request (HTTP, or a submission over NATS request/reply). The caller
    may rename it once it knows more (the HTTP edge: the method and the route's
    template) and add `attributes` (no personal data: a path with it masked).
    `carried`: the caller of ours it came from (`carried_from` its headers).
    A piece of work that calls our services outside any request (a letter taken, a
    WhatsApp message answered after its webhook, a batch's row) is one too, of kind
    INTERNAL: the case it joins is then its trace."""
    if _tracer is None:
        return _OFF
    request = RequestTrace(
        name, correlation=correlation, attributes=dict(attributes or {}), carried=carried, kind=kind
    )
    return _request_span(request)


@contextlib.contextmanager
def _request_span(request: RequestTrace) -> Iterator[RequestTrace]:
    token = _request.set(request)
    try:
        yield request
    finally:
        _request.reset(token)
        _end_request(request)


def join_case(correlation_id: UUID | str | None, *, opened: bool) -> None:
    """The request in progress turned out to be about this case (its commit ran in a
    task of its own, intake's group commit): its span goes into the case's trace, as
    the root when the request opened the case."""
    request = _request.get()
    if request is None or correlation_id is None or request.trace_id is not None:
        return
    request.trace_id = trace_id_of(correlation_id)
    request.root = opened
    if opened:
        request.span = root_span_id(correlation_id)


def outgoing_headers() -> Mapping[str, str]:
    """What a call to one of our own services carries: the request in progress."""
    request = _request.get()
    if request is None:
        return _NO_HEADERS
    state = "joined" if request.trace_id is not None else "follows"
    return {
        TRACEPARENT: traceparent(request.trace_id or request.own_trace, request.span),
        TRACESTATE: f"{_STATE_KEY}={state}",
    }


def trace_response(request: RequestTrace | None) -> str | None:
    """The `traceresponse` of a request another of our apps made: the trace it ended
    in, and the case's root when it (or a call it made) opened the case; else its own
    span. None for a request nobody of ours made."""
    if request is None or request.carried is None:
        return None
    trace_id = request.trace_id or request.own_trace
    return traceparent(trace_id, _root_of(trace_id) if request.root else request.span)


def answered(value: str | None) -> None:
    """A call the request in progress made answered `value` (its `traceresponse`):
    if that call joined a case first, this request's span goes into the case's trace."""
    request = _request.get()
    answer = parse_traceparent(value)
    if request is None or answer is None or request.trace_id is not None:
        return
    trace_id, span = answer
    if trace_id != request.own_trace:
        request.trace_id = trace_id
        request.root = span == _root_of(trace_id)


def _end_request(request: RequestTrace) -> None:
    if _tracer is None:
        return
    trace_id, parent = request.trace_id, None
    carried = request.carried
    if trace_id is None:  # it joined no case: the caller's trace, or a trace of its own
        trace_id = request.own_trace
        parent = carried.span if carried else None
    elif carried is not None and (carried.follows or carried.trace_id == trace_id):
        parent = carried.span  # the caller's span is in this trace too (it follows, or was)
    elif not request.root:  # a later request about a case: under the case's root
        parent = _root_of(trace_id)
    status = int(request.attributes.get("http.response.status_code", 0))
    span = _start(
        request.name,
        trace_id=trace_id,
        parent=parent,
        span=request.span,
        kind=request.kind,
        start_time=request.started,
        attributes=request.attributes,
    )
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))
    span.end()


def _root_of(trace_id: int) -> int:
    return root_span_id(UUID(int=trace_id))


def _uuid_int(text: str | None) -> int | None:
    try:
        return UUID(str(text)).int or None
    except ValueError:
        return None


# The store commit.


def commit_span(events: Sequence[Any]) -> contextlib.AbstractContextManager[None]:
    """Around writing `events` in one transaction."""
    return _OFF if _tracer is None else _commit_span(events)


@contextlib.contextmanager
def _commit_span(events: Sequence[Any]) -> Iterator[None]:
    correlation, begins = _correlation_of(events)
    current = trace.get_current_span().get_span_context()
    request = _request.get()
    trace_id: int | None
    parent: int | None
    if current.is_valid:  # inside a consume: its trace, under it
        trace_id, parent = current.trace_id, current.span_id
    elif request is not None:  # inside an HTTP request: the case's trace, under the request
        trace_id = request.trace_id or (trace_id_of(correlation) if correlation else None)
        if request.trace_id is None and trace_id is not None:
            request.trace_id = trace_id
            request.root = begins
            if begins and correlation is not None:
                request.span = root_span_id(correlation)
        parent = request.span if trace_id is not None else None
    else:  # a background task of the service
        trace_id = trace_id_of(correlation) if correlation else None
        parent = root_span_id(correlation) if correlation else None
    span = _start(
        "store commit",
        trace_id=trace_id,
        parent=parent,
        attributes={
            "khidma.events": len(events),
            "khidma.event_types": sorted({type(e).__qualname__ for e in events}),
        },
    )
    with trace.use_span(span, end_on_exit=True, record_exception=True):
        yield


def _correlation_of(events: Sequence[Any]) -> tuple[Any, bool]:
    """The correlation id of what is written, and whether these events begin it.

    A public event carries its correlation id; the event that begins a case (intake's
    completed request) carries none, and its own event id becomes the case's.
    """
    for event in events:
        correlation = getattr(event, "correlation_id", None)
        if correlation is not None:
            return correlation, False
    for event in events:
        event_id = getattr(event, "event_id", None)
        if event_id is not None:
            return event_id, True
    return None, False


# The relay's publish.


def publish_span(event: Any) -> Span | None:
    """Started when the relay sends `event`; `end_publish` ends it at the ack."""
    if _tracer is None:
        return None
    return _start(
        f"publish {event.event_type}",
        trace_id=trace_id_of(event.correlation_id),
        parent=publish_parent_id(event),
        span=publish_span_id(event.event_id),
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "nats",
            "messaging.operation.type": "publish",
            "messaging.message.id": str(event.event_id),
            "khidma.case_id": str(event.case_id),
        },
    )


def publish_headers(event: Any) -> Mapping[str, str]:
    """The `traceparent` the relay adds to a message (none while tracing is off)."""
    if _tracer is None:
        return _NO_HEADERS
    return {
        TRACEPARENT: traceparent(trace_id_of(event.correlation_id), publish_span_id(event.event_id))
    }


def end_publish(span: Span | None, error: BaseException | None = None) -> None:
    if span is None:
        return
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
    span.end()


# The consume.


def consume_span(
    service: str, event: Any, headers: Mapping[str, str] | None, delivery: int = 1
) -> contextlib.AbstractContextManager[None]:
    """Around handling one consumed event; the current span meanwhile (the store
    commit on the store thread hangs from it)."""
    return _OFF if _tracer is None else _consume_span(service, event, headers, delivery)


@contextlib.contextmanager
def _consume_span(
    service: str, event: Any, headers: Mapping[str, str] | None, delivery: int
) -> Iterator[None]:
    carried = parse_traceparent((headers or {}).get(TRACEPARENT))
    if carried is not None:
        trace_id, parent = carried
    else:  # published without tracing: the ids are derived alike
        trace_id, parent = trace_id_of(event.correlation_id), publish_span_id(event.event_id)
    span = _start(
        f"consume {event.event_type}",
        trace_id=trace_id,
        parent=parent,
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "nats",
            "messaging.operation.type": "process",
            "messaging.message.id": str(event.event_id),
            "messaging.consumer.group.name": service,
            "khidma.delivery": delivery,
        },
    )
    with trace.use_span(span, end_on_exit=True, record_exception=True):
        yield


def span_summary(spans: Sequence[ReadableSpan]) -> dict[str, list[float]]:
    """Each span name's durations in milliseconds (the capacity benchmark prints them)."""
    durations: dict[str, list[float]] = {}
    for span in spans:
        if span.start_time is not None and span.end_time is not None:
            durations.setdefault(span.name, []).append((span.end_time - span.start_time) / 1e6)
    return durations
