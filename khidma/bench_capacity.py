"""`make bench-capacity`: how many complete requests a second intake takes and verification
verifies, beside the raw floor of the same NATS server (issue 14).

A real system (EmbeddedSystem) starts in a temporary folder. N complete requests of the
branch-office adapter (textile-coop's support request, each its own applicant) go to
intake, `--concurrency` at a time: first over HTTP (POST /submissions), then over NATS
request/reply (`khidma.submissions.<association>.<channel>`). Verification runs its
checks on each; DataVerified needs the verifier's confirmation, so the benchmark confirms
every suggested outcome as the signed-in verifier (a GET until the round appears, one
POST) while the submissions go on; the committee and the surveys consume what follows.
A pass's time runs from its first submission to its last DataVerified on the stream.

Then the same server's floor: a windowed publish of N messages of an event's size and
a pull consume of them. Each process's CPU seconds and peak memory are printed too.

    python -m khidma.bench_capacity --requests 2000 --concurrency 64 [--store postgres]

With `--rate R` the submissions are offered at R a second instead (an open loop: the
i-th starts at i/R s whatever the answers before it, up to `--concurrency` × 2 open
connections), and each latency runs from the moment it was due, so the p99 says what a
sender at that rate would see, the time it waited for a connection included.

    python -m khidma.bench_capacity --requests 1000 --rate 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.js.api import ConsumerConfig, DeliverPolicy

from khidma.bench import percentile, process_memory
from khidma.bench_batches import token as adapter_token
from khidma.bench_fsync import publish_windowed
from khidma.otlp_collector import Collector, ReceivedSpan
from khidma.run import EmbeddedSystem
from khidma.signin import embedded_staff
from khidma.simulate import TEMPLATES, simulated_applicant
from shared.roles import VERIFIER

ASSOCIATION = "textile-coop"
CHANNEL = "branch_office"
FLOOR_STREAM = "FSYNC"  # bench_fsync's publish declares it (subjects fsync.>)
POSTGRES = {"host": "127.0.0.1", "port": "5432", "user": "postgres"}


@dataclass
class Pass:
    """One transport's run: what was sent, what came back, when each was verified."""

    transport: str
    requests: int
    started: float = 0.0  # wall clock (the stream's timestamps are too)
    last_accepted: float = 0.0
    latencies: list[float] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    verified: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def verified_here(self) -> int:
        return len(set(self.accepted) & self.verified.keys())

    @property
    def accepted_per_second(self) -> float:
        return len(self.accepted) / max(self.last_accepted - self.started, 1e-9)

    @property
    def verified_per_second(self) -> float:
        times = [self.verified[c] for c in self.accepted if c in self.verified]
        return len(times) / max(max(times, default=self.started) - self.started, 1e-9)

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "accepted": len(self.accepted),
            "refused": len(self.refused),
            "verified": self.verified_here,
            "accepted_per_second": round(self.accepted_per_second, 1),
            "verified_per_second": round(self.verified_per_second, 1),
            "latency_ms": {
                f"p{q}": round(percentile(self.latencies, q / 100) * 1000, 1) for q in (50, 95, 99)
            }
            if self.latencies
            else None,
            "cpu_seconds": {k: round(v, 2) for k, v in self.cpu_seconds.items()},
            "first_refusals": self.refused[:5],
        }


def submission_body(rng: random.Random, taken: set[str]) -> dict[str, Any]:
    """A complete request of the branch office, its applicant unlike any before."""
    applicant = simulated_applicant(rng)
    while applicant["national_id"] in taken:
        applicant = simulated_applicant(rng)
    taken.add(applicant["national_id"])
    template = TEMPLATES[ASSOCIATION]
    return {
        "channel_ref": f"capacity-{uuid.UUID(int=rng.getrandbits(128))}",
        "service_code": template.service_code,
        "applicant": applicant,
        "fields": template.fields,
        "documents": [{**d, "number": applicant["national_id"]} for d in template.documents],
        "attestation": {
            "attested": True,
            "method": "paper_scan",
            "attested_by": applicant["name"],
        },
    }


