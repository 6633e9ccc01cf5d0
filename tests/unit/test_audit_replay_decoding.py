"""The audit's fast readers decode exactly what the slower ones did.

A stored state is parsed by msgspec and walked once (audit.replay.decode_state);
the library's transcoder followed by `_plain` is the reference. The stream's
pull loop reads each message's stream sequence and pending count from its
reply subject (audit.replay._Batch).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import TranscodingNotRegisteredError

from audit.replay import _Batch, _plain, _transcoder, decode_state

CASE = UUID("4b0c2a9e-0d6f-4c8e-9a57-3f1e2d7c60e1")


def _reference(state: bytes) -> Any:
    return _plain(_transcoder().decode(state))


def test_a_state_decodes_as_the_librarys_transcoder_and_plain_read_it() -> None:
    state = _transcoder().encode(
        {
            "case_id": CASE,
            "timestamp": datetime(2026, 11, 3, 9, 30, tzinfo=UTC),
            "naive": datetime(2026, 11, 3, 9, 30),
            "amount": Decimal("1250.50"),
            "votes": [{"member": "m-1", "at": datetime(2026, 11, 4, tzinfo=UTC)}, [CASE]],
            "look_alike": {"_type_": "uuid_hex"},
            "text": "خدمة",
            "nothing": None,
            "ratio": 0.25,
        }
    )
    decoded = decode_state(state, _transcoder())
    assert decoded == _reference(state)
    assert decoded["case_id"] == str(CASE)
    assert decoded["naive"].tzinfo is UTC
    assert decoded["amount"] == Decimal("1250.50")


def test_an_integer_past_64_bits_stays_exact() -> None:
    state = b'{"big": 123456789012345678901234567890, "case_id": {"_type_": "uuid_hex", "_data_": "'
    state += CASE.hex.encode() + b'"}}'
    assert decode_state(state, _transcoder()) == _reference(state)
    assert decode_state(state, _transcoder())["big"] == 123456789012345678901234567890


def test_what_msgspec_refuses_is_read_by_the_library() -> None:
    state = b'{"score": NaN, "limit": Infinity, "huge": 1e400}'
    decoded = decode_state(state, _transcoder())
    assert decoded["score"] != decoded["score"]  # NaN, as json reads it
    assert decoded["limit"] == decoded["huge"] == float("inf")


def test_an_unknown_transcoding_is_refused_by_both() -> None:
    state = b'{"when": {"_type_": "date_iso", "_data_": "2026-11-03"}}'
    with pytest.raises(TranscodingNotRegisteredError):
        _reference(state)
    with pytest.raises(TranscodingNotRegisteredError):
        decode_state(state, _transcoder())


@dataclass
class _Message:
    subject: str
    reply: str
    data: bytes = b"{}"
    headers: dict[str, str] | None = field(default=None)


def _take(batch: _Batch, message: _Message) -> None:
    asyncio.run(batch.take(message))


def test_the_sequence_and_pending_come_from_either_reply_form() -> None:
    batch = _Batch(10, "_INBOX.x.1")
    _take(batch, _Message("khidma.a.c.RequestReceived", "$JS.ACK.KHIDMA.eph.1.41.1.1700.7"))
    _take(
        batch,
        _Message("khidma.a.c.DataVerified", "$JS.ACK.dom.hash.KHIDMA.eph.1.42.2.1700.6.r"),
    )
    assert batch.items == [
        (41, "khidma.a.c.RequestReceived", b"{}"),
        (42, "khidma.a.c.DataVerified", b"{}"),
    ]
    assert batch.pending == 6
    assert not batch.done.is_set()


def test_a_batch_ends_when_full_or_when_nothing_is_pending() -> None:
    full = _Batch(1, "_INBOX.x.1")
    _take(full, _Message("khidma.a.c.X", "$JS.ACK.KHIDMA.eph.1.1.1.1700.5"))
    assert full.done.is_set()
    last = _Batch(10, "_INBOX.x.2")
    _take(last, _Message("khidma.a.c.X", "$JS.ACK.KHIDMA.eph.1.9.9.1700.0"))
    assert last.done.is_set()


def test_only_the_requests_own_status_ends_it() -> None:
    batch = _Batch(10, "_INBOX.x.2")
    _take(batch, _Message("_INBOX.x.1", "", b"", {"Status": "404"}))  # an earlier request's
    assert not batch.done.is_set()
    _take(batch, _Message("_INBOX.x.2", "", b"", {"Status": "404"}))
    assert batch.done.is_set()
    assert batch.items == []


def test_a_status_other_than_the_end_is_a_refusal() -> None:
    batch = _Batch(10, "_INBOX.x.3")
    _take(
        batch,
        _Message("_INBOX.x.3", "", b"", {"Status": "409", "Description": "Consumer Deleted"}),
    )
    assert batch.done.is_set()
    assert batch.refused == "409 Consumer Deleted"


@pytest.mark.parametrize(
    "data", [CASE.hex, CASE.hex.upper(), str(CASE), "{" + CASE.hex + "}", "urn:uuid:" + CASE.hex]
)
def test_a_uuid_in_any_form_the_library_reads_is_its_string(data: str) -> None:
    state = b'{"id": {"_type_": "uuid_hex", "_data_": "' + data.encode() + b'"}}'
    assert decode_state(state, _transcoder()) == _reference(state) == {"id": str(CASE)}
