"""`make bench-audit`: a long history on a real stream, replayed and reported, measured.

    python -m audit.bench [--events 1000000] [--store-events 1000000] [--compliance]
        [--stream-dir DIR] [--report-dir DIR]

`--stream-dir` keeps the published stream (and a note of what was published) and
reuses it on the next run with the same --events and --seed, so that A/B runs read
one stream without publishing it again; `--report-dir` keeps the report's files
(to compare them, SHA-256, between two versions).

1. Generates a history of integration events (realistic cases of every
   association through the six event types, over a year) and publishes it to
   a fresh nats-server (`khidma.nats_server.NatsServer` on a free port, in a
   temporary folder) with asynchronous JetStream publishes in batches, each
   with its `Nats-Msg-Id`. The generator keeps only the cases in flight.
2. Replays the stream with the audit's own reader (`audit.replay.replay_stream`,
   decoding every event) and reports events per second.
3. Builds the board report of the whole year from the stream (figures and the
   HTML/CSV/JSON files) and reports the build time; with `--compliance`, also
   runs the compliance checks over the case timelines from the stream (the same
   read of the stream as the figures, as the report does), against
   the policy packs (the decision window and the quorum of each association's
   pack), as the board's report runs them; there are no stores here, so the
   checks that need one are named as not run, as the report names them.

4. The store side (`--store-events N`, 0 to skip): writes N events to a SQLite
   store of the surveys service the way it writes them (its application, the
   hash-chained process recorder, a save of many aggregates per transaction:
   each survey registered, then invited), then replays that store with the
   audit's own reader (`audit.replay.replay_store`, decoding every event).

Each replay also reports its process CPU time (the reading thread with the
decoding one; not the nats-server's): on a machine shared with other work
the wall clock says more about the neighbours than about the audit.

Peak memory is the process's `ru_maxrss`, read after each phase (it only
grows), and the nats-server's own peak (VmHWM). Results are printed and written
as JSON under bench-results/.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import heapq
import json
import random
import resource
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs
from shared.subjects import event_subject

HOUR = 3600.0
DAY = 86400.0
# What becomes of a case, and how often (weights).
KINDS = {"approved": 55, "rejected": 14, "referred": 12, "ineligible": 8, "open": 11}
EVENTS_PER_CASE = 4.8  # on average, with the mix above, for the arrival rate


@dataclass
class Item:
    subject: str
    event_id: str
    data: bytes


def _uuid(rng: random.Random) -> str:
    return str(UUID(int=rng.getrandbits(128), version=4))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


class HistoryGenerator:
    """Cases arriving over `days` days; their events come out in time order.

    Only the events of cases in flight are held (a heap), so generating a
    million events needs little memory.
    """

    def __init__(
        self,
        total: int,
        *,
        seed: int = 7,
        start: date = date(2025, 12, 1),
        days: int = 365,
        policies_dir: Path = DEFAULT_POLICIES_DIR,
    ):
        self.total = total
        self.rng = random.Random(seed)
        self.packs = list(load_packs(policies_dir).values())
        self.start_ts = datetime.combine(start, datetime.min.time(), UTC).timestamp()
        self.days = days
        cases = max(1, int(total / EVENTS_PER_CASE))
        self.interval = days * DAY / cases
        self.kinds = list(KINDS)
        self.weights = list(KINDS.values())
        self.sequence = 0
        self.case_number = 0

    def _case(self, received: float) -> list[tuple[float, dict[str, Any]]]:
        rng = self.rng
        pack = rng.choice(self.packs)
        kind = rng.choices(self.kinds, self.weights)[0]
        self.case_number += 1
        case_id = _uuid(rng)
        year = 1447 + int((received - self.start_ts) / (354 * DAY))
        envelope = {
            "association_id": pack.association_id,
            "case_id": case_id,
            "case_ref": f"{pack.case_prefix}-{year}-{self.case_number:06d}",
            "correlation_id": case_id,
        }
        channel = rng.choice(pack.channels)
        service = rng.choice(pack.services).code
        events: list[tuple[float, dict[str, Any]]] = []

        def add(
            ts: float, event_type: str, actor: tuple[str, str], payload: dict[str, Any]
        ) -> None:
            event_id = _uuid(rng)
            events.append(
                (
                    ts,
                    {
                        "event_id": event_id,
                        "event_type": event_type,
                        "schema_version": 1,
                        "occurred_at": _iso(ts),
                        **envelope,
                        "causation_id": events[-1][1]["event_id"] if events else None,
                        "actor": {"kind": actor[0], "id": actor[1]},
                        "payload": payload,
                    },
                )
            )

        officer = f"officer-{rng.randint(1, 12)}"
        applicant = {
            "national_id": f"1{rng.randint(0, 999_999_999):09d}",
            "name": "Bench applicant",
            "phone": "0500000000",
        }
        fields = {"request_details": "bench"}
        attested = json.dumps(
            {"applicant": applicant, "service_code": service, "fields": fields, "documents": []},
            sort_keys=True,
            separators=(",", ":"),
        )
        add(
            received,
            "RequestReceived",
            ("officer", officer),
            {
                "channel": channel,
                "channel_ref": f"{channel}-{self.case_number}",
                "service_code": service,
                "applicant": applicant,
                "fields": fields,
                "attestation": {
                    "attested": True,
                    "attested_by": "Bench applicant",
                    "method": "in_person",
                    "attested_at": _iso(received),
                    "data_hash": hashlib.sha256(attested.encode()).hexdigest(),
                },
                "submitted_at": _iso(received),
            },
        )
        now = received
        if kind == "referred":
            now += rng.uniform(0.2, 4) * HOUR
            add(
                now,
                "ReferredToResearcher",
                ("officer", officer),
                {
                    "reason": "The procedure is unclear to the applicant",
                    "questions": ["Which documents?"],
                    "referred_by": officer,
                },
            )
        if kind == "open" and rng.random() < 0.5:
            return events
        now += rng.uniform(2 * HOUR, 3 * DAY)
        outcome = (
            "ineligible"
            if kind == "ineligible"
            else ("discrepancies" if rng.random() < 0.05 else "verified")
        )
        add(
            now,
            "DataVerified",
            ("officer", "verifier-1"),
            {
                "outcome": outcome,
                "officer": "verifier-1",
                "checks": [
                    {"name": "identity", "passed": True},
                    {"name": "documents_valid", "passed": outcome != "discrepancies"},
                ],
                **({"ineligible_rule": "eligibility"} if outcome == "ineligible" else {}),
            },
        )
        if kind == "open":
            return events
        window = pack.decision_window_days
        late = rng.random() < 0.12
        decided = (
            received
            + (rng.uniform(window + 0.5, window * 2.2) if late else rng.uniform(1, window - 0.5))
            * DAY
        )
        now = max(now + HOUR, decided)
        approve = kind in ("approved", "referred")
        members = [m.id for m in pack.committee.members][: max(pack.committee.quorum, 3)]
        add(
            now,
            "CommitteeDecided",
            ("committee", f"sitting-{int(now // DAY)}"),
            {
                "decision": "approved" if approve else "rejected",
                "reasons": ["Meets the criteria" if approve else "Does not meet the criteria"],
                "votes": [
                    {"member": m, "vote": "approve" if approve else "reject"} for m in members
                ],
                "window_days": window,
                "within_window": not late,
                "deadline": _iso(received + window * DAY),
                "members_present": members,
                "quorum": pack.committee.quorum,
            },
        )
        if approve:
            now += rng.uniform(HOUR, 5 * DAY)
            add(
                now,
                "ServiceDelivered",
                ("officer", officer),
                {
                    "service_code": service,
                    "delivered": "The service as requested",
                    "delivered_by": officer,
                },
            )
        if rng.random() < 0.8:
            now += rng.uniform(HOUR, 7 * DAY)
            satisfaction = rng.choices((1, 2, 3, 4, 5), (3, 5, 12, 35, 45))[0]
            add(
                now,
                "SurveyAnswered",
                ("applicant", "anonymous"),
                {
                    "ratings": {"satisfaction": satisfaction, "recommend": rng.randint(0, 10)},
                    "anonymous": True,
                    "stage": "delivered" if approve else "rejected",
                    "service_code": service,
                    "channel": channel,
                },
            )
        return events

    def __iter__(self) -> Iterator[Item]:
        heap: list[tuple[float, int, dict[str, Any]]] = []
        emitted = 0
        arrival = self.start_ts
        dumps = json.dumps
        while emitted < self.total:
            arrival += self.rng.expovariate(1 / self.interval)
            for ts, body in self._case(arrival):
                self.sequence += 1
                heapq.heappush(heap, (ts, self.sequence, body))
            while heap and heap[0][0] <= arrival and emitted < self.total:
                _, _, body = heapq.heappop(heap)
                emitted += 1
                yield Item(
                    event_subject(body["association_id"], body["case_id"], body["event_type"]),
                    body["event_id"],
                    dumps(body, ensure_ascii=False).encode(),
                )


async def publish_history(
    nats_url: str,
    items: Iterable[Item],
    *,
    batch: int = 2000,
    progress: bool = False,
    total: int | None = None,
) -> int:
    """Publishes the items to the KHIDMA stream asynchronously, `batch` acks in flight; returns the count."""
    import nats

    from shared.stream import ensure_stream

    connection = await nats.connect(nats_url)
    try:
        js = connection.jetstream(publish_async_max_pending=batch * 2)
        await ensure_stream(js)
        futures: list[asyncio.Future[Any]] = []
        count = 0
        started = time.monotonic()
        for item in items:
            futures.append(
                await js.publish_async(
                    item.subject, item.data, headers={"Nats-Msg-Id": item.event_id}
                )
            )
            count += 1
            if len(futures) >= batch:
                await asyncio.gather(*futures)  # raises on any refused publish
                futures = []
                if progress and count % (batch * 25) == 0:
                    rate = count / max(time.monotonic() - started, 1e-9)
                    of = f"/{total:,}" if total else ""
                    print(
                        f"\rpublished {count:,}{of} ({rate:,.0f}/s)",
                        end="",
                        file=sys.stderr,
                        flush=True,
                    )
        await asyncio.gather(*futures)
        if progress:
            print(file=sys.stderr)
        info = await js.stream_info("KHIDMA")
        if info.state.messages < count:
            raise RuntimeError(
                f"the stream holds {info.state.messages} messages, {count} were published"
            )
        return count
    finally:
        await connection.close()


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def server_peak_mib(pid: int | None) -> float | None:
    if not pid:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


SAVE_BATCH = 250  # surveys per save: two events each


def write_store(folder: Path, events: int, *, seed: int = 7) -> int:
    """Writes `events` events to a fresh surveys store in `folder`; returns the count."""
    from services.surveys.application import SurveysApplication
    from services.surveys.domain import Survey
    from shared.settings import ServiceSettings

    rng = random.Random(seed)
    # No broker here: the store is all that is written.
    settings = ServiceSettings(
        service_name="surveys", store="sqlite", data_dir=folder, nats_url="nats://127.0.0.1:1"
    )
    app = SurveysApplication(env=settings.eventsourcing_env())
    packs = list(load_packs(DEFAULT_POLICIES_DIR).values())
    invited_at = datetime(2026, 1, 1, tzinfo=UTC)
    written = 0
    try:
        while written < events:
            surveys = []
            for _ in range(min(SAVE_BATCH, (events - written + 1) // 2)):
                pack = rng.choice(packs)
                case_id = UUID(_uuid(rng))
                survey = Survey(
                    case_id=case_id,
                    association_id=pack.association_id,
                    case_ref=f"{pack.case_prefix}-1447-{written:07d}",
                    correlation_id=case_id,
                    channel=rng.choice(pack.channels),
                    service_code=rng.choice(pack.services).code,
                    phone=None,
                    email=None,
                    language="ar",
                    revision=1,
                    personal_key=None,
                )
                survey.invite(
                    stage="delivered",
                    causation_id=UUID(_uuid(rng)),
                    token=_uuid(rng),
                    invited_at=invited_at,
                )
                surveys.append(survey)
            app.save(*surveys)
            written += 2 * len(surveys)
        return written
    finally:
        app.close()


def bench_store(events: int, folder: Path, *, progress: bool, seed: int) -> dict[str, Any]:
    """Writes a surveys store of `events` events, then replays it with the audit's reader."""
    from audit.replay import replay_store
    from audit.settings import AuditSettings

    started = time.perf_counter()
    written = write_store(folder, events, seed=seed)
    write_seconds = time.perf_counter() - started
    started, cpu = time.perf_counter(), time.process_time()
    replayed = sum(
        1
        for _ in replay_store(
            "surveys", AuditSettings(data_dir=folder, store="sqlite"), progress=progress
        )
    )
    replay_seconds = time.perf_counter() - started
    replay_cpu = time.process_time() - cpu
    return {
        "events": written,
        "write_seconds": round(write_seconds, 2),
        "write_events_per_second": round(written / write_seconds),
        "replayed": replayed,
        "replay_seconds": round(replay_seconds, 2),
        "replay_events_per_second": round(replayed / replay_seconds),
        "replay_cpu_seconds": round(replay_cpu, 2),
        "replay_events_per_cpu_second": round(replayed / replay_cpu),
    }


