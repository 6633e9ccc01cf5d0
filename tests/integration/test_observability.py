"""Logs with their case and correlation ids, metrics, readiness, API documents.

The whole-system view (one request followed through the four services' logs,
every service's /metrics, /health and /ready under the compose configuration)
is in test_compose.py; these are the pieces, each on its own.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import nats
import psycopg
import pytest
from prometheus_client import REGISTRY

from khidma.apidocs import generate
from khidma.nats_server import NatsServer
from khidma.processes import ServiceProcess
from shared.consumer import TrackingConsumer
from shared.events import EVENT_TYPES
from shared.logging import JsonFormatter, log_context
from shared.store import StoreRunner
from shared.stream import ensure_stream
from tests.helpers import async_wait_for, wait_for
from tests.integration.test_exactly_once import Effect, make_app, publish, request

pytestmark = pytest.mark.integration


async def test_log_lines_carry_the_case_and_correlation_ids_also_on_the_store_thread() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("test-service"))
    logger = logging.getLogger("khidma.test.observability")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    store = StoreRunner()
    try:
        with log_context(case_id="case-1", correlation_id="corr-1"):
            logger.info("on the loop")
            await store.run(logger.info, "on the store thread")
        logger.info("outside")
    finally:
        logger.removeHandler(handler)
        store.close()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(l["msg"], l["case_id"], l["correlation_id"]) for l in lines] == [
        ("on the loop", "case-1", "corr-1"),
        ("on the store thread", "case-1", "corr-1"),
        ("outside", None, None),
    ]
    assert all(l["service"] == "test-service" for l in lines)


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_the_consumer_counts_what_it_handles_and_dead_letters(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    service = f"obs-{uuid4().hex[:6]}"
    connection = await nats.connect(nats_server.url)
    js = connection.jetstream()
    await ensure_stream(js)
    app, store = make_app(tmp_path), StoreRunner()
    good = request()
    await publish(js, good)
    await js.publish(f"khidma.sidr.{uuid4()}.RequestReceived", b"not json")

    def handle(event: Any, processing: Any) -> None:
        processing.collect_events(Effect(event.event_id))

    consumer = TrackingConsumer(app, store, js, service=service, handlers={"RequestReceived": handle})
    task = asyncio.create_task(consumer.run())
    try:
        await async_wait_for(
            lambda: _value(consumer.stats.handled == 1 and consumer.stats.dead_letters == 1),
            timeout=10,
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await connection.close()
    labels = {"service": service, "event_type": "RequestReceived"}
    assert _sample("khidma_messages_consumed_total", outcome="handled", **labels) == 1
    assert _sample("khidma_messages_consumed_total", outcome="invalid", **labels) == 1
    assert _sample("khidma_handler_seconds_count", **labels) == 1
    assert _sample("khidma_dead_letters_total", service=service) == 1


def test_ready_follows_the_nats_connection_while_health_stays_alive(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    service = ServiceProcess("verification", nats_server.url, tmp_path / "data").start()
    try:
        assert httpx.get(f"{service.url}/ready").status_code == 200
        nats_server.stop()
        report = wait_for(
            lambda: (r := httpx.get(f"{service.url}/ready")).status_code == 503 and r.json(),
            timeout=15,
            what="/ready to report NATS down",
        )
        assert report["nats"] is False and report["store"] is True
        assert httpx.get(f"{service.url}/health").status_code == 200
        nats_server.start()
        wait_for(
            lambda: httpx.get(f"{service.url}/ready").status_code == 200,
            timeout=30,
            what="/ready again after NATS came back",
        )
    finally:
        service.stop()


class TcpProxy:
    """A TCP proxy on its own thread and event loop that can cut the line.

    Cut, it stops carrying bytes both ways and holds new connections, as a
    network partition does (no refusal, no reset: the client just waits);
    restored, it carries on with what was waiting.
    """

    def __init__(self, upstream_host: str, upstream_port: int):
        self.upstream = (upstream_host, upstream_port)
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._open: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> TcpProxy:
        self._thread.start()
        assert self._started.wait(10), "the proxy did not start"
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._open = asyncio.Event()
        self._open.set()
        server = self.loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", 0)
        )
        self.port = server.sockets[0].getsockname()[1]
        self._started.set()
        self.loop.run_forever()
        server.close()

    async def _connection(self, client_reader: Any, client_writer: Any) -> None:
        assert self._open is not None
        await self._open.wait()
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
        await asyncio.gather(
            self._pump(client_reader, upstream_writer),
            self._pump(upstream_reader, client_writer),
            return_exceptions=True,
        )
        for writer in (client_writer, upstream_writer):
            writer.close()

    async def _pump(self, reader: Any, writer: Any) -> None:
        assert self._open is not None
        while True:
            await self._open.wait()
            data = await reader.read(65536)
            if not data:
                break
            await self._open.wait()
            writer.write(data)
            await writer.drain()
        writer.close()

    def cut(self) -> None:
        self.loop.call_soon_threadsafe(self._open.clear)  # type: ignore[union-attr]

    def restore(self) -> None:
        self.loop.call_soon_threadsafe(self._open.set)  # type: ignore[union-attr]

    def stop(self) -> None:
        self.restore()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@pytest.fixture
def postgres_behind_a_proxy(postgres_available: dict[str, str]) -> Iterator[tuple[TcpProxy, dict[str, str]]]:
    proxy = TcpProxy(postgres_available["host"], int(postgres_available["port"])).start()
    schema = f"probe_{uuid4().hex[:8]}"
    env = {
        "KHIDMA_STORE": "postgres",
        "KHIDMA_POSTGRES_HOST": "127.0.0.1",
        "KHIDMA_POSTGRES_PORT": str(proxy.port),
        "KHIDMA_POSTGRES_DBNAME": postgres_available["dbname"],
        "KHIDMA_POSTGRES_USER": postgres_available["user"],
        "KHIDMA_POSTGRES_SCHEMA": schema,
        # This test's own keyring, beside its store (dropped with it).
        "KHIDMA_KEYRING_SCHEMA": f"{schema}_keys",
    }
    try:
        yield proxy, env
    finally:
        proxy.stop()
        with psycopg.connect(autocommit=True, **postgres_available) as connection:  # type: ignore[arg-type]
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}_keys" CASCADE')


@pytest.mark.postgres
def test_ready_and_metrics_answer_store_down_when_postgresql_is_cut_off(
    nats_server: NatsServer, tmp_path: Path, postgres_behind_a_proxy: tuple[TcpProxy, dict[str, str]]
) -> None:
    proxy, env = postgres_behind_a_proxy
    service = ServiceProcess("verification", nats_server.url, tmp_path / "data", env=env).start()
    try:
        assert httpx.get(f"{service.url}/ready").json()["store"] is True
        proxy.cut()
        # Several probers at once (the orchestrator, Prometheus, an operator):
        # each gets its answer; none hangs behind the store.
        with ThreadPoolExecutor(max_workers=6) as pool:
            answers = list(
                pool.map(lambda _: httpx.get(f"{service.url}/ready", timeout=15), range(6))
            )
            scraped = httpx.get(f"{service.url}/metrics", timeout=15)
        for answer in answers:
            assert answer.status_code == 503
            report = answer.json()
            assert report["store"] is False and report["ready"] is False
            assert "did not answer" in report["store_error"]
        assert scraped.status_code == 200
        assert 'khidma_ready{service="verification"} 0.0' in scraped.text
        proxy.restore()
        wait_for(
            lambda: httpx.get(f"{service.url}/ready", timeout=15).status_code == 200,
            timeout=60,
            what="/ready again once PostgreSQL is reachable",
        )
    finally:
        service.stop()


async def test_store_probes_wait_on_the_one_in_flight_instead_of_piling_up() -> None:
    """A store that does not answer gets one probe at a time on its thread."""
    from shared.runtime import ServiceRuntime
    from shared.settings import ServiceSettings

    release = threading.Event()
    calls: list[int] = []

    class StuckApplication:
        def max_notification_id(self) -> int:
            calls.append(1)
            release.wait(30)
            return 7

        def close(self) -> None:
            pass

    runtime = ServiceRuntime(
        ServiceSettings(nats_url="nats://127.0.0.1:1"), StuckApplication()  # type: ignore[arg-type]
    )
    try:
        reports = await asyncio.gather(*(runtime.probe_store() for _ in range(5)))
        reports += [await runtime.probe_store() for _ in range(3)]
        assert all(r["store"] is False for r in reports)
        assert len(calls) == 1
        release.set()
        report = await async_wait_for(
            lambda: _store_answered(runtime), timeout=10, what="the store's answer"
        )
        assert report == {"store": True, "store_position": 7}
        await runtime.probe_store()  # the stuck probe has finished: a new call
        assert len(calls) == 2
    finally:
        release.set()
        runtime.store.close()


async def _store_answered(runtime: Any) -> Any:
    report = await runtime.probe_store()
    return report if report["store"] else None


def _http_app_logging_to(stream: io.StringIO) -> Any:
    """An API with the services' request logging and routes shaped like theirs."""
    from fastapi import Depends, FastAPI

    from shared.http import RequestLogMiddleware, _route_log_context

    api = FastAPI(dependencies=[Depends(_route_log_context)])
    api.add_middleware(RequestLogMiddleware)
    route_log = logging.getLogger("khidma.test.route")

    @api.post("/sittings/{sitting_id}/cases/{case_id}/votes")
    async def vote(sitting_id: str, case_id: str) -> dict[str, str]:
        route_log.info("vote recorded")
        return {}

    @api.get("/cases/{case_key}")
    async def case(case_key: str) -> dict[str, str]:
        route_log.info("case read")
        return {}

    @api.get("/sittings/{sitting_id}")
    async def sitting(sitting_id: str) -> dict[str, str]:
        return {}

    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("test-service"))
    for name in ("shared.http", "khidma.test.route"):
        logging.getLogger(name).addHandler(handler)
        logging.getLogger(name).setLevel(logging.INFO)
    return api, handler


