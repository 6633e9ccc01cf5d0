"""The ids every process derives alike, and tracing switched off (shared/tracing.py)."""

from __future__ import annotations

from types import SimpleNamespace
from uuid import uuid4

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared import tracing


@pytest.fixture(autouse=True)
def no_tracing():
    tracing.shutdown_tracing()
    yield
    tracing.shutdown_tracing()


def event(causation=None, correlation=None):
    event_id = uuid4()
    return SimpleNamespace(
        event_id=event_id,
        event_type="DataVerified",
        case_id=uuid4(),
        correlation_id=correlation or event_id,
        causation_id=causation,
    )


def test_the_trace_id_is_the_correlation_ids_128_bits():
    correlation = uuid4()
    assert tracing.trace_id_of(correlation) == correlation.int
    assert tracing.trace_id_of(str(correlation)) == correlation.int


def test_a_publish_hangs_from_its_causes_publish_or_from_the_cases_root():
    first = event()
    caused = event(causation=first.event_id, correlation=first.correlation_id)
    assert tracing.publish_parent_id(first) == tracing.root_span_id(first.correlation_id)
    assert tracing.publish_parent_id(caused) == tracing.publish_span_id(first.event_id)
    # Distinct kinds never share an id, even for the same UUID.
    assert tracing.root_span_id(first.event_id) != tracing.publish_span_id(first.event_id)


def test_a_traceparent_reads_back_and_a_malformed_one_is_ignored():
    header = tracing.traceparent(0xABC, 0xDEF)
    assert header == f"00-{0xABC:032x}-{0xDEF:016x}-01"
    assert tracing.parse_traceparent(header) == (0xABC, 0xDEF)
    for bad in (None, "", "00-xyz-1-01", f"00-{0:032x}-{1:016x}-01", "garbage"):
        assert tracing.parse_traceparent(bad) is None


def test_without_an_endpoint_nothing_is_configured_and_nothing_is_added(monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    assert tracing.configure_tracing("intake") is None
    assert not tracing.enabled()
    published = event()
    assert tracing.publish_headers(published) == {}
    assert tracing.publish_span(published) is None
    with tracing.request_span("POST", None) as request:
        assert request is None
        with tracing.commit_span([published]):
            pass
    with tracing.consume_span("verification", published, {}):
        pass


def test_the_endpoint_is_the_collectors_base_url_or_the_full_traces_url(monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")
    assert tracing.otlp_traces_endpoint() == "http://collector:4318/v1/traces"
    assert tracing.otlp_traces_endpoint("http://other:4318") == "http://other:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c/traces")
    assert tracing.otlp_traces_endpoint("http://other:4318") == "http://c/traces"


def test_khidmas_own_setting_names_the_endpoint_for_the_apps_without_service_settings(
    monkeypatch,
):
    # The web app, the channels and the audit API read it from the environment.
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert tracing.otlp_traces_endpoint() is None
    monkeypatch.setenv("KHIDMA_OTLP_ENDPOINT", "http://collector:4318")
    assert tracing.otlp_traces_endpoint() == "http://collector:4318/v1/traces"


def test_spans_carry_the_services_name():
    exporter = InMemorySpanExporter()
    tracing.configure_tracing("verification", exporter=exporter)
    with tracing.consume_span("verification", event(), {}):
        pass
    (span,) = exporter.get_finished_spans()
    assert span.resource.attributes["service.name"] == "verification"


def test_a_later_request_about_a_case_hangs_from_the_cases_root():
    exporter = InMemorySpanExporter()
    tracing.configure_tracing("verification", exporter=exporter)
    confirmed = event(causation=uuid4(), correlation=uuid4())
    with tracing.request_span("POST", None) as request:
        assert request is not None
        with tracing.commit_span([confirmed]):
            pass
    commit, http = exporter.get_finished_spans()
    assert http.context.trace_id == confirmed.correlation_id.int
    assert http.parent is not None
    assert http.parent.span_id == tracing.root_span_id(confirmed.correlation_id)
    assert commit.parent is not None and commit.parent.span_id == http.context.span_id


def test_a_request_that_records_nothing_is_a_trace_of_its_own_named_by_its_correlation():
    exporter = InMemorySpanExporter()
    tracing.configure_tracing("intake", exporter=exporter)
    correlation = uuid4()
    with tracing.request_span("GET", str(correlation)):
        pass
    (http,) = exporter.get_finished_spans()
    assert http.context.trace_id == correlation.int and http.parent is None


async def test_a_request_span_is_named_by_its_route_and_masks_a_national_id_in_its_path():
    import httpx
    from fastapi import FastAPI

    from shared.http import RequestLogMiddleware

    exporter = InMemorySpanExporter()
    tracing.configure_tracing("verification", exporter=exporter)
    api = FastAPI()
    api.add_middleware(RequestLogMiddleware)

    @api.get("/members/{national_id}")
    async def member(national_id: str) -> dict[str, str]:
        return {}

    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://verification") as client:
        assert (await client.get("/members/1000000008")).status_code == 200
    (span,) = exporter.get_finished_spans()
    assert span.name == "GET /members/{national_id}"
    assert span.attributes is not None and span.attributes["url.path"] == "/members/***"
    assert "1000000008" not in str(dict(span.attributes))
