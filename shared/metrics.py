"""Prometheus metrics of a service, served on `/metrics`.

Counters and the handler-latency histogram are updated by the consumer and the
outbox relay as they work. The two gauges that need a round trip (the outbox
relay's lag, each consumer's pending count) are measured when Prometheus
scrapes, by the runtime, so a scrape always sees the current value.

Every metric has a `service` label: one process runs one service, but tests
run several in one process and the labels keep them apart.
"""

from __future__ import annotations

from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

REGISTRY: CollectorRegistry = DEFAULT_REGISTRY

MESSAGES_CONSUMED = Counter(
    "khidma_messages_consumed",
    "Messages the tracking consumer took from the stream, by event type and outcome "
    "(handled, duplicate, retried, dead_letter, invalid).",
    ["service", "event_type", "outcome"],
)
MESSAGES_PUBLISHED = Counter(
    "khidma_messages_published",
    "Integration events the outbox relay published and the server acknowledged, by event type.",
    ["service", "event_type"],
)
PUBLISH_DUPLICATES = Counter(
    "khidma_publish_duplicates",
    "Re-published events the server dropped as duplicates (Nats-Msg-Id), by event type.",
    ["service", "event_type"],
)
HANDLER_SECONDS = Histogram(
    "khidma_handler_seconds",
    "Time to handle one consumed message: the handler and its tracking transaction.",
    ["service", "event_type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
GROUP_COMMIT_SIZE = Histogram(
    "khidma_group_commit_size",
    "How many commands one group commit recorded in one transaction: intake's submissions "
    "(shared/group_commit.py), a consumer's run of messages (shared/consumer.py).",
    ["service", "what"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
DEAD_LETTERS = Counter(
    "khidma_dead_letters",
    "Messages moved to the dead-letter subject khidma.deadletter.<service>.",
    ["service"],
)
DEAD_LETTERS_STORED = Gauge(
    "khidma_dead_letters_stored",
    "Dead letters of the service kept on the stream (khidma.deadletter.<service>), counted "
    "on the stream at scrape: unlike khidma_dead_letters, a restart does not reset it.",
    ["service"],
)
CASES_HELD = Gauge(
    "khidma_cases_held",
    "Cases a dead letter holds until an operator replays it (intake's read model, "
    "measured at scrape).",
    ["service"],
)
OUTBOX_SET_ASIDE = Counter(
    "khidma_outbox_set_aside",
    "Events the outbox relay could never publish and set aside on the dead-letter subject, "
    "by event type (or domain event topic) and reason (too_large, untranslatable).",
    ["service", "event_type", "reason"],
)
OUTBOX_STALLED_SECONDS = Gauge(
    "khidma_outbox_stalled_seconds",
    "Seconds the outbox relay has had a backlog without making progress; 0 when it "
    "keeps up (measured at scrape).",
    ["service"],
)
OUTBOX_LAG = Gauge(
    "khidma_outbox_lag",
    "Public events recorded in the store but not yet published (measured at scrape).",
    ["service"],
)
OUTBOX_POSITION = Gauge(
    "khidma_outbox_position",
    "Notification id up to which the outbox relay has published.",
    ["service"],
)
CONSUMER_PENDING = Gauge(
    "khidma_consumer_pending",
    "Messages of the durable consumer not yet acknowledged: waiting plus in flight "
    "(measured at scrape; -1 when the server could not be asked).",
    ["service", "durable"],
)
VIEWS_LAG = Gauge(
    "khidma_views_lag",
    "Events in the store not yet projected into the read models (measured at scrape).",
    ["service"],
)
READY = Gauge("khidma_ready", "1 when /ready answers 200.", ["service"])


def render() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
