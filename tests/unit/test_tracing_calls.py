"""A call from one of our apps to another is a hop of the same trace (shared/tracing.py,
shared/http.py): the called request hangs from the caller's (`traceparent`), and the
caller's span goes into the case's trace the call joined (`traceresponse`).

The apps are real FastAPI apps behind the real middlewares, called in one process
through httpx's ASGI transport; the spans go to the SDK's in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI, Request
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared import tracing
from shared.http import RequestLogMiddleware, TracedRequests, traced_client


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure_tracing("web", exporter=exporter)
    yield exporter
    tracing.shutdown_tracing()


def opened_case() -> Any:
    """What intake writes when a request opens a case: its id becomes the correlation."""
    return SimpleNamespace(event_id=uuid4(), event_type="RequestCompleted")


def about_case(correlation: UUID) -> Any:
    return SimpleNamespace(event_id=uuid4(), event_type="DataConfirmed", correlation_id=correlation)


def backend(writes: list[Any], received: list[httpx.Headers]) -> FastAPI:
    """A service behind its request log: it commits what `writes` holds, if anything."""
    api = FastAPI()
    api.add_middleware(RequestLogMiddleware)

    @api.api_route("/work", methods=["GET", "POST"])
    async def work(request: Request) -> dict[str, str]:
        received.append(httpx.Headers(request.headers))
        if writes:
            with tracing.commit_span(writes):
                pass
        return {}

    return api


def caller(name: str, route: str, target: str, transport: httpx.AsyncBaseTransport) -> FastAPI:
    """One of our apps (the web, the channels): a request of its own that calls `target`."""
    client = traced_client([target.rsplit("/", 1)[0]], transport=transport)
    app = FastAPI(title=name)
    app.add_middleware(TracedRequests)

    @app.api_route(route, methods=["GET", "POST"])
    async def page(request: Request) -> dict[str, str]:
        answer = await client.request(request.method, target)
        answer.raise_for_status()
        return {}

    return app


async def send(app: FastAPI, method: str, url: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
        return await client.request(method, url)


def named(spans: InMemorySpanExporter, name: str) -> ReadableSpan:
    (span,) = [s for s in spans.get_finished_spans() if s.name == name]
    return span


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent else None


async def test_a_call_that_joins_no_case_hangs_from_the_callers_span_in_the_callers_trace(
    spans: InMemorySpanExporter,
) -> None:
    received: list[httpx.Headers] = []
    service = httpx.ASGITransport(app=backend([], received))
    web = caller("web", "/page", "http://intake/work", service)
    assert (await send(web, "GET", "http://web/page")).status_code == 200
    page, called = named(spans, "GET /page"), named(spans, "GET /work")
    assert called.context.trace_id == page.context.trace_id
    assert parent_of(called) == page.context.span_id and page.parent is None
    assert received[0]["traceparent"] == tracing.traceparent(
        page.context.trace_id, page.context.span_id
    )
    assert received[0]["tracestate"] == "khidma=follows"


async def test_a_call_that_opens_a_case_puts_the_callers_span_at_the_top_of_the_cases_trace(
    spans: InMemorySpanExporter,
) -> None:
    first = opened_case()
    service = httpx.ASGITransport(app=backend([first], []))
    web = caller("web", "/apply", "http://intake/work", service)
    assert (await send(web, "POST", "http://web/apply")).status_code == 200
    apply, submit = named(spans, "POST /apply"), named(spans, "POST /work")
    commit = named(spans, "store commit")
    case_trace = first.event_id.int
    assert {apply.context.trace_id, submit.context.trace_id, commit.context.trace_id} == {
        case_trace
    }
    assert apply.parent is None
    # The request that recorded the case's first event keeps the root's derived id, so
    # the relay's publish of RequestReceived still hangs from it.
    assert submit.context.span_id == tracing.root_span_id(first.event_id)
    assert parent_of(submit) == apply.context.span_id
    assert parent_of(commit) == submit.context.span_id


async def test_a_call_about_a_known_case_puts_the_callers_span_under_the_cases_root(
    spans: InMemorySpanExporter,
) -> None:
    correlation = uuid4()
    service = httpx.ASGITransport(app=backend([about_case(correlation)], []))
    web = caller("web", "/confirm", "http://verification/work", service)
    assert (await send(web, "POST", "http://web/confirm")).status_code == 200
    confirm, called = named(spans, "POST /confirm"), named(spans, "POST /work")
    assert confirm.context.trace_id == called.context.trace_id == correlation.int
    assert parent_of(confirm) == tracing.root_span_id(correlation)
    assert parent_of(called) == confirm.context.span_id


async def test_through_two_of_our_apps_the_first_is_the_top_and_each_hangs_from_its_caller(
    spans: InMemorySpanExporter,
) -> None:
    first = opened_case()
    intake = httpx.ASGITransport(app=backend([first], []))
    channels = caller("channels", "/batch", "http://intake/work", intake)
    web = caller("web", "/upload", "http://channels/batch", httpx.ASGITransport(app=channels))
    assert (await send(web, "POST", "http://web/upload")).status_code == 200
    upload, batch = named(spans, "POST /upload"), named(spans, "POST /batch")
    submit = named(spans, "POST /work")
    assert {upload.context.trace_id, batch.context.trace_id, submit.context.trace_id} == {
        first.event_id.int
    }
    assert upload.parent is None
    assert parent_of(batch) == upload.context.span_id
    assert parent_of(submit) == batch.context.span_id


async def test_calls_outside_our_services_and_answers_to_people_carry_no_trace(
    spans: InMemorySpanExporter,
) -> None:
    received: list[httpx.Headers] = []
    graph = httpx.ASGITransport(app=backend([], received))
    # The client knows intake as ours; the call goes to Meta's Graph API.
    client = traced_client(["http://intake"], transport=graph)
    app = FastAPI()
    app.add_middleware(TracedRequests)

    @app.get("/webhook")
    async def webhook() -> dict[str, str]:
        (await client.get("http://graph.facebook.com/work")).raise_for_status()
        return {}

    answer = await send(app, "GET", "http://channels/webhook")
    assert answer.status_code == 200 and "traceparent" not in received[0]
    # A browser's request came with no traceparent: it is told nothing of the trace.
    assert "traceresponse" not in answer.headers
    assert named(spans, "GET /webhook").parent is None


async def test_without_tracing_a_call_carries_nothing_and_no_span_is_made() -> None:
    tracing.shutdown_tracing()
    received: list[httpx.Headers] = []
    service = httpx.ASGITransport(app=backend([opened_case()], received))
    web = caller("web", "/apply", "http://intake/work", service)
    answer = await send(web, "POST", "http://web/apply")
    assert answer.status_code == 200
    assert "traceparent" not in received[0] and "traceresponse" not in answer.headers
    assert not tracing.enabled()


async def test_a_survey_links_token_is_masked_in_the_span_and_the_log_line(
    spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    token = "s3cr3t-survey-token-0123456789"
    service = FastAPI()
    service.add_middleware(RequestLogMiddleware)

    @service.get("/surveys/{token}")
    async def survey(token: str) -> dict[str, str]:
        return {}

    web = FastAPI()
    web.add_middleware(TracedRequests)
    client = traced_client(["http://surveys"], transport=httpx.ASGITransport(app=service))

    @web.get("/surveys/{token}")
    async def page(token: str) -> dict[str, str]:
        (await client.get(f"http://surveys/surveys/{token}")).raise_for_status()
        return {}

    with caplog.at_level("INFO", logger="shared.http"):
        assert (await send(web, "GET", f"http://web/surveys/{token}")).status_code == 200
    finished = spans.get_finished_spans()
    assert [s.attributes["url.path"] for s in finished if s.attributes] == ["/surveys/***"] * 2
    assert token not in caplog.text and "/surveys/***" in caplog.text
    assert all(token not in str(dict(s.attributes or {})) + s.name for s in finished)


async def test_a_traceparent_from_outside_our_apps_is_not_followed_and_told_nothing(
    spans: InMemorySpanExporter,
) -> None:
    """A partner system's instrumented client sends its own `traceparent`: the case it
    opens still has its root at the top, and the partner learns nothing of the trace."""
    first = opened_case()
    intake = backend([first], [])
    outsiders = tracing.traceparent(0xABCDEF << 64, 0x1234)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=intake)) as partner:
        answer = await partner.post("http://intake/work", headers={"traceparent": outsiders})
    assert answer.status_code == 200 and "traceresponse" not in answer.headers
    submit = named(spans, "POST /work")
    assert submit.parent is None and submit.context.trace_id == first.event_id.int
    assert submit.context.span_id == tracing.root_span_id(first.event_id)
    # Nor is a traceparent with another vendor's tracestate, or a version-ff one.
    assert tracing.carried_from(outsiders, "congo=t61rcWkgMzE") is None
    assert tracing.carried_from(outsiders.replace("00-", "ff-", 1), "khidma=follows") is None
    assert tracing.carried_from(outsiders, "congo=x, khidma=joined") is not None


async def test_a_caller_already_in_one_case_that_touches_another_leaves_it_under_its_own_root(
    spans: InMemorySpanExporter,
) -> None:
    first, second = uuid4(), uuid4()
    verification = httpx.ASGITransport(app=backend([about_case(second)], []))
    client = traced_client(["http://verification"], transport=verification)
    app = FastAPI()
    app.add_middleware(TracedRequests)

    @app.post("/two")
    async def two() -> dict[str, str]:
        with tracing.commit_span([about_case(first)]):  # this request joins the first case
            pass
        (await client.post("http://verification/work")).raise_for_status()
        return {}

    assert (await send(app, "POST", "http://web/two")).status_code == 200
    page, called = named(spans, "POST /two"), named(spans, "POST /work")
    assert page.context.trace_id == first.int  # the first case it joined stays its trace
    assert called.context.trace_id == second.int
    assert parent_of(called) == tracing.root_span_id(second)  # not a span of another trace


async def test_a_call_to_an_endpoint_named_whole_carries_the_trace(
    spans: InMemorySpanExporter,
) -> None:
    received: dict[str, httpx.Headers] = {}
    identity = FastAPI()

    @identity.api_route("/{path:path}", methods=["POST"])
    async def anything(path: str, request: Request) -> dict[str, str]:
        received[path] = httpx.Headers(request.headers)
        return {}

    # The channels name the token endpoint itself, not a base URL under which it lies.
    client = traced_client(
        ["http://identity/oauth/token"], transport=httpx.ASGITransport(app=identity)
    )
    app = FastAPI()
    app.add_middleware(TracedRequests)

    @app.get("/token")
    async def token() -> dict[str, str]:
        (await client.post("http://identity/oauth/token")).raise_for_status()
        (await client.post("http://identity/oauth/tokenizer")).raise_for_status()  # not it
        return {}

    assert (await send(app, "GET", "http://channels/token")).status_code == 200
    assert "traceparent" in received["oauth/token"]
    assert "traceparent" not in received["oauth/tokenizer"]