def cpu_seconds(pid: int) -> float:
    """User and system CPU the process has used (/proc/<pid>/stat utime + stime)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    rest = text[text.rindex(")") + 2 :].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def pids(system: EmbeddedSystem) -> dict[str, int]:
    found = {name: p.pid for name, p in system.services.items() if p.pid}
    if system.nats and system.nats.process:
        found["nats-server"] = system.nats.process.pid
    return {**found, "benchmark": os.getpid()}


def cpu_of(system: EmbeddedSystem) -> dict[str, float]:
    return {name: cpu_seconds(pid) for name, pid in pids(system).items()}


Submit = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def http_submitter(client: httpx.AsyncClient, intake: str, bearer: str) -> Submit:
    async def submit(body: dict[str, Any]) -> dict[str, Any]:
        response = await client.post(
            f"{intake}/submissions",
            json={"association_id": ASSOCIATION, "channel": CHANNEL, **body},
            headers={"Authorization": f"Bearer {bearer}"},
        )
        if response.status_code != 201:
            return {"ok": False, "refused": f"{response.status_code} {response.text[:200]}"}
        return {"ok": True, **response.json()}

    return submit


def nats_submitter(connection: nats.NATS, bearer: str) -> Submit:
    subject = f"khidma.submissions.{ASSOCIATION}.{CHANNEL}"

    async def submit(body: dict[str, Any]) -> dict[str, Any]:
        reply = await connection.request(
            subject,
            json.dumps(body, ensure_ascii=False).encode(),
            timeout=60,
            headers={"Authorization": f"Bearer {bearer}"},
        )
        answer: dict[str, Any] = json.loads(reply.data)
        return answer

    return submit


async def watch_verified(
    url: str, verified: dict[str, float], ready: asyncio.Event, stop: asyncio.Event
) -> None:
    """Each DataVerified put on the stream from now: its case id and stream time
    (`ready` once its consumer exists)."""
    connection = await nats.connect(url)
    try:
        subscription = await connection.jetstream().subscribe(
            f"khidma.{ASSOCIATION}.*.DataVerified",
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.NEW),
        )
        ready.set()
        while not stop.is_set():
            try:
                message = await subscription.next_msg(timeout=0.5)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            stamp: datetime = message.metadata.timestamp
            verified[message.subject.split(".")[2]] = stamp.timestamp()
        await subscription.unsubscribe()
    finally:
        await connection.close()


@dataclass
class Officer:
    """The verifier who confirms each round's suggested outcome once it appears."""

    client: httpx.AsyncClient
    verification: str
    headers: Callable[[], Awaitable[dict[str, str]]]

    async def confirm(self, case_id: str, deadline: float) -> None:
        url = f"{self.verification}/verifications/{case_id}"
        pause = 0.01
        while (await self.client.get(url, headers=await self.headers())).status_code == 404:
            if time.monotonic() > deadline:
                return
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, 0.2)
        await self.client.post(
            f"{url}/confirmation", json={"officer": "officer-2"}, headers=await self.headers()
        )


