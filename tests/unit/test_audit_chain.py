"""The hash chain's format: canonical, documented, and sensitive to every field."""

from __future__ import annotations

import hashlib
import struct
from uuid import UUID

import pytest

from shared.chain import GENESIS, chain_entries, content_hash, link_hash

pytestmark = pytest.mark.unit

ID = UUID("4b0c0e1a-0000-4000-8000-0000000000e1")


def test_the_hashes_follow_the_documented_encoding():
    u64 = struct.Struct(">Q").pack
    text = str(ID).encode()
    expected_content = hashlib.sha256(
        b"khidma-chain/1 content\n"
        + u64(len(text)) + text
        + u64(3)
        + u64(len(b"services.intake.domain:Case.Received")) + b"services.intake.domain:Case.Received"
        + u64(2) + b"{}"
    ).digest()
    assert content_hash(ID, 3, "services.intake.domain:Case.Received", b"{}") == expected_content
    expected_link = hashlib.sha256(
        b"khidma-chain/1 link\n" + GENESIS + u64(7) + expected_content
    ).digest()
    assert link_hash(GENESIS, 7, expected_content) == expected_link


def test_a_uuid_and_its_text_hash_alike():
    assert content_hash(ID, 1, "t", b"s") == content_hash(str(ID), 1, "t", b"s")


@pytest.mark.parametrize(
    "changed",
    [
        dict(originator_id=UUID(int=1)),
        dict(originator_version=2),
        dict(topic="other"),
        dict(state=b"{ }"),
    ],
)
def test_every_field_of_the_content_counts(changed):
    base = dict(originator_id=ID, originator_version=1, topic="t", state=b"{}")
    assert content_hash(**base) != content_hash(**{**base, **changed})


def test_fields_cannot_slide_into_each_other():
    # Length prefixes: moving a byte from the topic into the state changes the hash.
    assert content_hash(ID, 1, "ab", b"c") != content_hash(ID, 1, "a", b"bc")


def test_each_link_covers_the_previous_hash_and_the_position():
    content = content_hash(ID, 1, "t", b"s")
    assert link_hash(GENESIS, 1, content) != link_hash(GENESIS, 2, content)
    assert link_hash(GENESIS, 1, content) != link_hash(b"\x01" * 32, 1, content)


def test_entries_extend_the_chain_from_its_head():
    rows = [(1, ID, 1, "t", b"a"), (2, ID, 2, "t", b"b"), (5, ID, 3, "t", b"c")]
    entries = chain_entries(GENESIS, rows)
    assert [e.notification_id for e in entries] == [1, 2, 5]
    assert entries[0].prev_hash == GENESIS.hex()
    assert entries[1].prev_hash == entries[0].hash
    assert entries[2].prev_hash == entries[1].hash
    # Written in two batches, the chain is the same as in one.
    first = chain_entries(GENESIS, rows[:1])
    rest = chain_entries(bytes.fromhex(first[-1].hash), rows[1:])
    assert first + rest == entries
