"""The audit's bulk reader of pull batches off the NATS protocol (audit/stream_wire.py):
frames cut across reads, the sequence and pending count from either reply form,
and the end-of-stream rules of audit.replay._Batch (404/408 on the request's own
reply end it; any other status is an error; a late status of an earlier request
ends nothing)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from audit.stream_wire import StatusRefused, WireReader

REPLY = "_INBOX.t.2"


class _Writer:
    def __init__(self) -> None:
        self.sent = bytearray()

    def write(self, data: bytes) -> None:
        self.sent += data

    async def drain(self) -> None:
        pass


def _message(seq: int, pending: int, data: bytes = b'{"n":1}', *, domain: bool = False) -> bytes:
    headers = b"NATS/1.0\r\nNats-Msg-Id: x\r\n\r\n"
    ack = (
        f"$JS.ACK.dom.hash.KHIDMA.eph.1.{seq}.{seq}.1700.{pending}.r"
        if domain
        else f"$JS.ACK.KHIDMA.eph.1.{seq}.{seq}.1700.{pending}"
    )
    head = f"HMSG khidma.a.c.X 1 {ack} {len(headers)} {len(headers) + len(data)}\r\n"
    return head.encode() + headers + data + b"\r\n"


def _status(reply: str, code: str, text: str) -> bytes:
    headers = f"NATS/1.0 {code} {text}\r\n\r\n".encode()
    return f"HMSG {reply} 1 {len(headers)} {len(headers)}\r\n".encode() + headers + b"\r\n"


def _read(chunks: list[bytes], wanted: int = 10, timeout: float = 0.2) -> tuple[Any, _Writer]:
    async def run() -> Any:
        reader = asyncio.StreamReader()
        for chunk in chunks:
            reader.feed_data(chunk)
        writer = _Writer()
        wire = WireReader(reader, writer)  # type: ignore[arg-type]
        return await wire.batch(wanted, REPLY, timeout), writer

    return asyncio.run(run())


def test_frames_cut_anywhere_across_reads_are_read_whole() -> None:
    stream = _message(41, 2) + _message(42, 1, domain=True) + _message(43, 0, b"")
    for cut in range(1, len(stream)):
        (items, pending, ended), _ = _read([stream[:cut], stream[cut:]])
        assert items == [
            (41, "khidma.a.c.X", b'{"n":1}'),
            (42, "khidma.a.c.X", b'{"n":1}'),
            (43, "khidma.a.c.X", b""),
        ]
        assert (pending, ended) == (0, True)


def test_a_batch_ends_when_full() -> None:
    (items, pending, ended), _ = _read([_message(1, 5) + _message(2, 4)], wanted=1)
    assert [seq for seq, _, _ in items] == [1]
    assert (pending, ended) == (5, True)


def test_only_the_requests_own_status_ends_it() -> None:
    late = _status("_INBOX.t.1", "408", "Request Timeout")
    (items, _, ended), _ = _read([late + _message(7, 3) + _status(REPLY, "404", "No Messages")])
    assert [seq for seq, _, _ in items] == [7]
    assert ended


def test_a_status_other_than_the_end_is_a_refusal() -> None:
    with pytest.raises(StatusRefused, match="409 Consumer Deleted"):
        _read([_message(7, 3) + _status(REPLY, "409", "Consumer Deleted")])


def test_an_earlier_requests_refusal_ends_nothing() -> None:
    (items, _, ended), _ = _read([_status("_INBOX.t.1", "409", "Gone") + _message(8, 0)])
    assert [seq for seq, _, _ in items] == [8] and ended


def test_a_silent_server_ends_the_batch_as_not_ended_with_what_came() -> None:
    (items, pending, ended), _ = _read([_message(9, 4)], timeout=0.05)
    assert [seq for seq, _, _ in items] == [9]
    assert (pending, ended) == (4, False)


def test_the_servers_ping_is_answered_and_an_error_stops_the_read() -> None:
    (items, _, _), writer = _read([b"PING\r\n+OK\r\n" + _message(1, 0)])
    assert b"PONG\r\n" in writer.sent and len(items) == 1
    with pytest.raises(StatusRefused, match="Permissions Violation"):
        _read([b"-ERR 'Permissions Violation for Subscription'\r\n"])


def test_a_message_without_headers_is_read_too() -> None:
    plain = b"MSG khidma.a.c.X 1 $JS.ACK.KHIDMA.eph.1.5.5.1700.0 2\r\n{}\r\n"
    (items, _, ended), _ = _read([plain])
    assert items == [(5, "khidma.a.c.X", b"{}")] and ended