async def submitted(submit: Submit, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The answer to a submission, sent again after a dropped connection (a reused
    keep-alive connection the server had just closed): the same channel_ref is the
    same request, so sending it twice is safe. Whether it was sent again, too."""
    for attempt in range(3):
        try:
            return await submit(body), attempt > 0
        except (httpx.TransportError, nats.errors.Error, TimeoutError) as error:
            failure = {"ok": False, "error": f"{type(error).__name__}: {error}"}
    return failure, True


async def drive(
    run: Pass,
    submit: Submit,
    officer: Officer,
    bodies: list[dict[str, Any]],
    concurrency: int,
    unconfirmed: int,
    rate: float | None = None,
) -> None:
    """Submits every body, `concurrency` at a time (or offered at `rate` a second), while
    a few officers confirm each accepted request (but the last `unconfirmed`: the
    benchmark must then fail)."""
    semaphore = asyncio.Semaphore(concurrency)
    queue: asyncio.Queue[str] = asyncio.Queue()
    deadline = time.monotonic() + 600
    opened = time.perf_counter()

    async def timed(index: int, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        if rate is not None:  # due at index/rate: the latency counts from then
            due = opened + index / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            answer = await submitted(submit, body)
        else:
            async with semaphore:
                due = time.perf_counter()
                answer = await submitted(submit, body)
        run.latencies.append(time.perf_counter() - due)
        return answer

    async def one(index: int, body: dict[str, Any]) -> None:
        answer, retried = await timed(index, body)
        run.last_accepted = time.time()
        # A retry may find the first attempt recorded: the same request, said once.
        if not answer.get("ok") or (answer.get("duplicate") and not retried):
            run.refused.append(json.dumps(answer, ensure_ascii=False)[:300])
            return
        run.accepted.append(answer["case_id"])
        if len(run.accepted) % max(1, len(bodies) // 10) == 0:
            print(f"  {len(run.accepted)} accepted", file=sys.stderr, flush=True)
        if index < len(bodies) - unconfirmed:
            queue.put_nowait(answer["case_id"])

    async def confirming() -> None:
        while True:
            case_id = await queue.get()
            try:
                await officer.confirm(case_id, deadline)
            except httpx.HTTPError as error:
                run.refused.append(f"confirming {case_id}: {type(error).__name__}: {error}")
            queue.task_done()

    officers = [asyncio.create_task(confirming()) for _ in range(max(2, concurrency // 4))]
    run.started = time.time()
    await asyncio.gather(*(one(i, body) for i, body in enumerate(bodies)))
    await queue.join()
    for task in officers:
        task.cancel()


async def until_verified(run: Pass, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while run.verified_here < len(run.accepted) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


@dataclass(frozen=True)
class Options:
    requests: int
    concurrency: int
    timeout: float
    unconfirmed: int
    traces: bool = False
    rate: float | None = None  # submissions offered a second (an open loop), else closed


async def run_passes(system: EmbeddedSystem, options: Options) -> list[Pass]:
    """The HTTP pass, then the NATS pass, on the one running system."""
    bearer = await asyncio.to_thread(adapter_token, system, CHANNEL)
    limits = httpx.Limits(max_connections=options.concurrency * 2)
    rng, taken = random.Random(1448), set[str]()
    passes = []
    # The officers have their own connections: they never wait behind the submissions.
    async with (
        httpx.AsyncClient(timeout=60, limits=limits) as client,
        httpx.AsyncClient(timeout=60, limits=limits) as officers_client,
    ):
        staff = embedded_staff(system.data_dir, system.services["identity"].url, officers_client)
        officer = Officer(
            officers_client, system.services["verification"].url, lambda: staff.headers(VERIFIER)
        )
        await officer.headers()  # signed in before the clock starts
        connection = await nats.connect(system.admin_nats_url)
        try:
            submitters = {
                "http": http_submitter(client, system.services["intake"].url, bearer),
                "nats": nats_submitter(connection, bearer),
            }
            for transport, submit in submitters.items():
                bodies = [submission_body(rng, taken) for _ in range(options.requests)]
                # Only the last pass leaves any alone: the one run shows both outcomes.
                left = options.unconfirmed if transport == "nats" else 0
                print(f"{transport}: {options.requests} requests …", file=sys.stderr)
                passes.append(
                    await one_pass(system, transport, submit, officer, bodies, options, left)
                )
        finally:
            await connection.close()
    return passes


async def one_pass(
    system: EmbeddedSystem,
    transport: str,
    submit: Submit,
    officer: Officer,
    bodies: list[dict[str, Any]],
    options: Options,
    unconfirmed: int,
) -> Pass:
    run = Pass(transport, len(bodies))
    ready, stop = asyncio.Event(), asyncio.Event()
    watcher = asyncio.create_task(watch_verified(system.admin_nats_url, run.verified, ready, stop))
    await asyncio.wait([asyncio.create_task(ready.wait()), watcher], return_when="FIRST_COMPLETED")
    if watcher.done():
        watcher.result()  # it failed before its consumer existed: say why
    cpu_before = cpu_of(system)
    await drive(run, submit, officer, bodies, options.concurrency, unconfirmed, options.rate)
    await until_verified(run, options.timeout)
    cpu_after = cpu_of(system)
    stop.set()
    await watcher
    run.cpu_seconds = {name: cpu_after[name] - cpu_before.get(name, 0.0) for name in cpu_after}
    return run


@dataclass(frozen=True)
class Floor:
    messages: int
    publish_seconds: float
    consume_seconds: float

    @property
    def publish_per_second(self) -> float:
        return self.messages / self.publish_seconds

    @property
    def consume_per_second(self) -> float:
        return self.messages / self.consume_seconds


async def consume_pulled(url: str, messages: int, batch: int = 256) -> float:
    """Seconds to fetch and acknowledge `messages` of the floor's stream, as a service's
    durable pull consumer does."""
    connection = await nats.connect(url)
    try:
        js = connection.jetstream()
        subscription = await js.pull_subscribe("fsync.>", durable="capacity", stream=FLOOR_STREAM)
        received = 0
        started = time.perf_counter()
        while received < messages:
            fetched = await subscription.fetch(min(batch, messages - received), timeout=10)
            for message in fetched:
                await message.ack()
            received += len(fetched)
        elapsed = time.perf_counter() - started
        await js.delete_stream(FLOOR_STREAM)
        return elapsed
    finally:
        await connection.close()


def measure_floor(system: EmbeddedSystem, messages: int, window: int) -> Floor:
    publish = asyncio.run(publish_windowed(system.admin_nats_url, messages, window))
    consume = asyncio.run(consume_pulled(system.admin_nats_url, messages))
    return Floor(messages, publish, consume)


@contextlib.contextmanager
def postgres_database() -> Iterator[dict[str, str]]:
    """A database of its own on the machine's PostgreSQL, dropped afterwards: every
    service (and the identity store this process prepares) keeps its schema there.
    The settings go into this process's environment too, for that identity store."""
    import psycopg
    from psycopg.sql import Identifier

    name = f"khidma_capacity_{uuid.uuid4().hex[:12]}"
    admin = {**POSTGRES, "dbname": "test", "autocommit": True}
    with psycopg.connect(**admin) as connection:  # type: ignore[arg-type]
        connection.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(Identifier(name)))
    env = {
        "KHIDMA_STORE": "postgres",
        "KHIDMA_POSTGRES_HOST": POSTGRES["host"],
        "KHIDMA_POSTGRES_PORT": POSTGRES["port"],
        "KHIDMA_POSTGRES_USER": POSTGRES["user"],
        "KHIDMA_POSTGRES_DBNAME": name,
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        with psycopg.connect(**admin) as connection:  # type: ignore[arg-type]
            connection.execute(
                psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(Identifier(name))
            )


def report_lines(
    options: Options, store: str, passes: list[Pass], floor: Floor, memory: dict[str, int | None]
) -> list[str]:
    lines = [
        (
            f"Khidma capacity: {options.requests} complete requests per transport, "
            + (
                f"offered at {options.rate:g} a second"
                if options.rate
                else f"{options.concurrency} at a time"
            )
            + f", {store} stores"
        ),
        (
            f"  {'':6} {'accepted':>9} {'verified':>9} {'accepted/s':>11} {'verified/s':>11} "
            f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'÷ floor':>8}"
        ),
    ]
    for run in passes:
        q = [
            percentile(run.latencies, f) * 1000 if run.latencies else 0.0 for f in (0.5, 0.95, 0.99)
        ]
        lines.append(
            f"  {run.transport:6} {len(run.accepted):9d} {run.verified_here:9d} "
            f"{run.accepted_per_second:11.1f} {run.verified_per_second:11.1f} "
            f"{q[0]:8.1f} {q[1]:8.1f} {q[2]:8.1f} "
            f"{run.verified_per_second / floor.publish_per_second:8.4f}"
        )
    lines += [
        (
            f"raw floor of the same server ({floor.messages} messages of ~1 KB, "
            f"{options.concurrency} in flight):"
        ),
        f"  publish        {floor.publish_per_second:9.0f} msg/s",
        f"  pull consume   {floor.consume_per_second:9.0f} msg/s",
        "  ÷ floor: verified/s over the floor's publish/s",
        "CPU seconds per pass, peak memory (VmHWM):",
        f"  {'':13} " + " ".join(f"{run.transport + ' s':>8}" for run in passes) + "      MiB",
    ]
    for name in passes[0].cpu_seconds:
        kib = memory.get(name)
        lines.append(
            f"  {name:13} "
            + " ".join(f"{run.cpu_seconds.get(name, 0.0):8.2f}" for run in passes)
            + (f" {kib / 1024:8.1f}" if kib else "      n/a")
        )
    for run in passes:
        for refusal in run.refused[:3]:
            lines.append(f"  refused ({run.transport}): {refusal}")
    return lines


