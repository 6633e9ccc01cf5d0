"""What `sync_interval: always` costs: a windowed JetStream publish with and without it.

Two plain nats-servers on this machine's disk, one with the server's default fsync
(every two minutes) and one that syncs every write before its ack; the same N
messages (about an event's size, each with its Nats-Msg-Id), `window` in flight.

    python -m khidma.bench_fsync --messages 5000 --window 64
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
from nats.js.api import StorageType, StreamConfig

from khidma.nats_server import NatsServer

# About the size of an integration event's envelope.
BODY = b'{"event_type": "RequestReceived", "payload": "' + b"x" * 900 + b'"}'


@dataclass(frozen=True)
class FsyncFigures:
    sync_interval: str
    messages: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.messages / self.seconds


async def publish_windowed(url: str, messages: int, window: int) -> float:
    """Seconds to have `messages` acknowledged, `window` of them in flight."""
    connection = await nats.connect(url)
    try:
        js = connection.jetstream()
        await js.add_stream(
            StreamConfig(name="FSYNC", subjects=["fsync.>"], storage=StorageType.FILE)
        )
        semaphore = asyncio.Semaphore(window)

        async def one(index: int) -> None:
            async with semaphore:
                await js.publish(f"fsync.{index % 16}", BODY, headers={"Nats-Msg-Id": f"m-{index}"})

        started = time.perf_counter()
        await asyncio.gather(*(one(index) for index in range(messages)))
        return time.perf_counter() - started
    finally:
        await connection.close()


def measure(
    messages: int = 5000, window: int = 64, folder: Path | None = None
) -> list[FsyncFigures]:
    """The default first, then `always`, each on a fresh server and store."""
    figures = []
    with tempfile.TemporaryDirectory(prefix="khidma-fsync-", dir=folder) as directory:
        for setting in ("default", "always"):
            store = Path(directory) / setting
            sync = None if setting == "default" else setting
            with NatsServer(store, sync_interval=sync) as server:
                seconds = asyncio.run(publish_windowed(server.url, messages, window))
            figures.append(FsyncFigures(setting, messages, seconds))
    return figures


def report_lines(figures: list[FsyncFigures], window: int = 64) -> list[str]:
    lines = [f"JetStream publish, {figures[0].messages} messages, {window} in flight:"]
    for item in figures:
        lines.append(
            f"  sync_interval {item.sync_interval:8} {item.per_second:9.0f} msg/s "
            f"({item.seconds:.2f}s)"
        )
    if len(figures) == 2:
        lines.append(f"  always costs {1 - figures[1].per_second / figures[0].per_second:.0%}")
    return lines


def as_json(figures: list[FsyncFigures]) -> dict[str, Any]:
    return {item.sync_interval: round(item.per_second, 1) for item in figures}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--window", type=int, default=64)
    args = parser.parse_args(argv)
    figures = measure(args.messages, args.window)
    print("\n".join(report_lines(figures, args.window)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
