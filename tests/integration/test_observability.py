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
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import nats
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
