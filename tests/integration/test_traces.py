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
import re
import smtplib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
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


# Our own apps' hops: the channels, the web app, the audit API, as `make run` starts them.


LETTERS_TO = "letters@sidr.example.org"
LETTER = (
    Path(__file__).resolve().parent.parent / "fixtures" / "letters" / "seedlings_arabic_pdf.eml"
)


@dataclass
class TracedSystem:
    system: Any  # khidma.run.EmbeddedSystem, imported with the fixture
    collector: Collector
    letters_port: int


@pytest.fixture(scope="module")
def traced_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TracedSystem]:
    from khidma.nats_server import free_port
    from khidma.run import EmbeddedSystem
    from tests.fakes.smtp_relay import FakeSmtpRelay

    with Collector() as collector, FakeSmtpRelay() as relay:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "KHIDMA_LETTERS_SMTP_PORT": str(free_port()),
            "KHIDMA_LETTERS_ADDRESSES": json.dumps({LETTERS_TO: "sidr"}),
            "KHIDMA_LETTERS_RELAY_HOST": relay.host,
            "KHIDMA_LETTERS_RELAY_PORT": str(relay.port),
        }
        data_dir = tmp_path_factory.mktemp("traced")
        with EmbeddedSystem(data_dir, fixed_ports=False, service_env=env) as system:
            yield TracedSystem(system, collector, int(env["KHIDMA_LETTERS_SMTP_PORT"]))


def spans_named(collector: Collector, service: str, name: str) -> list[ReceivedSpan]:
    return [s for s in collector.spans() if s.service == service and s.name == name]


def send_letter(port: int) -> None:
    def sent() -> bool:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
            smtp.sendmail("abdullah.q@example.sa", [LETTERS_TO], LETTER.read_bytes())
        return True

    wait_for(sent, timeout=30, what="the letters' SMTP endpoint to take the letter")


def test_a_letter_is_one_trace_from_the_channels_taking_it_to_intakes_publish(
    traced_system: TracedSystem,
) -> None:
    system, collector = traced_system.system, traced_system.collector
    send_letter(traced_system.letters_port)

    def the_hops() -> tuple[ReceivedSpan, ReceivedSpan, ReceivedSpan] | None:
        taken = spans_named(collector, "channels", "take letter")
        submit = spans_named(collector, "intake", "POST /submissions")
        publish = spans_named(collector, "intake", "publish RequestReceived")
        return (taken[0], submit[0], publish[0]) if taken and submit and publish else None

    taken, submit, publish = wait_for(the_hops, timeout=60, what="the channels' and intake's spans")
    (message,) = asyncio.run(stream_messages(system.admin_nats_url, "khidma.*.*.RequestReceived"))
    case = UUID(message["event"]["correlation_id"])
    assert taken.trace_id == submit.trace_id == publish.trace_id == case.int
    assert taken.parent is None  # the top of the case's trace
    assert submit.parent == taken.span_id
    # The request that opened the case keeps the root's derived id: the relay's publish
    # of RequestReceived, in another task, hangs from it without being told.
    assert submit.span_id == tracing.root_span_id(case)
    assert publish.parent == submit.span_id


def test_a_website_application_is_one_trace_from_the_web_apps_post_to_the_consumers(
    traced_system: TracedSystem,
) -> None:
    collector = traced_system.collector
    web = httpx.Client(base_url=traced_system.system.services["web"].url, timeout=20)
    form_page = web.get("/a/sidr/seedlings/apply")
    assert form_page.status_code == 200
    hidden = dict(
        re.findall(
            r'<input[^>]*name="(csrf_token|channel_ref)"[^>]*value="([^"]*)"', form_page.text
        )
    )
    answer = web.post(
        "/a/sidr/seedlings/apply",
        data={
            **hidden,
            "applicant.national_id": "1000000024",
            "applicant.name": "سارة العتيبي",
            "applicant.phone": "0500000001",
            "field.planting_site": "وادي حنيفة",
            "field.seedling_count": "20",
            "doc.national_id_card.number": "1000000024",
            "doc.national_id_card.expires_on": "2030-01-01",
            "attested": "yes",
        },
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/applied", answer.text

    def the_hops() -> tuple[ReceivedSpan, ReceivedSpan, ReceivedSpan, ReceivedSpan] | None:
        (apply, *_) = spans_named(
            collector, "web", "POST /a/{association_id}/{service_code}/apply"
        ) or [None]
        if apply is None:
            return None
        submits = [
            s
            for s in spans_named(collector, "intake", "POST /submissions")
            if s.parent == apply.span_id
        ]
        publishes = [
            s
            for s in collector.spans()
            if submits and s.parent == submits[0].span_id and s.name == "publish RequestReceived"
        ]
        consumes = [
            s
            for s in spans_named(collector, "verification", "consume RequestReceived")
            if publishes and s.parent == publishes[0].span_id
        ]
        return (apply, submits[0], publishes[0], consumes[0]) if consumes else None

    apply, submit, publish, consume = wait_for(the_hops, timeout=60, what="the application's hops")
    assert apply.trace_id == submit.trace_id == publish.trace_id == consume.trace_id
    assert apply.parent is None  # the web's request is the top of the case's trace
    assert submit.span_id == tracing.root_span_id(UUID(int=apply.trace_id))


def test_a_web_page_and_the_service_it_asks_are_one_trace(
    traced_system: TracedSystem,
) -> None:
    system, collector = traced_system.system, traced_system.collector
    page = httpx.get(f"{system.services['web'].url}/surveys/no-such-survey", timeout=10)
    assert page.status_code in (200, 404, 410), page.text
    assert "traceresponse" not in page.headers  # a browser is told nothing of it

    def the_hops() -> tuple[ReceivedSpan, ReceivedSpan] | None:
        web = spans_named(collector, "web", "GET /surveys/{token}")
        asked = spans_named(collector, "surveys", "GET /surveys/{token}")
        return (web[0], asked[0]) if web and asked else None

    web, asked = wait_for(the_hops, timeout=30, what="the web's and the surveys' spans")
    assert asked.trace_id == web.trace_id and asked.parent == web.span_id
    assert web.parent is None


def test_the_audit_api_hangs_its_request_from_the_caller_and_answers_its_trace(
    traced_system: TracedSystem,
) -> None:
    system, collector = traced_system.system, traced_system.collector
    caller_trace, caller_span = 0x1234ABCD << 64 | 7, 0xBEEF
    answer = httpx.get(
        f"{system.services['audit'].url}/crosscheck",
        headers={
            "traceparent": tracing.traceparent(caller_trace, caller_span),
            "tracestate": "khidma=follows",  # as the web app's calls say it
        },
        timeout=10,
    )
    assert answer.status_code == 401  # no token: refused, and still a hop of the trace
    assert tracing.parse_traceparent(answer.headers["traceresponse"]) is not None

    def the_span() -> ReceivedSpan | None:
        found = [
            s for s in collector.spans() if s.service == "audit" and s.trace_id == caller_trace
        ]
        return found[0] if found else None

    span = wait_for(the_span, timeout=30, what="the audit API's span")
    assert span.parent == caller_span and span.name == "GET /crosscheck"
    assert tracing.parse_traceparent(answer.headers["traceresponse"]) == (
        caller_trace,
        span.span_id,
    )
