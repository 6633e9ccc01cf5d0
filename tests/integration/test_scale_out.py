"""Scaling out: two instances of one service share its store and its durable consumer.

Two verification processes run on the same store (a PostgreSQL schema, or the
same SQLite file) with the same durable consumer `verification`. Each consumed
message is handled by exactly one of them (the other skips it if it ever sees
it), both relays publish from the shared outbox, and each case still gets
exactly one effect: one opened verification and, once confirmed through
either instance, one `DataVerified` on the stream. The compose override for
scaling (deploy/compose.scale.yml) validates and frees the host ports.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import httpx
import jsonschema
import nats
import psycopg
import pytest

from shared.personal.master import MasterKeys

from khidma.compose import (
    COMPOSE_FILE,
    COMPOSE_SCHEMA,
    PROJECT_ROOT,
    load_compose,
    load_merged,
    variables_used,
)
from khidma.nats_server import NatsServer
from khidma.processes import ServiceProcess
from shared.events import (
    Actor,
    Applicant,
    Attestation,
    RequestReceived,
    encode_event,
)
from shared.stream import ensure_stream
from shared.subjects import event_subject
from tests import builders
from tests.auth import as_staff
from tests.helpers import compose_key_files, stream_messages_sync, wait_for

pytestmark = pytest.mark.integration

CASES = 30


def request() -> RequestReceived:
    event_id = uuid4()
    return builders.request_received(
        event_id=event_id,
        case_ref=f"SID-{event_id.hex[:6]}",
        actor=Actor(kind="adapter", id="test"),
        channel_ref=str(uuid4()),
        service_code="food-basket",
        applicant=Applicant(national_id="1000000008", name="Scale", phone="+966500000000"),
        fields={"family_size": 4},
        attestation=Attestation(attested=True, method="in_person"),
    )


async def publish_all(url: str, events: list[RequestReceived]) -> None:
    connection = await nats.connect(url)
    try:
        js = connection.jetstream()
        await ensure_stream(js)
        for event in events:
            await js.publish(
                event_subject(event.association_id, event.case_id, event.event_type),
                encode_event(event),
                headers={"Nats-Msg-Id": str(event.event_id)},
            )
    finally:
        await connection.close()


@pytest.fixture(params=["postgres", "sqlite"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    # The instances share the deployment's master key and keyring, as they share the store.
    keys = {
        "KHIDMA_MASTER_KEY_FILE": str(MasterKeys.ensure(tmp_path / "master-key.json").path),
        "KHIDMA_KEYRING_FILE": str(tmp_path / "subject-keys.sqlite"),
    }
    if request.param == "sqlite":
        yield {
            "KHIDMA_STORE": "sqlite",
            "KHIDMA_SQLITE_PATH": str(tmp_path / "shared.sqlite"),
            **keys,
        }
        return
    request.applymarker(pytest.mark.postgres)
    dsn = request.getfixturevalue("postgres_available")
    schema = f"scale_{uuid4().hex[:8]}"
    yield {
        **keys,
        "KHIDMA_STORE": "postgres",
        "KHIDMA_POSTGRES_HOST": dsn["host"],
        "KHIDMA_POSTGRES_PORT": dsn["port"],
        "KHIDMA_POSTGRES_DBNAME": dsn["dbname"],
        "KHIDMA_POSTGRES_USER": dsn["user"],
        "KHIDMA_POSTGRES_SCHEMA": schema,
        # This test's own keyring, beside its store (dropped with it).
        "KHIDMA_KEYRING_SCHEMA": f"{schema}_keys",
    }
    with psycopg.connect(autocommit=True, **dsn) as connection:  # type: ignore[arg-type]
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}_keys" CASCADE')


SCALE_OVERRIDE = PROJECT_ROOT / "deploy" / "compose.scale.yml"


def test_the_scale_override_validates_and_frees_the_host_ports_of_the_scaled_services() -> None:
    env = {name: "k" + secrets.token_urlsafe(12) for name in variables_used() if "PASSWORD" in name}
    env["SURVEYS_PUBLIC_BASE_URL"] = "https://surveys.example.org"
    env |= compose_key_files()
    env["WEBSITE_CLIENT_SECRET"] = "k" + secrets.token_urlsafe(12)
    base = load_compose(env)
    merged = load_merged(env, COMPOSE_FILE, SCALE_OVERRIDE)
    jsonschema.Draft201909Validator(json.loads(COMPOSE_SCHEMA.read_text())).validate(merged)
    scaled = {"intake", "verification", "committee"}
    for name, service in merged["services"].items():
        if name in scaled:
            # `--scale` would start a second container on the same host port.
            assert base["services"][name]["ports"], name
            assert not service.get("ports"), name
            assert "container_name" not in service, name
            assert {k: v for k, v in service.items() if k != "ports"} == {
                k: v for k, v in base["services"][name].items() if k != "ports"
            }
        else:  # the others, surveys with its one dispatcher included, are untouched
            assert service == base["services"][name], name


def metric(url: str, name: str, **labels: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_two_instances_share_the_durable_consumer_and_each_case_has_one_effect(
    nats_server: NatsServer, tmp_path: Path, shared_store: dict[str, str]
) -> None:
    env = {**shared_store, "KHIDMA_CONSUMER_BATCH": "1", "KHIDMA_POLL_INTERVAL_SECONDS": "0.05"}
    instances = [
        ServiceProcess("verification", nats_server.url, tmp_path / f"instance-{n}", env=env)
        for n in (1, 2)
    ]
    try:
        for instance in instances:
            instance.start()
        events = [request() for _ in range(CASES)]
        asyncio.run(publish_all(nats_server.url, events))

        def handled() -> list[float]:
            return [
                metric(i.url, "khidma_messages_consumed_total", outcome="handled",
                       event_type="RequestReceived")
                for i in instances
            ]

        wait_for(lambda: sum(handled()) >= CASES, timeout=30, what="every request handled")
        counts = handled()
        # Every message handled once in all: never by both instances.
        assert sum(counts) == CASES, counts
        assert all(count > 0 for count in counts), f"one instance did all the work: {counts}"

        # Each instance's read model sees every case (they tail the shared store);
        # confirm half of the cases through each instance.
        for n, event in enumerate(events):
            url = instances[n % 2].url
            wait_for(
                # wait_for calls it at once, within this iteration (hence noqa: B023).
                lambda: httpx.get(f"{url}/verifications/{event.case_id}", headers=as_staff()).status_code == 200,  # noqa: B023
                timeout=15,
                what="the case in the instance's read model",
            )
            response = httpx.post(
                f"{url}/verifications/{event.case_id}/confirmation", json={"officer": "o-1"}, headers=as_staff()
            )
            assert response.status_code < 300, response.text

        verified = wait_for(
            lambda: (
                found
                if len(found := stream_messages_sync(nats_server.url, "khidma.*.*.DataVerified")) >= CASES
                else None
            ),
            timeout=30,
            what="a DataVerified per case",
        )
        # Both relays published (the server dropped their duplicates): one per case.
        assert sorted(m["event"]["case_id"] for m in verified) == sorted(
            str(e.case_id) for e in events
        )
        for instance in instances:
            ready = httpx.get(f"{instance.url}/ready").json()
            assert ready["ready"], ready
        wait_for(
            lambda: all(httpx.get(f"{i.url}/ready").json()["outbox_lag"] == 0 for i in instances),
            timeout=15,
            what="both relays caught up",
        )
    finally:
        for instance in instances:
            instance.stop()