def trace_lines(spans: list[ReceivedSpan]) -> list[str]:
    """Where the time goes: each hop's span durations, per service."""
    durations: dict[tuple[str, str], list[float]] = {}
    for span in spans:
        durations.setdefault((span.service or "?", span.name), []).append(span.milliseconds)
    lines = [
        f"traces: {len(spans)} spans, {len({s.trace_id for s in spans})} traces; per hop:",
        f"  {'service':13} {'span':44} {'count':>7} {'p50 ms':>8} {'p99 ms':>8}",
    ]
    for (service, name), values in sorted(durations.items()):
        lines.append(
            f"  {service:13} {name[:44]:44} {len(values):7d} "
            f"{percentile(values, 0.5):8.2f} {percentile(values, 0.99):8.2f}"
        )
    return lines


def measure(
    options: Options, store: str
) -> tuple[list[Pass], Floor, dict[str, int | None], list[ReceivedSpan]]:
    database: contextlib.AbstractContextManager[dict[str, str]] = (
        postgres_database() if store == "postgres" else contextlib.nullcontext({})
    )
    collector: contextlib.AbstractContextManager[Collector | None] = (
        Collector() if options.traces else contextlib.nullcontext()
    )
    with (
        database as env,
        collector as traces,
        tempfile.TemporaryDirectory(prefix="khidma-capacity-") as folder,
    ):
        if traces is not None:
            # Every service sends its spans to the benchmark's own collector; a queue
            # large enough that none is dropped, sent every half second.
            env = {
                **env,
                "OTEL_EXPORTER_OTLP_ENDPOINT": traces.url,
                "OTEL_BSP_SCHEDULE_DELAY": "500",
                "OTEL_BSP_MAX_QUEUE_SIZE": "1000000",
            }
        print(f"starting an embedded system in {folder} ({store}) …", file=sys.stderr)
        with EmbeddedSystem(Path(folder), fixed_ports=False, service_env=env) as system:
            passes = asyncio.run(run_passes(system, options))
            print(f"the raw floor: {options.requests} messages …", file=sys.stderr)
            floor = measure_floor(system, options.requests, options.concurrency)
            memory: dict[str, int | None] = {
                **process_memory(system),
                "benchmark": own_peak_memory(),
            }
        # The services sent what they still held as they stopped.
        spans = traces.spans() if traces is not None else []
    return passes, floor, memory, spans


