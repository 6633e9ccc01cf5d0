"""`make bench`: the simulator against a fresh embedded system, measured.

Prints full cases per second, integration events per second, the latency of
each hop (p50/p99) and each process's peak memory. Two latencies are told
apart: *publish* is from an event's occurrence in its service to its arrival
on the stream (the outbox relay); *hop* is from a cause's arrival on the
stream to its effect's arrival, which includes the consuming service and the
simulated person who acts on it (polling every 10–200 ms).

    python -m khidma.bench --cases 300 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import nats
from nats.js.api import ConsumerConfig, DeliverPolicy

from khidma.bench_fsync import as_json as fsync_json
from khidma.bench_fsync import measure as measure_fsync
from khidma.bench_fsync import report_lines as fsync_report_lines
from khidma.bench_personal import measure as measure_encryption
from khidma.bench_personal import report_lines
from khidma.bench_web import measure as measure_web_list
from khidma.bench_web import report_lines as web_report_lines
from khidma.run import EmbeddedSystem
from khidma.simulate import DEFAULT_MIX, Endpoints, parse_mix, plan, print_progress, simulate
from services.surveys.integration import ANONYMOUS_CASE_REF


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


# What the figures include, said in the report so that nobody reads them as the
# services' own speed: every simulated person polls before acting.
POLLING_NOTE = (
    "cases/s, case duration and hop latency include the simulated people's polling "
    "(each waits 10-200 ms between looks before acting), not only the services' work"
)

# How many integration events a completed case of each kind puts on the stream.
EVENTS_PER_CASE = {"approved": 5, "rejected": 4, "referred": 6, "ineligible": 4}


async def read_events(nats_url: str, expected: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Every event on the stream, waiting (up to `timeout`) for the expected count."""
    connection = await nats.connect(nats_url)
    try:
        js = connection.jetstream()
        subscription = await js.subscribe(
            "khidma.*.*.*",
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
        )
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(events) < expected and time.monotonic() < deadline:
            try:
                message = await subscription.next_msg(timeout=1.0)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            body = json.loads(message.data)
            events.append({"event": body, "stream_time": message.metadata.timestamp})
        await subscription.unsubscribe()
        return events
    finally:
        await connection.close()