async def test_request_logs_name_the_case_of_the_route_and_answer_the_correlation_id() -> None:
    stream = io.StringIO()
    api, handler = _http_app_logging_to(stream)
    sitting_id, case_id, correlation = str(uuid4()), str(uuid4()), str(uuid4())
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=api), base_url="http://test"
        ) as client:
            given = await client.post(
                f"/sittings/{sitting_id}/cases/{case_id}/votes",
                headers={"X-Correlation-Id": correlation},
            )
            absent = await client.post(f"/sittings/{sitting_id}/cases/{case_id}/votes")
            by_ref = await client.get("/cases/SDR-1448-000001")
            by_id = await client.get(f"/cases/{case_id}")
            no_case = await client.get(f"/sittings/{sitting_id}")
    finally:
        for name in ("shared.http", "khidma.test.route"):
            logging.getLogger(name).removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    # Echoed when given; otherwise one is made for the request, and answered.
    assert given.headers["x-correlation-id"] == correlation
    made = absent.headers["x-correlation-id"]
    assert made and made != correlation
    assert all(r.headers.get("x-correlation-id") for r in (by_ref, by_id, no_case))
    votes = [l for l in lines if "/votes" in l["msg"] or l["msg"] == "vote recorded"]
    assert len(votes) == 4
    # Every line about the vote names the case (never the sitting) and its correlation id.
    assert all(l["case_id"] == case_id for l in votes), votes
    assert [l["correlation_id"] for l in votes] == [correlation, correlation, made, made]
    reads = [l for l in lines if "/cases/" in l["msg"] and "/votes" not in l["msg"]]
    assert [(l["case_id"], l["case_ref"]) for l in reads] == [
        (None, "SDR-1448-000001"), (case_id, None)
    ]
    sitting_line = next(l for l in lines if l["msg"] == f"GET /sittings/{sitting_id} 200")
    assert sitting_line["case_id"] is None


def test_the_asyncapi_and_openapi_documents_are_generated() -> None:
    files = generate()
    system = json.loads(files["asyncapi.json"])
    addresses = {channel["address"] for channel in system["channels"].values()}
    assert {f"khidma.*.*.{t}" for t in EVENT_TYPES} <= addresses
    assert "khidma.submissions.*.*" in addresses
    assert {f"khidma.deadletter.{s}" for s in ("intake", "verification", "committee", "surveys")} <= addresses
    schemas = system["components"]["schemas"]
    assert {t for t in EVENT_TYPES} <= set(schemas)
    for service in ("intake", "verification", "committee", "surveys"):
        openapi = json.loads(files[f"openapi/{service}.json"])
        assert openapi["openapi"].startswith("3.")
        assert {"/health", "/ready", "/metrics", "/asyncapi.json"} <= set(openapi["paths"])
        assert json.loads(files[f"asyncapi/{service}.json"])["asyncapi"].startswith("3.")


async def _value(value: Any) -> Any:
    return value
