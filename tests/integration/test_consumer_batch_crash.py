"""A service process killed after a batch's commit and before its acks leaves every
message's effect exactly once (docs/decisions.md, 39).

Several `RequestReceived` wait on the stream before verification starts, so its first
fetch takes them as one batch, recorded in one transaction. The testing-only fault
injection (KHIDMA_FAULT_EXIT_AFTER_COMMIT) ends the process after that commit and
before any ack. Restarted without the fault, it receives them all again and skips
each as a duplicate: one verification per case, none lost.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from khidma.nats_server import NatsServer
from khidma.processes import ServiceProcess
from tests.backends import Backend
from tests.integration.test_crash_between_commit_and_ack import (
    _publish,
    durable_info,
    exited_after_commit,
    request,
    skipped_after_restart,
    store_env,
    stored,
)

pytestmark = pytest.mark.integration

BATCH = 5


def test_a_process_killed_between_a_batch_commit_and_its_acks_leaves_each_effect_once(
    nats_server: NatsServer, tmp_path: Path, backend: Backend
) -> None:
    env = {**store_env(backend), "KHIDMA_ACK_WAIT_SECONDS": "2"}
    events = [request() for _ in range(BATCH)]
    sequences = [asyncio.run(_publish(nats_server.url, event)) for event in events]
    crashing = ServiceProcess(
        "verification",
        nats_server.url,
        tmp_path / "first",
        env={**env, "KHIDMA_FAULT_EXIT_AFTER_COMMIT": "RequestReceived"},
    ).launch()
    try:
        exited_after_commit(crashing, tmp_path / "first" / "verification.log")
    finally:
        crashing.kill()

    # Dead after the one commit: every message's verification and position are stored...
    after_crash = [stored(backend, e.case_id, s) for e, s in zip(events, sequences, strict=True)]
    assert all(count >= 1 and recorded for count, recorded in after_crash)
    # ...and before any ack.
    info = durable_info(nats_server.url)
    assert info.ack_floor.stream_seq < sequences[0]
    assert info.num_ack_pending + info.num_pending == BATCH

    restarted = ServiceProcess("verification", nats_server.url, tmp_path / "second", env=env)
    try:
        restarted.start()
        report = skipped_after_restart(restarted, BATCH)
        assert report["duplicates_skipped"] == BATCH
        assert report["consumed"] == 0
        info = durable_info(nats_server.url)
        assert info.ack_floor.stream_seq >= sequences[-1]
        assert info.num_ack_pending == 0 and info.num_pending == 0
    finally:
        restarted.stop()

    # Nothing more was written for any case: each effect once.
    assert [stored(backend, e.case_id, s) for e, s in zip(events, sequences, strict=True)] == [
        (count, True) for count, _ in after_crash
    ]
