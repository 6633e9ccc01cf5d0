"""The deployment's NATS configuration (deploy/nats/nats-server.conf) on a real server.

Each service connects with its own credentials and may publish only the events
it produces; what the services really do with those permissions (declare the
stream, their durable consumer, fetch, ack, dead-letter, answer submissions) is
exercised here with our own consumer and relay, and end to end by
test_compose.py.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any, AsyncIterator
from uuid import uuid4

import nats
import pytest
from nats.js.api import ConsumerConfig

from khidma.nats_server import SERVICE_USERS, NatsServer, secured_nats_server
from shared.consumer import TrackingConsumer
from shared.events import EVENT_TYPES, PRODUCERS
from shared.store import StoreRunner
from shared.stream import ensure_stream
from shared.subjects import dead_letter_subject, event_subject
from tests.helpers import async_wait_for, stream_messages

pytestmark = pytest.mark.integration


@pytest.fixture
def passwords() -> dict[str, str]:
    return {user: "k" + secrets.token_urlsafe(16) for user in (*SERVICE_USERS, "admin")}


@pytest.fixture
def secured(tmp_path: Path, passwords: dict[str, str]) -> Any:
    server = secured_nats_server(tmp_path / "nats", passwords).start()
    try:
        yield server
    finally:
        server.stop()


class Connection:
    """A connection as one user, collecting the errors the server sends it."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.nc: Any = None

    async def open(self, server: NatsServer, user: str, password: str) -> "Connection":
        async def on_error(error: Exception) -> None:
            self.errors.append(str(error))

        self.nc = await nats.connect(
            server.url, user=user, password=password, error_cb=on_error,
            allow_reconnect=False,
        )
        return self

    def violations(self) -> list[str]:
        return [e for e in self.errors if "permissions violation" in e.lower()]


@pytest.fixture
async def connect(secured: NatsServer, passwords: dict[str, str]) -> AsyncIterator[Any]:
    opened: list[Connection] = []

    async def open_as(user: str) -> Connection:
        connection = await Connection().open(secured, user, passwords[user])
        opened.append(connection)
        return connection

    admin = await open_as("admin")
    await ensure_stream(admin.nc.jetstream())
    yield open_as
    for connection in opened:
        if connection.nc.is_connected:
            await connection.nc.close()


def admin_url(server: NatsServer, passwords: dict[str, str]) -> str:
    return f"nats://admin:{passwords['admin']}@127.0.0.1:{server.port}"


async def test_each_service_may_publish_only_the_events_it_produces(
    connect: Any, secured: NatsServer, passwords: dict[str, str]
) -> None:
    expected: dict[str, str] = {}
    connections = {service: await connect(service) for service in SERVICE_USERS}
    for service, connection in connections.items():
        js = connection.nc.jetstream(timeout=2)
        for event_type in EVENT_TYPES:
            case_id = uuid4()
            subject = event_subject("sidr", case_id, event_type)
            if PRODUCERS[event_type] == service:
                ack = await js.publish(subject, b"{}", headers={"Nats-Msg-Id": str(case_id)})
                assert ack.stream == "KHIDMA"
                expected[subject] = service
            else:
                # A plain publish: the server refuses it and says so.
                await connection.nc.publish(subject, b"{}")
        await connection.nc.flush()
    for service, connection in connections.items():
        others = [t for t in EVENT_TYPES if PRODUCERS[t] != service]
        await async_wait_for(
            lambda: _value(len(connection.violations()) == len(others)),
            timeout=5,
            what=f"{service}'s refused publishes",
        )
        for event_type in others:
            # The server's message ends with the refused subject (lower-cased).
            assert any(v.endswith(f'.{event_type.lower()}"') for v in connection.violations()), (
                service, event_type, connection.violations()
            )
    on_stream = await stream_messages(admin_url(secured, passwords), "khidma.*.*.*")
    assert {m["subject"] for m in on_stream} == set(expected)
    assert len(on_stream) == len(PRODUCERS)


async def test_a_jetstream_publish_of_another_services_event_is_never_stored(
    connect: Any, secured: NatsServer, passwords: dict[str, str]
) -> None:
    verification = await connect("verification")
    js = verification.nc.jetstream(timeout=1)
    with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError, asyncio.TimeoutError)):
        await js.publish(event_subject("sidr", uuid4(), "RequestReceived"), b"{}")
    assert verification.violations()
    # Its own dead letters are allowed, another service's are not.
    await js.publish(dead_letter_subject("verification"), b"{}")
    with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError, asyncio.TimeoutError)):
        await js.publish(dead_letter_subject("intake"), b"{}")
    on_stream = await stream_messages(admin_url(secured, passwords), "khidma.>")
    assert [m["subject"] for m in on_stream] == [dead_letter_subject("verification")]


