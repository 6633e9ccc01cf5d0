"""What tracing costs per event: switched off (no endpoint), and on (spans in memory).

Per event the services call, at most: the HTTP request's span, a store commit's,
the relay's publish span and its `traceparent`, the consume's. This times those
calls N times with tracing off (the path every deployment without an endpoint
takes), beside the same loop without them, and with tracing on.

    python -m khidma.bench_tracing --events 200000
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable
from types import SimpleNamespace
from uuid import uuid4

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared import tracing


def _event() -> SimpleNamespace:
    event_id = uuid4()
    return SimpleNamespace(
        event_id=event_id,
        event_type="RequestReceived",
        case_id=uuid4(),
        correlation_id=event_id,
        causation_id=None,
    )


def every_hop(event: SimpleNamespace) -> None:
    """One event's tracing calls, as the edge, the store, the relay and a consumer make them."""
    with tracing.request_span("POST", None), tracing.commit_span([event]):
        pass
    span = tracing.publish_span(event)
    headers = {"Nats-Msg-Id": str(event.event_id), **tracing.publish_headers(event)}
    tracing.end_publish(span)
    with tracing.consume_span("verification", event, headers), tracing.commit_span([event]):
        pass


def no_hop(event: SimpleNamespace) -> None:
    """The same loop without tracing: the header dict and the context managers' shape."""
    with contextlib.nullcontext(), contextlib.nullcontext():
        pass
    headers = {"Nats-Msg-Id": str(event.event_id)}
    assert headers
    with contextlib.nullcontext(), contextlib.nullcontext():
        pass


def per_event_ns(hops: Callable[[SimpleNamespace], None], events: int, repeat: int) -> float:
    event = _event()
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter_ns()
        for _ in range(events):
            hops(event)
        best = min(best, (time.perf_counter_ns() - started) / events)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7, help="runs; the fastest is kept")
    args = parser.parse_args(argv)
    tracing.shutdown_tracing()
    # Taken turn about, so that a busy moment of the machine weighs on both alike.
    baseline = off = float("inf")
    for _ in range(args.repeat):
        baseline = min(baseline, per_event_ns(no_hop, args.events, 1))
        off = min(off, per_event_ns(every_hop, args.events, 1))
    exporter = InMemorySpanExporter()
    # As deployed: spans queued for a batch exporter (here one that keeps them in memory).
    tracing.configure_tracing("bench", exporter=exporter, batch=True)
    on_events = max(args.events // 20, 1)
    on = per_event_ns(every_hop, on_events, args.repeat)
    tracing.shutdown_tracing()
    print(f"per event, best of {args.repeat} runs of {args.events:,}:")
    print(f"  without tracing calls    {baseline / 1000:8.2f} µs")
    print(f"  tracing off (no endpoint){off / 1000:8.2f} µs   (+{(off - baseline) / 1000:.2f} µs)")
    print(f"  tracing on, batched      {on / 1000:8.2f} µs   ({on_events:,} events)")


if __name__ == "__main__":
    main()
