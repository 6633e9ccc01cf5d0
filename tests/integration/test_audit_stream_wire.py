"""The audit's bulk stream reader (audit/stream_wire.py) on a real nats-server: the
same records as nats-py's reader, several pull batches long, and on the
deployment's secured server with a user's password and the connection's inbox."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import pytest

import audit.stream_wire as wire
from audit.bench import HistoryGenerator, publish_history
from audit.replay import STREAM_BATCH, replay_stream
from khidma.nats_server import NATS_USERS, NatsServer, secured_nats_server

pytestmark = pytest.mark.integration
EVENTS = STREAM_BATCH * 2 + 321  # three pull requests, the last one short


def _records(url: str, **credentials: Any) -> list[tuple[int, str, str, str | None]]:
    return [
        (r.sequence, r.subject, r.event.event_type if r.event else "", r.error)
        for r in replay_stream(url, decode=lambda data: _Seen(data), **credentials)
    ]


class _Seen:
    """What the reader handed over, undecoded: its bytes' length stands for them."""

    def __init__(self, data: bytes) -> None:
        self.event_type = f"{len(data)}:{hash(data)}"


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    opened: list[str] = []
    original = wire.WireReader.open.__func__  # type: ignore[attr-defined]

    async def open_and_note(cls: Any, connection: Any, **options: Any) -> Any:
        reader = await original(cls, connection, **options)
        opened.append(reader.inbox)
        return reader

    monkeypatch.setattr(wire.WireReader, "open", classmethod(open_and_note))
    return opened


def test_the_bulk_reader_hands_over_what_nats_py_does(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(publish_history(nats_server.url, HistoryGenerator(EVENTS, days=30)))
    opened = _spy(monkeypatch)
    bulk = _records(nats_server.url)
    assert len(opened) == 1  # read off the protocol

    async def unavailable(cls: Any, connection: Any, **options: Any) -> Any:
        raise wire.WireUnavailable("as over TLS")

    monkeypatch.setattr(wire.WireReader, "open", classmethod(unavailable))
    assert _records(nats_server.url) == bulk  # nats-py's reader, message for message
    assert [sequence for sequence, *_ in bulk] == list(range(1, EVENTS + 1))


def test_the_bulk_reader_signs_in_as_the_user_on_the_secured_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    passwords = {user: "k" + secrets.token_urlsafe(16) for user in NATS_USERS}
    server = secured_nats_server(tmp_path / "nats", passwords).start()
    try:
        host = server.url.removeprefix("nats://")
        admin_url = f"nats://admin:{passwords['admin']}@{host}"
        asyncio.run(publish_history(admin_url, HistoryGenerator(300, days=5)))
        opened = _spy(monkeypatch)
        records = _records(server.url, user="admin", password=passwords["admin"])
        assert len(records) == 300 and all(error is None for *_, error in records)
        assert len(opened) == 1
        # The URL's own credentials serve as well.
        assert _records(admin_url) == records
    finally:
        server.stop()