async def test_a_service_cannot_read_events_or_use_another_services_consumer(
    connect: Any,
) -> None:
    verification = await connect("verification")
    await verification.nc.subscribe("khidma.*.*.DataVerified")
    await verification.nc.flush()
    await async_wait_for(
        lambda: _value(any("subscription" in v.lower() for v in verification.violations())),
        timeout=5,
        what="the refused subscription",
    )
    js = verification.nc.jetstream(timeout=1)
    with pytest.raises((nats.errors.TimeoutError, asyncio.TimeoutError)):
        await js.add_consumer("KHIDMA", ConsumerConfig(durable_name="intake"))
    with pytest.raises((nats.errors.TimeoutError, asyncio.TimeoutError)):
        await js.delete_stream("KHIDMA")


async def test_wrong_or_missing_credentials_are_refused(secured: NatsServer) -> None:
    async def quiet(_: Exception) -> None:
        pass

    for options in ({"user": "intake", "password": "wrong"}, {}):
        with pytest.raises(Exception) as refused:
            await nats.connect(
                secured.url, allow_reconnect=False, max_reconnect_attempts=0,
                connect_timeout=2, error_cb=quiet, **options,
            )
        assert "authorization" in str(refused.value).lower() or isinstance(
            refused.value, nats.errors.NoServersError
        )


async def test_a_service_runs_its_consumer_and_dead_letters_with_its_own_permissions(
    connect: Any, secured: NatsServer, passwords: dict[str, str], tmp_path: Path
) -> None:
    """The tracking consumer's whole protocol: stream check, durable create/update,
    fetch, ack, nak, dead letter, pending count."""
    from tests.integration.test_exactly_once import Effect, make_app, request, publish

    intake = await connect("intake")
    verification = await connect("verification")
    good, bad = request(), request()
    await publish(intake.nc.jetstream(), good)
    await intake.nc.jetstream().publish(
        event_subject("sidr", bad.case_id, "RequestReceived"), b'{"event_type": "RequestReceived"}'
    )
    app, store = make_app(tmp_path), StoreRunner()
    js = verification.nc.jetstream(timeout=2)
    await ensure_stream(js)

    def handle(event: Any, processing: Any) -> None:
        processing.collect_events(Effect(event.event_id))

    consumer = TrackingConsumer(
        app, store, js, service="verification", handlers={"RequestReceived": handle}
    )
    task = asyncio.create_task(consumer.run())
    try:
        await async_wait_for(
            lambda: _value(consumer.stats.handled == 1 and consumer.stats.dead_letters == 1),
            timeout=10,
        )
        await async_wait_for(lambda: _is_zero(consumer.pending()), timeout=10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert verification.violations() == []
    dead = await stream_messages(admin_url(secured, passwords), dead_letter_subject("verification"))
    assert len(dead) == 1


async def test_intake_answers_submissions_by_request_reply(connect: Any) -> None:
    intake = await connect("intake")
    admin = await connect("admin")

    async def answer(message: Any) -> None:
        await message.respond(b'{"ok": true}')

    await intake.nc.subscribe("khidma.submissions.>", queue="intake", cb=answer)
    await intake.nc.flush()
    # Once in about five hundred CI runs the server still answered "no responders"
    # right after the subscriber's flush; an adapter retries that, and so do we.
    reply = await async_wait_for(
        lambda: admin.nc.request("khidma.submissions.sidr.website", b"{}", timeout=2),
        timeout=10,
        what="intake's answer to a submission",
    )
    assert reply.data == b'{"ok": true}'
    assert intake.violations() == []
    # Verification is not allowed to take submissions.
    verification = await connect("verification")
    await verification.nc.subscribe("khidma.submissions.>", queue="intake")
    await verification.nc.flush()
    await async_wait_for(lambda: _value(bool(verification.violations())), timeout=5)


async def _value(value: Any) -> Any:
    return value


async def _is_zero(awaitable: Any) -> bool:
    return await awaitable == 0


def test_a_password_the_configuration_misreads_stops_the_server_naming_it(
    tmp_path: Path, passwords: dict[str, str]
) -> None:
    """NATS parses `$VAR` values as configuration: hence the rule in .env.example."""
    server = secured_nats_server(tmp_path / "nats", {**passwords, "intake": "-starts-with-a-dash"})
    with pytest.raises(RuntimeError):
        server.start()
    assert "INTAKE_NATS_PASSWORD" in (tmp_path / "nats" / "nats.log").read_text()
