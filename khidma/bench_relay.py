"""The outbox relay's throughput: a store of N complete requests, published to JetStream.

Intake's own store (SQLite file) holds N complete submissions; a fresh nats-server
on a free port; one relay publishes them all and the clock runs from its start to
the last position recorded. `--window` is how many publishes it keeps in flight
(1 = one after the other, each waiting for its ack). `--sync-always`: the server
syncs every write before it acknowledges it, as deployed (decision 31).

    python -m khidma.bench_relay --events 3000 --window 1 64 256 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nats

from khidma.nats_server import NatsServer
from services.intake.application import IntakeApplication
from services.intake.integration import TRANSLATORS
from shared.outbox import OutboxRelay
from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs
from shared.settings import ServiceSettings
from shared.store import OUTBOX_TRACKING, StoreRunner, open_application
from shared.stream import ensure_stream
from shared.submissions import Submission


def submission(n: int) -> Submission:
    return Submission.model_validate(
        {
            "association_id": "sidr",
            "channel": "website",
            "channel_ref": f"bench-{n}",
            "service_code": "seedlings",
            "applicant": {"national_id": f"1{n:09d}", "name": f"Applicant {n}"},
            "fields": {"planting_site": "Wadi Hanifa", "seedling_count": 10},
            "documents": [{"code": "national_id_card", "expires_on": "2030-01-01"}],
            "attestation": {"attested": True, "method": "in_person"},
        }
    )


def filled_store(data_dir: Path, events: int) -> IntakeApplication:
    settings = ServiceSettings(service_name="intake", nats_url="nats://unused", data_dir=data_dir)
    app = open_application(
        IntakeApplication, settings.eventsourcing_env(), packs=load_packs(DEFAULT_POLICIES_DIR)
    )
    for n in range(events):
        app.submit(submission(n), {"kind": "adapter", "id": "bench"})
    return app


async def publish_all(app: IntakeApplication, url: str, window: int, batch: int) -> float:
    """Seconds from the relay's start to its last recorded position."""
    connection = await nats.connect(url)
    try:
        js = connection.jetstream()
        await ensure_stream(js)
        options: dict[str, Any] = {"batch_size": batch}
        if "window" in inspect.signature(OutboxRelay).parameters:
            options["window"] = window
        elif window != 1:
            sys.exit("this relay publishes one at a time: run with --window 1")
        relay = OutboxRelay(app, StoreRunner(), js, TRANSLATORS, poll_interval=0.05, **options)
        last = app.read_notifications(0, 1_000_000, relay.topics)[-1].id
        started = time.perf_counter()
        task = asyncio.create_task(relay.run())
        try:
            while relay.stats.position < last:
                await asyncio.sleep(0.005)
            seconds = time.perf_counter() - started
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert app.process_recorder.max_tracking_id(OUTBOX_TRACKING) == last
        return seconds
    finally:
        await connection.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--window", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3, help="runs per window; the median")
    parser.add_argument(
        "--sync-always",
        action="store_true",
        help="the server syncs every write before its ack, as deployed (decision 31)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        app = filled_store(root / "data", args.events)
        print(f"store: {args.events} complete requests in {time.perf_counter() - started:.1f}s")
        for window in args.window:
            runs = []
            for run in range(args.repeat):
                folder = root / f"nats-{window}-{run}"
                server = NatsServer(
                    folder,
                    log_file=root / f"nats-{window}-{run}.log",
                    sync_interval="always" if args.sync_always else None,
                ).start()
                try:
                    runs.append(asyncio.run(publish_all(app, server.url, window, args.batch)))
                finally:
                    server.stop()
                # The next run starts from the beginning again, on its own server.
                _forget_position(app)
            seconds = statistics.median(runs)
            sync = "synced writes, " if args.sync_always else ""
            print(
                f"{sync}window {window:>4}, batch {args.batch}: {args.events} events in "
                f"{seconds:.2f}s (median of {args.repeat}) = {args.events / seconds:,.0f} events/s"
            )
        app.close()


def _forget_position(app: IntakeApplication) -> None:
    """Drops the relay's recorded position so that the next run publishes everything."""
    recorder = app.process_recorder
    with recorder.datastore.transaction(commit=True) as cursor:  # type: ignore[attr-defined]
        cursor.execute("DELETE FROM tracking")


if __name__ == "__main__":
    main()
