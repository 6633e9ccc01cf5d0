"""The one place that declares the KHIDMA stream."""

from __future__ import annotations

import logging

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from shared.subjects import STREAM_NAME, STREAM_SUBJECTS

log = logging.getLogger(__name__)


def stream_config(replicas: int = 1, duplicate_window_seconds: int = 600) -> StreamConfig:
    # Kept for audit: no age or size limit; the duplicate window drops a
    # re-published event (same Nats-Msg-Id) inside it.
    return StreamConfig(
        name=STREAM_NAME,
        subjects=list(STREAM_SUBJECTS),
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=0,
        num_replicas=replicas,
        duplicate_window=float(duplicate_window_seconds),
    )


async def ensure_stream(
    js: JetStreamContext, replicas: int = 1, duplicate_window_seconds: int = 600
) -> None:
    """Creates the stream, or brings its subjects and windows to the expected ones."""
    wanted = stream_config(replicas, duplicate_window_seconds)
    try:
        info = await js.stream_info(STREAM_NAME)
    except NotFoundError:
        await js.add_stream(wanted)
        log.info("created stream %s", STREAM_NAME)
        return
    current = info.config
    if (
        sorted(current.subjects or []) != sorted(wanted.subjects or [])
        or (current.duplicate_window or 0) != wanted.duplicate_window
        or (current.num_replicas or 1) != wanted.num_replicas
    ):
        await js.update_stream(wanted)
        log.warning("updated stream %s to the expected configuration", STREAM_NAME)
