"""The KHIDMA stream as the brief wants it: kept for audit, duplicates dropped."""

from __future__ import annotations

from uuid import uuid4

import nats
import pytest
from nats.js.api import StorageType

from khidma.nats_server import NatsServer
from shared.stream import STREAM_NAME, ensure_stream, stream_config
from shared.subjects import event_subject

pytestmark = pytest.mark.integration


async def test_the_stream_keeps_every_event_on_file_and_drops_a_republished_one(
    nats_server: NatsServer,
) -> None:
    connection = await nats.connect(nats_server.url)
    try:
        js = connection.jetstream()
        await ensure_stream(js)
        config = (await js.stream_info(STREAM_NAME)).config
        assert config.storage == StorageType.FILE
        # No age, count or size limit: the audit trail is never trimmed.
        assert not config.max_age
        assert config.max_msgs in (None, -1) and config.max_bytes in (None, -1)
        assert (config.duplicate_window or 0) >= 120
        subject = event_subject("sidr", uuid4(), "DataVerified")
        message_id = str(uuid4())
        first = await js.publish(subject, b"{}", headers={"Nats-Msg-Id": message_id})
        again = await js.publish(subject, b"{}", headers={"Nats-Msg-Id": message_id})
        assert not first.duplicate and again.duplicate and again.seq == first.seq
        assert (await js.stream_info(STREAM_NAME)).state.messages == 1
    finally:
        await connection.close()


async def test_a_stream_that_drifted_is_brought_back_to_this_versions_configuration(
    nats_server: NatsServer,
) -> None:
    connection = await nats.connect(nats_server.url)
    try:
        js = connection.jetstream()
        drifted = stream_config(duplicate_window_seconds=30)
        drifted.subjects = ["khidma.*.*.RequestReceived"]
        await js.add_stream(drifted)
        await ensure_stream(js)
        config = (await js.stream_info(STREAM_NAME)).config
        assert sorted(config.subjects or []) == sorted(stream_config().subjects or [])
        assert config.duplicate_window == stream_config().duplicate_window
    finally:
        await connection.close()