def own_peak_memory() -> int | None:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


def positive_rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        rate = 0.0
    if not rate > 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a rate above 0 / ليس معدلًا أكبر من 0")
    return rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--output", type=Path, default=Path("bench-results"))
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for the last DataVerified"
    )
    parser.add_argument(
        "--leave-unconfirmed",
        type=int,
        default=0,
        help="requests of the NATS pass the verifier leaves alone (to see the benchmark fail)",
    )
    parser.add_argument(
        "--traces",
        action="store_true",
        help="the services send their spans to a local collector; prints p50/p99 per hop",
    )
    parser.add_argument(
        "--rate",
        type=positive_rate,
        default=None,
        help="offer the submissions at this many a second (an open loop), not N at a time",
    )
    args = parser.parse_args(argv)
    options = Options(
        args.requests,
        args.concurrency,
        args.timeout,
        args.leave_unconfirmed,
        args.traces,
        args.rate,
    )
    passes, floor, memory, spans = measure(options, args.store)
    print("\n".join(report_lines(options, args.store, passes, floor, memory)))
    if options.traces:
        print("\n".join(trace_lines(spans)))
    args.output.mkdir(parents=True, exist_ok=True)
    result = {
        "store": args.store,
        "requests": args.requests,
        "concurrency": args.concurrency,
        "rate": args.rate,
        "passes": {run.transport: run.as_json() for run in passes},
        "floor": {
            "messages": floor.messages,
            "publish_per_second": round(floor.publish_per_second, 1),
            "consume_per_second": round(floor.consume_per_second, 1),
        },
        "verified_over_floor": {
            run.transport: run.verified_per_second / floor.publish_per_second for run in passes
        },
        "peak_memory_kib": memory,
    }
    path = args.output / f"capacity-{args.store}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"written {path}")
    incomplete = [r for r in passes if r.verified_here < r.requests or len(r.accepted) < r.requests]
    for run in incomplete:
        print(
            f"FAILED ({run.transport}): {len(run.accepted)} of {run.requests} accepted, "
            f"{run.verified_here} verified",
            file=sys.stderr,
        )
    return 1 if incomplete else 0


if __name__ == "__main__":
    sys.exit(main())
