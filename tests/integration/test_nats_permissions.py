"""The deployment's NATS configuration (deploy/nats/nats-server.conf) on a real server.

`admin` declares the stream and the durable consumers (the init step,
`python -m shared.stream declare`); each service connects with its own
credentials and inbox prefix, may publish only the events it produces, and
may only read the stream and its own durable: it cannot change the stream,
create or widen a consumer, or listen to another service's inbox. What the
services really do with those permissions (check the stream and their
durable, fetch, ack, dead-letter, answer submissions) is exercised here with
our own consumer, and end to end by test_compose.py.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any, AsyncIterator
from uuid import uuid4

import nats
import pytest
from nats.js.api import ConsumerConfig

from khidma.compose import PROJECT_ROOT
from khidma.nats_server import SERVICE_USERS, NatsServer, secured_nats_server
from shared.events import EVENT_TYPES, PRODUCERS
from shared.store import StoreRunner
from shared.stream import (
    DeclaredTrackingConsumer,
    NotDeclared,
    declare_everything,
    ensure_durable,
    ensure_stream,
    inbox_prefix,
    service_durables,
    stream_config,
)
from shared.subjects import (
    STREAM_NAME,
    dead_letter_subject,
    event_subject,
    replay_subject,
    replayed_subject,
)
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

        # A service connects with its own inbox prefix, as the runtime does.
        prefix = {} if user == "admin" else {"inbox_prefix": inbox_prefix(user)}
        self.nc = await nats.connect(
            server.url, user=user, password=password, error_cb=on_error,
            allow_reconnect=False, **prefix,
        )
        return self

    def violations(self) -> list[str]:
        return [e for e in self.errors if "permissions violation" in e.lower()]


@pytest.fixture
async def connect_undeclared(
    secured: NatsServer, passwords: dict[str, str]
) -> AsyncIterator[Any]:
    """Opens connections as any user, on a server where nothing is declared yet."""
    opened: list[Connection] = []

    async def open_as(user: str) -> Connection:
        connection = await Connection().open(secured, user, passwords[user])
        opened.append(connection)
        return connection

    yield open_as
    for connection in opened:
        if connection.nc.is_connected:
            await connection.nc.close()


@pytest.fixture
async def connect(connect_undeclared: Any) -> Any:
    """Opens connections as any user, after the init step declared everything."""
    admin = await connect_undeclared("admin")
    await declare_everything(admin.nc.jetstream())
    return connect_undeclared


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
    # So are its notices that it applied a replay; a replay itself is the admin's.
    await js.publish(replayed_subject("verification"), b"{}")
    for forbidden in (replayed_subject("intake"), replay_subject("verification")):
        with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError, asyncio.TimeoutError)):
            await js.publish(forbidden, b"{}")
    on_stream = await stream_messages(admin_url(secured, passwords), "khidma.>")
    assert [m["subject"] for m in on_stream] == [
        dead_letter_subject("verification"), replayed_subject("verification")]


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
    """The tracking consumer's whole protocol on what the init step declared: stream
    and durable checks, fetch, ack, nak, dead letter, pending count."""
    from tests.integration.test_exactly_once import Effect, make_app, publish, request

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

    consumer = DeclaredTrackingConsumer(
        app, store, js, service="verification", handlers={"RequestReceived": handle}
    )
    await consumer.ensure_consumer()
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


REFUSED = (nats.errors.TimeoutError, nats.errors.NoRespondersError, asyncio.TimeoutError)


async def test_a_service_can_neither_update_nor_create_the_stream(
    connect: Any, secured: NatsServer, passwords: dict[str, str]
) -> None:
    intake = await connect("intake")
    for _ in range(3):
        await intake.nc.jetstream().publish(event_subject("sidr", uuid4(), "RequestReceived"), b"{}")
    verification = await connect("verification")
    js = verification.nc.jetstream(timeout=1)
    cut = stream_config()
    cut.max_msgs = 1
    with pytest.raises(REFUSED):
        await js.update_stream(cut)
    with pytest.raises(REFUSED):
        await js.add_stream(cut)
    with pytest.raises(REFUSED):
        await js.purge_stream(STREAM_NAME)
    assert len(verification.violations()) == 3, verification.errors
    admin = await connect("admin")
    info = await admin.nc.jetstream().stream_info(STREAM_NAME)
    assert info.config.max_msgs in (None, -1)
    assert info.state.messages == 3


async def test_a_service_cannot_create_or_widen_a_consumer_not_even_its_own(
    connect: Any,
) -> None:
    verification = await connect("verification")
    js = verification.nc.jetstream(timeout=1)
    # Its own durable, widened to another service's events and the dead letters.
    wider = service_durables()["verification"]
    wider.filter_subjects = ["khidma.*.*.SurveyAnswered", "khidma.deadletter.*"]
    with pytest.raises(REFUSED):
        await js.add_consumer(STREAM_NAME, wider)
    # A new durable, or an ephemeral consumer, on anything.
    with pytest.raises(REFUSED):
        await js.add_consumer(
            STREAM_NAME, ConsumerConfig(durable_name="verification-2", filter_subject="khidma.>")
        )
    with pytest.raises(REFUSED):
        await js.pull_subscribe("khidma.*.*.SurveyAnswered", stream=STREAM_NAME)
    with pytest.raises(REFUSED):
        await js.delete_consumer(STREAM_NAME, "verification")
    admin = await connect("admin")
    info = await admin.nc.jetstream().consumer_info(STREAM_NAME, "verification")
    assert info.config.filter_subjects == ["khidma.*.*.RequestReceived", "khidma.replay.verification"]
    consumers = [c.name for c in await admin.nc.jetstream().consumers_info(STREAM_NAME)]
    assert sorted(consumers) == sorted(SERVICE_USERS)


async def test_a_service_may_listen_only_to_its_own_inbox(connect: Any) -> None:
    verification = await connect("verification")
    for others in ("_INBOX.>", "_INBOX_intake.>", ">"):
        await verification.nc.subscribe(others)
    await verification.nc.flush()
    await async_wait_for(
        lambda: _value(len(verification.violations()) == 3),
        timeout=5,
        what="the three refused subscriptions",
    )
    assert all("subscription" in v.lower() for v in verification.violations())
    # Its own answers arrive: a JetStream request (stream info) through its prefix.
    info = await verification.nc.jetstream(timeout=2).stream_info(STREAM_NAME)
    assert info.config.name == STREAM_NAME
    assert len(verification.violations()) == 3


async def test_a_locked_down_service_names_the_init_step_when_nothing_is_declared(
    connect_undeclared: Any,
) -> None:
    verification = await connect_undeclared("verification")
    js = verification.nc.jetstream(timeout=1)
    with pytest.raises(NotDeclared) as missing:
        await ensure_stream(js)
    assert "the stream KHIDMA is missing" in str(missing.value)
    assert "python -m shared.stream declare" in str(missing.value)
    assert "nats-init" in str(missing.value)
    admin = await connect_undeclared("admin")
    await ensure_stream(admin.nc.jetstream())
    await ensure_stream(js)  # declared by admin: the check alone passes
    with pytest.raises(NotDeclared) as missing:
        await ensure_durable(js, service_durables()["verification"])
    assert "the durable consumer verification is missing" in str(missing.value)
    assert "nats-init" in str(missing.value)


def test_the_init_command_declares_everything_the_services_check(
    secured: NatsServer, passwords: dict[str, str]
) -> None:
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "KHIDMA_NATS_URL": secured.url,
        "KHIDMA_NATS_USER": "admin",
        "KHIDMA_NATS_PASSWORD": passwords["admin"],
    }
    for _ in range(2):  # and again, as at every `docker compose up`: nothing to change
        done = subprocess.run(
            [sys.executable, "-m", "shared.stream", "declare", "--wait", "10"],
            cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 0, done.stderr

    async def check() -> None:
        for service in SERVICE_USERS:
            connection = await Connection().open(secured, service, passwords[service])
            try:
                js = connection.nc.jetstream(timeout=2)
                await ensure_stream(js)
                await ensure_durable(js, service_durables()[service])
                await connection.nc.flush()
                assert connection.violations() == [], (service, connection.errors)
            finally:
                await connection.nc.close()

    asyncio.run(check())


def test_the_init_command_fails_clearly_with_a_services_credentials(
    secured: NatsServer, passwords: dict[str, str]
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "shared.stream", "declare", "--wait", "0"],
        cwd=PROJECT_ROOT,
        env={
            "PATH": os.environ.get("PATH", ""),
            "KHIDMA_NATS_URL": secured.url,
            "KHIDMA_NATS_USER": "intake",
            "KHIDMA_NATS_PASSWORD": passwords["intake"],
        },
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1
    assert "nats-init: could not declare" in done.stderr
    assert "the stream KHIDMA is missing" in done.stderr


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