PUBLISHED_NOTE = "published.json"


def _published(
    nats_url: str, generator: HistoryGenerator, home: Path, *, seed: int, progress: bool
) -> dict[str, Any]:
    """Publishes the history, or reuses the stream a run before published in `home`
    (`--stream-dir`: the same events and seed, noted in published.json), so that
    A/B runs read one stream without the minutes of publishing it again."""
    note = home / PUBLISHED_NOTE
    wanted = {"events_requested": generator.total, "seed": seed}
    if note.exists():
        seen = json.loads(note.read_text())
        if {k: seen.get(k) for k in wanted} == wanted:
            return {**seen["publish"], "reused": True}
        raise SystemExit(f"{home} holds another history ({seen}); use another --stream-dir")
    started = time.perf_counter()
    published = asyncio.run(
        publish_history(nats_url, generator, progress=progress, total=generator.total)
    )
    elapsed = time.perf_counter() - started
    publish = {
        "events": published,
        "cases": generator.case_number,
        "seconds": round(elapsed, 2),
        "events_per_second": round(published / elapsed),
    }
    note.write_text(json.dumps({**wanted, "publish": publish}))
    return publish


def run_bench(
    events: int,
    *,
    store_events: int = 0,
    compliance: bool = False,
    progress: bool = True,
    out_dir: Path = Path("bench-results"),
    work_dir: Path | None = None,
    seed: int = 7,
    stream_dir: Path | None = None,
    report_dir: Path | None = None,
) -> dict[str, Any]:
    from audit.compliance import CheckContext, checks_not_run
    from audit.figures import compute_figures
    from audit.report import figures_and_exceptions, stream_events, write_report
    from khidma.nats_server import NatsServer

    packs = load_packs(DEFAULT_POLICIES_DIR)
    result: dict[str, Any] = {"events_requested": events, "seed": seed}
    with tempfile.TemporaryDirectory(prefix="khidma-audit-bench-", dir=work_dir) as folder:
        home = stream_dir or Path(folder)
        server = NatsServer(home / "nats", log_file=Path(folder) / "nats.log").start()
        try:
            generator = HistoryGenerator(events, seed=seed)
            result["publish"] = _published(
                server.url, generator, home, seed=seed, progress=progress
            )
            result["peak_rss_mib_after_publish"] = round(peak_rss_mib(), 1)

            started, cpu = time.perf_counter(), time.process_time()
            replayed = 0
            for _ in stream_events(server.url, progress=progress):
                replayed += 1
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu
            result["replay"] = {
                "events": replayed,
                "seconds": round(elapsed, 2),
                "events_per_second": round(replayed / elapsed),
                "cpu_seconds": round(cpu, 2),
                "events_per_cpu_second": round(replayed / cpu),
            }
            result["peak_rss_mib_after_replay"] = round(peak_rss_mib(), 1)

            start = date.fromtimestamp(generator.start_ts)
            end = start + timedelta(days=generator.days - 1)
            started, cpu = time.perf_counter(), time.process_time()
            # As `python -m audit report` runs them: against the packs, with the report's
            # default grace; the stores' checks cannot run on a stream alone. With the
            # checks, the figures come from the same read of the stream as the timelines.
            not_run = checks_not_run((), packs=packs) if compliance else []
            exceptions: Any = None
            if compliance:
                figures, exceptions = figures_and_exceptions(
                    server.url,
                    start=start,
                    end=end,
                    packs=packs,
                    progress=progress,
                    context=CheckContext(packs=packs),
                )
            else:
                figures = compute_figures(
                    stream_events(server.url, progress=progress), start=start, end=end, packs=packs
                )
            figures_done = time.perf_counter()
            figures_cpu = time.process_time() - cpu
            # the checks run while the report is written (they are read once, as an iterator)
            files = write_report(
                figures,
                exceptions,
                out_dir=report_dir or Path(folder) / "report",
                lang="ar",
                packs=packs,
                checks_not_run=not_run,
            )
            written = time.perf_counter()
            result["report"] = {
                "period": [start.isoformat(), end.isoformat()],
                "events_read": figures.events_read,
                "requests_in_period": figures.requests_total,
                "figures_seconds": round(figures_done - started, 2),
                "figures_events_per_second": round(figures.events_read / (figures_done - started)),
                "figures_cpu_seconds": round(figures_cpu, 2),
                "exceptions": files.exceptions_total,
                "checks_not_run": not_run if compliance else None,
                "exceptions_by_check": json.loads(files.json.read_text(encoding="utf-8"))[
                    "exceptions_by_check"
                ],
                "write_seconds": round(
                    written - figures_done, 3
                ),  # with the compliance checks when asked
                "build_seconds": round(written - started, 2),
                "html_bytes": files.html.stat().st_size,
            }
            result["peak_rss_mib_after_report"] = round(peak_rss_mib(), 1)
            if store_events:
                result["store"] = bench_store(
                    store_events, Path(folder) / "stores", progress=progress, seed=seed
                )
            result["peak_rss_mib"] = round(peak_rss_mib(), 1)
            result["nats_server_peak_mib"] = server_peak_mib(
                server.process.pid if server.process else None
            )
        finally:
            server.stop()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"audit-bench-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    result["written"] = str(path)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark the audit: replay and board report over a long history."
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--store-events",
        type=int,
        default=None,
        help="events written to a surveys store and replayed (default: --events; 0 skips)",
    )
    parser.add_argument(
        "--compliance", action="store_true", help="also run the compliance checks (slower)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", type=Path, default=Path("bench-results"))
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="where the temporary nats store goes"
    )
    parser.add_argument(
        "--stream-dir",
        type=Path,
        default=None,
        help="keep the published stream here, and reuse it on the next run with the same "
        "--events and --seed (publishing a million events takes minutes)",
    )
    parser.add_argument(
        "--report-dir", type=Path, default=None, help="keep the report's files here"
    )
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    result = run_bench(
        args.events,
        store_events=args.events if args.store_events is None else args.store_events,
        compliance=args.compliance,
        progress=not args.quiet,
        out_dir=args.output,
        work_dir=args.work_dir,
        seed=args.seed,
        stream_dir=args.stream_dir,
        report_dir=args.report_dir,
    )
    publish, replay, report = result["publish"], result["replay"], result["report"]
    lines = [
        f"Khidma audit benchmark: {publish['events']:,} events ({publish['cases']:,} cases)",
        f"  publish to the stream     {publish['seconds']:8.2f} s  {publish['events_per_second']:>10,} events/s"
        + ("  (a run before: reused)" if publish.get("reused") else ""),
        (
            f"  replay (read + decode)    {replay['seconds']:8.2f} s  {replay['events_per_second']:>10,} events/s"
            f"  (CPU {replay['cpu_seconds']:.2f} s: {replay['events_per_cpu_second']:,}/CPU s)"
        ),
        (
            f"  report figures            {report['figures_seconds']:8.2f} s  {report['figures_events_per_second']:>10,} events/s"
            f"  (CPU {report['figures_cpu_seconds']:.2f} s)"
        ),
    ]
    checks = (
        f", compliance checks: {report['exceptions']:,} exceptions"
        if report["exceptions"] is not None
        else ""
    )
    lines += [
        f"  report files written      {report['write_seconds']:8.3f} s  (HTML {report['html_bytes']:,} bytes{checks})",
        f"  report build in all       {report['build_seconds']:8.2f} s",
    ]
    store = result.get("store")
    if store:
        lines += [
            f"  store write (surveys)     {store['write_seconds']:8.2f} s  {store['write_events_per_second']:>10,} events/s",
            (
                f"  store replay (+ decode)   {store['replay_seconds']:8.2f} s  {store['replay_events_per_second']:>10,} events/s"
                f"  (CPU {store['replay_cpu_seconds']:.2f} s: {store['replay_events_per_cpu_second']:,}/CPU s)"
            ),
        ]
    lines += [
        (
            f"  peak memory (ru_maxrss)   after publish {result['peak_rss_mib_after_publish']:.0f} MiB, "
            f"after replay {result['peak_rss_mib_after_replay']:.0f} MiB, "
            f"after the report {result['peak_rss_mib_after_report']:.0f} MiB, at the end {result['peak_rss_mib']:.0f} MiB"
        ),
        f"  nats-server peak (VmHWM)  {result['nats_server_peak_mib'] or 0:.0f} MiB",
        f"written {result['written']}",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
