"""OpenTelemetry traces: one request's hops in one trace (shared/tracing.py, decision 35).

In one process with the SDK's in-memory exporter: HTTP → store commit → relay publish
→ consume → the consumer's commit. Then across processes: intake and verification
as services, sending their spans over OTLP/HTTP to a collector of the test's own
(the real protocol, decoded with opentelemetry-proto), the trace carried from one to
the other by the message's `traceparent`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import httpx
import nats
import pytest
from fastapi import FastAPI, Request
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from khidma.otlp_collector import Collector, ReceivedSpan
from khidma.processes import ServiceProcess
from services.intake.application import IntakeApplication
from services.intake.integration import TRANSLATORS
from shared import tracing
from shared.consumer import TrackingConsumer
from shared.http import RequestLogMiddleware
from shared.outbox import OutboxRelay
from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs
from shared.settings import ServiceSettings
from shared.store import StoreRunner, open_application
from shared.stream import ensure_stream
from shared.subjects import submission_subject
from tests.helpers import async_wait_for, stream_messages, wait_for
from tests.integration.test_exactly_once import make_app, record_effect
from tests.integration.test_intake_service import ADAPTER, SUBMISSION
from tests.integration.test_outbox_relay import submission

pytestmark = pytest.mark.integration

PACKS = load_packs(DEFAULT_POLICIES_DIR)


async def _value(value: Any) -> Any:
    return value


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure_tracing("intake", exporter=exporter)
    try:
        yield exporter
    finally:
        tracing.shutdown_tracing()


def intake_http(app: IntakeApplication, store: StoreRunner) -> FastAPI:
    """Intake's submission route alone, behind the edge's request middleware."""
    api = FastAPI()
    api.add_middleware(RequestLogMiddleware)

    @api.post("/submissions")
    async def submit(request: Request) -> dict[str, str]:
        result = await store.run(app.submit, submission(1), {"kind": "adapter", "id": "test"})
        return {"case_id": str(result.case_id)}

    return api


def one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    (span,) = [s for s in spans if s.name == name]
    return span


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent else None


async def test_one_submission_is_one_trace_from_the_http_request_to_the_consumers_commit(
    spans, tmp_path, nats_server
):
    settings = ServiceSettings(service_name="intake", nats_url="nats://x", data_dir=tmp_path / "i")
    app = open_application(IntakeApplication, settings.eventsourcing_env(), packs=PACKS)
    store, effects_store = StoreRunner(), StoreRunner()
    effects = make_app(tmp_path)
    # Opening the store recorded the policy versions intake adopted: commits of no request.
    spans.clear()
    connection = await nats.connect(nats_server.url)
    js = connection.jetstream()
    await ensure_stream(js)
    relay = OutboxRelay(app, store, js, TRANSLATORS)
    consumer = TrackingConsumer(
        effects,
        effects_store,
        js,
        service="effects",
        handlers={"RequestReceived": record_effect(effects)},
    )
    tasks = [asyncio.create_task(relay.run()), asyncio.create_task(consumer.run())]
    try:
        transport = httpx.ASGITransport(app=intake_http(app, store))
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            assert (await client.post("/submissions")).status_code == 200
        await async_wait_for(lambda: _value(len(effects.effects()) == 1), timeout=15)
        await async_wait_for(lambda: _value(len(spans.get_finished_spans()) >= 5), timeout=5)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        (message,) = await stream_messages(nats_server.url, "khidma.*.*.RequestReceived")
        await connection.close()
        app.close()
        effects.close()

    finished = list(spans.get_finished_spans())
    correlation = UUID(message["event"]["correlation_id"])
    assert {s.context.trace_id for s in finished} == {correlation.int}
    http = one(finished, "POST /submissions")
    publish = one(finished, "publish RequestReceived")
    consume = one(finished, "consume RequestReceived")
    intake_commit, effects_commit = sorted(
        (s for s in finished if s.name == "store commit"), key=lambda s: s.start_time or 0
    )
    assert http.kind is SpanKind.SERVER and http.parent is None
    assert http.attributes and http.attributes["http.response.status_code"] == 200
    # The request that recorded the case's first event is the trace's root.
    assert http.context.span_id == tracing.root_span_id(correlation)
    assert parent_of(intake_commit) == http.context.span_id
    assert parent_of(publish) == http.context.span_id  # RequestReceived has no cause
    assert publish.context.span_id == tracing.publish_span_id(message["event"]["event_id"])
    assert message["headers"]["traceparent"] == tracing.traceparent(
        correlation.int, publish.context.span_id
    )
    assert parent_of(consume) == publish.context.span_id
    assert parent_of(effects_commit) == consume.context.span_id


# Across processes, over OTLP/HTTP.


@pytest.fixture
def collector() -> Iterator[Collector]:
    with Collector() as running:
        yield running


def test_the_trace_crosses_from_intake_to_verification_and_reaches_the_collector(
    collector, nats_server, tmp_path
):
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    services = [
        ServiceProcess(name, nats_server.url, tmp_path / name, env=env).launch()
        for name in ("intake", "verification")
    ]
    try:
        for service in services:
            service.wait_ready()
        intake = services[0]
        case = httpx.post(f"{intake.url}/submissions", json=SUBMISSION, headers=ADAPTER)
        assert case.status_code in (200, 201), case.text

        def the_hops() -> dict[str, ReceivedSpan] | None:
            received = collector.spans()
            by_name = {(s.service, s.name): s for s in received}
            wanted = [
                ("intake", "POST /submissions"),
                ("intake", "publish RequestReceived"),
                ("verification", "consume RequestReceived"),
                ("intake", "store commit"),
                ("verification", "store commit"),
            ]
            if not all(key in by_name for key in wanted):
                return None
            return {f"{service} {name}": by_name[(service, name)] for service, name in wanted}

        hops = wait_for(the_hops, timeout=30, what="the spans of both services")
        (message,) = asyncio.run(stream_messages(nats_server.url, "khidma.*.*.RequestReceived"))
    finally:
        for service in services:
            service.stop()
    http, publish, consume = (
        hops["intake POST /submissions"],
        hops["intake publish RequestReceived"],
        hops["verification consume RequestReceived"],
    )
    assert http.trace_id == publish.trace_id == consume.trace_id
    assert publish.parent == http.span_id
    assert consume.parent == publish.span_id  # carried in the message's traceparent
    assert message["headers"]["traceparent"] == tracing.traceparent(
        publish.trace_id, publish.span_id
    )
    assert publish.trace_id == UUID(message["event"]["correlation_id"]).int
    commits = [s for s in collector.spans() if s.name == "store commit"]
    intake_commit = next(s for s in commits if s.service == "intake" and s.parent == http.span_id)
    assert intake_commit.trace_id == http.trace_id
    assert any(s.service == "verification" and s.parent == consume.span_id for s in commits), (
        "verification's commit hangs from its consume"
    )