def latencies(
    events: list[dict[str, Any]],
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    publish: dict[str, list[float]] = defaultdict(list)
    hop: dict[str, list[float]] = defaultdict(list)
    arrived = {e["event"]["event_id"]: e for e in events}
    for item in events:
        event = item["event"]
        occurred = datetime.fromisoformat(event["occurred_at"])
        # An anonymous answer is dated to its day only (decision 16): no latency to measure.
        if event.get("case_ref") != ANONYMOUS_CASE_REF:
            publish[event["event_type"]].append((item["stream_time"] - occurred).total_seconds())
        cause = arrived.get(event.get("causation_id") or "")
        if cause:
            name = f"{cause['event']['event_type']} -> {event['event_type']}"
            hop[name].append((item["stream_time"] - cause["stream_time"]).total_seconds())
    return publish, hop


def process_memory(system: EmbeddedSystem) -> dict[str, int | None]:
    memory: dict[str, int | None] = {
        name: p.peak_memory_kib() for name, p in system.services.items()
    }
    if system.nats and system.nats.process:
        status = Path(f"/proc/{system.nats.process.pid}/status").read_text()
        memory["nats-server"] = next(
            (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")),
            None,
        )
    return memory


def format_table(title: str, rows: dict[str, list[float]]) -> list[str]:
    lines = [title, f"  {'':44} {'n':>6} {'p50 ms':>9} {'p99 ms':>9}"]
    for name in sorted(rows):
        values = rows[name]
        lines.append(
            f"  {name:44} {len(values):6d} {percentile(values, 0.5) * 1000:9.1f} {percentile(values, 0.99) * 1000:9.1f}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark Khidma end to end on this machine.")
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--mix", type=parse_mix, default=DEFAULT_MIX)
    parser.add_argument("--output", type=Path, default=Path("bench-results"))
    parser.add_argument(
        "--web-cases", type=int, default=100_000, help="cases behind the web list page (0: skip)"
    )
    parser.add_argument(
        "--fsync-messages",
        type=int,
        default=5000,
        help="messages of the publish with and without sync_interval: always (0: skip)",
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="khidma-bench-") as folder:
        print(f"starting an embedded system in {folder} …", file=sys.stderr)
        with EmbeddedSystem(Path(folder), fixed_ports=False) as system:
            endpoints = Endpoints.from_mapping(system.endpoints())
            kinds = plan(args.cases, args.mix, seed=1)
            print(f"driving {args.cases} cases, {args.concurrency} at a time …", file=sys.stderr)
            report = asyncio.run(
                simulate(
                    endpoints,
                    kinds,
                    concurrency=args.concurrency,
                    progress=print_progress,
                    identity_store=system.data_dir,
                )
            )
            expected = sum(EVENTS_PER_CASE[run.kind] for run in report.completed)
            events = asyncio.run(read_events(system.admin_nats_url, expected))
            memory = process_memory(system)

    publish, hop = latencies(events)
    stream_span = (
        (
            max(e["stream_time"] for e in events) - min(e["stream_time"] for e in events)
        ).total_seconds()
        if events
        else 0.0
    )
    completed = len(report.completed)
    lines = [
        f"Khidma benchmark: {args.cases} cases ({', '.join(f'{k}={v}' for k, v in args.mix.items() if v)}), concurrency {args.concurrency}",
        f"  completed cases            {completed} of {len(report.runs)} in {report.elapsed:.2f}s",
        f"  full cases per second      {completed / report.elapsed:.1f}  (simulated people's polling included)",
        f"  integration events         {len(events)} over {stream_span:.2f}s on the stream",
        f"  events per second          {len(events) / max(stream_span, 1e-9):.1f}",
        f"  case duration p50/p99      {percentile([r.finished - r.started for r in report.completed], 0.5) * 1000:.0f} ms / "
        f"{percentile([r.finished - r.started for r in report.completed], 0.99) * 1000:.0f} ms"
        if completed
        else "",
        *format_table("publish latency (occurred -> on the stream):", publish),
        *format_table(
            "hop latency (cause on the stream -> effect on the stream, polling included):", hop
        ),
        "peak memory (VmHWM):",
        *[
            f"  {name:13} {kib / 1024:8.1f} MiB" if kib else f"  {name:13}      n/a"
            for name, kib in memory.items()
        ],
        f"note: {POLLING_NOTE}.",
    ]
    encryption = measure_encryption()
    lines += report_lines(encryption)
    fsync = None
    if args.fsync_messages:
        print(
            f"publishing {args.fsync_messages:,} messages with and without fsync …", file=sys.stderr
        )
        fsync = measure_fsync(args.fsync_messages)
        lines += fsync_report_lines(fsync)
    web_list = None
    if args.web_cases:
        print(f"timing the web list page over {args.web_cases:,} cases …", file=sys.stderr)
        web_list = measure_web_list(args.web_cases)
        lines += web_report_lines(web_list)
    if report.failed:
        lines.append(report.summary())
    print("\n".join(line for line in lines if line))
    args.output.mkdir(parents=True, exist_ok=True)
    result = {
        "cases": args.cases,
        "concurrency": args.concurrency,
        "completed": completed,
        "elapsed_seconds": report.elapsed,
        "cases_per_second": completed / report.elapsed,
        "events": len(events),
        "events_per_second": len(events) / max(stream_span, 1e-9),
        "publish_latency_ms": {
            k: {"p50": percentile(v, 0.5) * 1000, "p99": percentile(v, 0.99) * 1000}
            for k, v in publish.items()
        },
        "hop_latency_ms": {
            k: {"p50": percentile(v, 0.5) * 1000, "p99": percentile(v, 0.99) * 1000}
            for k, v in hop.items()
        },
        "peak_memory_kib": memory,
        "encryption": encryption,
        "web_list_page": web_list,
        "publish_per_second_by_sync_interval": fsync_json(fsync) if fsync else None,
        "note": POLLING_NOTE,
    }
    path = args.output / f"bench-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"written {path}")
    return 0 if not report.failed else 1


if __name__ == "__main__":
    sys.exit(main())
