"""`make bench-coldstart`: a service starting cold on a long store, its read models rebuilt.

    python -m khidma.bench_coldstart [--events 1000000] [--store-dir DIR] [--runs 1]

1. Writes N events to a SQLite store of the surveys service the way it writes
   them (`audit.bench.write_store`: its application, the hash-chained recorder,
   each survey registered then invited, 250 a save), or reuses the store a run
   before wrote in `--store-dir` (writing a million events takes minutes).
2. Starts, in a new Python process each run (cold: nothing imported, no cache),
   what `services.surveys.main.build` and `ServiceRuntime.start` do before the
   service can be ready with its read models: the settings, the policy packs, the
   application on the store, a fresh views file, and the projection's catch-up
   (`ProjectionRunner.catch_up`, 500 notifications a transaction) until no
   notification is left: every survey's document rebuilt. The NATS connection,
   the relay and the consumer are not started (no broker here); their start is
   a connection and a position read, not a function of the store's length.

Prints the store's size, the time to the views rebuilt (and its parts: imports and
assembly, then the catch-up), the process CPU time and its peak memory; writes the
result as JSON under bench-results/.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run in the child process: everything a cold start does, timed from its first line.
COLD_START = r"""
import json, resource, sys, time
started, cpu = time.perf_counter(), time.process_time()
from pathlib import Path
from services.surveys.application import SurveysApplication
from services.surveys.views import project
from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs
from shared.settings import ServiceSettings
from shared.store import StoreRunner, open_application
from shared.views import ProjectionRunner, ViewStore

folder = Path(sys.argv[1])
settings = ServiceSettings(
    service_name="surveys", store="sqlite", data_dir=folder, nats_url="nats://127.0.0.1:1"
)
views_file = folder / "cold-views.sqlite"
for stale in folder.glob("cold-views.sqlite*"):
    stale.unlink()
packs = load_packs(DEFAULT_POLICIES_DIR)
app = open_application(SurveysApplication, settings.eventsourcing_env(), packs=packs)
views = ViewStore(views_file)
runner = ProjectionRunner(app, StoreRunner(), views, project, batch_size=500)
assembled = time.perf_counter()
applied = runner.catch_up()
done = time.perf_counter()
print(json.dumps({
    "notifications_applied": applied,
    "max_notification_id": app.max_notification_id(),
    "surveys_in_views": views.count("surveys"),
    "assembly_seconds": round(assembled - started, 2),
    "catch_up_seconds": round(done - assembled, 2),
    "seconds_to_views_rebuilt": round(done - started, 2),
    "cpu_seconds": round(time.process_time() - cpu, 2),
    "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
}))
app.close()
"""

WRITTEN_NOTE = "coldstart-store.json"


def prepared_store(folder: Path, events: int, seed: int) -> dict[str, Any]:
    """The surveys store of `events` events in `folder`: written now, or by a run before."""
    from audit.bench import write_store

    note = folder / WRITTEN_NOTE
    if note.exists():
        seen = json.loads(note.read_text())
        if seen.get("events_requested") == events and seen.get("seed") == seed:
            return {**seen, "reused": True}
        raise SystemExit(f"{folder} holds another store ({seen}); use another --store-dir")
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    written = write_store(folder, events, seed=seed)
    seconds = time.perf_counter() - started
    result = {
        "events_requested": events,
        "seed": seed,
        "events": written,
        "write_seconds": round(seconds, 2),
        "write_events_per_second": round(written / seconds),
    }
    note.write_text(json.dumps(result))
    return result


def cold_start(folder: Path) -> dict[str, Any]:
    """One cold start in a new interpreter; its measurements."""
    completed = subprocess.run(
        [sys.executable, "-c", COLD_START, str(folder)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=1, help="cold starts on the same store")
    parser.add_argument(
        "--store-dir",
        type=Path,
        default=None,
        help="keep the store here and reuse it on the next run with the same --events",
    )
    parser.add_argument("--output", type=Path, default=Path("bench-results"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="khidma-coldstart-") as scratch:
        folder = args.store_dir or Path(scratch)
        store = prepared_store(folder, args.events, args.seed)
        runs = [cold_start(folder) for _ in range(args.runs)]
    result = {"store": store, "runs": runs}
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / f"coldstart-bench-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    lines = [
        f"Khidma cold start (surveys): a store of {store['events']:,} events"
        + (" (written by a run before)" if store.get("reused") else ""),
        (
            f"  store written             {store['write_seconds']:8.2f} s  "
            f"{store['write_events_per_second']:>10,} events/s"
        ),
    ]
    for number, run in enumerate(runs, 1):
        lines.append(
            f"  cold start {number}: views rebuilt in {run['seconds_to_views_rebuilt']:.2f} s "
            f"(imports and assembly {run['assembly_seconds']:.2f} s, catch-up "
            f"{run['catch_up_seconds']:.2f} s of {run['notifications_applied']:,} notifications, "
            f"{run['surveys_in_views']:,} surveys); CPU {run['cpu_seconds']:.2f} s; "
            f"peak {run['peak_rss_mib']:.0f} MiB"
        )
    lines.append(f"written {path}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
