"""`make chaos`: simulated cases while services are killed and NATS is restarted.

Starts an embedded system in a temporary folder and drives cases through it with the
simulator's CaseDriver, whose people retry as a real adapter does (the same request
again: the same channel_ref, so a submission is one request however often it is sent).
Meanwhile it kills (-9) a random service, or the NATS server, at evenly spaced points
of the run and lets the runner's supervisor start it again. Then it checks:

- every step a client saw succeed has its integration event on the stream exactly once
  (no event lost, none twice, no event id twice);
- no case is stuck: each reached the end of its plan (the survey answered), or stopped
  where the plan waits for a person, the system having done its part (held);
- `python -m audit crosscheck`, `verify` and `compliance` are clean.

    python -m khidma.chaos --cases 300 --kills 6
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from audit.replay import replay_stream
from khidma.processes import PROJECT_ROOT
from khidma.run import EmbeddedSystem
from khidma.signin import embedded_staff
from khidma.simulate import (
    DEFAULT_MIX,
    As,
    CaseDriver,
    CaseRun,
    Endpoints,
    SimulationError,
    parse_mix,
    plan,
)
from khidma.supervise import RestartPolicy
from shared.roles import COMMITTEE_CHAIR, FRONT_DESK, VERIFIER

# The integration event each step of a plan publishes (the simulator's step names).
STEP_EVENTS = {
    "submitted": "RequestReceived",
    "corrected": "RequestReceived",
    "referred": "ReferredToResearcher",
    "verified": "DataVerified",
    "verified again": "DataVerified",
    "decided": "CommitteeDecided",
    "delivered": "ServiceDelivered",
    "surveyed": "SurveyAnswered",
}
# Every plan ends with the applicant's answer to the survey.
END_STEP = "surveyed"
# An answer is anonymous by default: on the stream it names no case (decision 16).
ANONYMOUS_EVENT = "SurveyAnswered"
# The services the simulated people's requests meet; any of them, or NATS, is killed.
VICTIMS = ("intake", "verification", "committee", "surveys", "identity")
# The requests a person makes in each kind of case (the simulator's plans): the kills
# are spread over the run by how many of them have been answered.
REQUESTS_PER_CASE = {"approved": 9, "rejected": 8, "referred": 11, "ineligible": 8, "corrected": 11}
AUDIT_COMMANDS = (("crosscheck", "--grace-minutes", "0"), ("verify",), ("compliance",))


def chaos_policy() -> RestartPolicy:
    """Quick restarts, and kills on purpose are not a service that cannot start."""
    return RestartPolicy(first_delay=0.3, max_delay=2.0, max_failures=20, window=60)


class RetryingDriver(CaseDriver):
    """The simulator's people, retrying as an adapter does while a service is down:
    the same request again until the step's time is up. A retried POST that is
    refused (409) after an attempt whose answer was lost is taken as done: the lost
    attempt was the one that counted, as the stream will tell."""

    # Requests sent again (a connection error, a 5xx), and answered, over all cases.
    retries = 0
    answered = 0

    async def _retrying(self, send: Any) -> httpx.Response:
        deadline = time.monotonic() + self.step_timeout
        pause, ambiguous = 0.2, False
        while True:
            response: httpx.Response | None = None
            try:
                response = await send()
            except httpx.TransportError as error:
                # A request whose connection broke after sending may have landed.
                ambiguous = ambiguous or not isinstance(error, httpx.ConnectError)
            if response is not None and response.status_code < 500:
                if ambiguous and response.status_code == 409:
                    return httpx.Response(200, json={"retried": True})
                return response
            if time.monotonic() > deadline:
                raise SimulationError(f"no answer within {self.step_timeout}s")
            RetryingDriver.retries += 1
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, 2.0)

    async def _headers(self, who: As) -> dict[str, str]:
        deadline = time.monotonic() + self.step_timeout
        while True:
            try:
                return await super()._headers(who)
            except (httpx.TransportError, RuntimeError):  # the identity service is down
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)

    async def _post(
        self, who: As, url: str, body: dict[str, Any], expect: tuple[int, ...] = (200, 201, 202)
    ) -> Any:
        async def send() -> httpx.Response:
            return await self.client.post(url, json=body, headers=await self._headers(who))

        response = await self._retrying(send)
        RetryingDriver.answered += 1
        # A submission sent again is answered 200 with the same case (channel_ref).
        if response.status_code not in (*expect, 200):
            raise SimulationError(f"POST {url} -> {response.status_code} {response.text[:300]}")
        return response.json()

    async def _put(self, who: As, url: str, body: dict[str, Any]) -> Any:
        async def send() -> httpx.Response:
            return await self.client.put(url, json=body, headers=await self._headers(who))

        response = await self._retrying(send)
        if response.status_code != 200:
            raise SimulationError(f"PUT {url} -> {response.status_code} {response.text[:300]}")
        return response.json()

    async def _wait_for(self, who: As, url: str, ready: Any = lambda doc: True) -> dict[str, Any]:
        deadline = time.monotonic() + self.step_timeout
        while time.monotonic() < deadline:
            try:
                response = await self.client.get(url, headers=await self._headers(who))
            except httpx.TransportError:
                response = None
            if response is None or response.status_code >= 500:
                RetryingDriver.retries += 1
            if response is not None and response.status_code == 200:
                doc: dict[str, Any] = response.json()
                if ready(doc):
                    return doc
            elif (
                response is not None
                and response.status_code not in (404,)
                and (response.status_code < 500)
            ):
                raise SimulationError(f"GET {url} -> {response.status_code}")
            await asyncio.sleep(0.2)
        raise SimulationError(f"timed out after {self.step_timeout}s waiting on {url}")


@dataclass
class ChaosReport:
    cases: int = 0
    completed: int = 0
    kills: Counter[str] = field(default_factory=Counter)
    nats_restarts: int = 0
    retries: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    audit: dict[str, str] = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.stuck) and all(
            result == "clean" for result in self.audit.values()
        )

    def lines(self) -> list[str]:
        kills = ", ".join(f"{name}={count}" for name, count in sorted(self.kills.items()))
        lines = [
            f"chaos: {self.cases} cases in {self.elapsed:.1f}s",
            f"  kills           {sum(self.kills.values())} ({kills or 'none'})",
            f"  NATS restarts   {self.nats_restarts}",
            f"  client retries  {self.retries} (requests sent again: no connection, or a 5xx)",
            (
                f"  cases           {self.cases}: {self.completed} to the end, "
                f"{len(self.held)} held where a person acts next, {len(self.stuck)} stuck"
            ),
            f"  lost            {len(self.lost)}",
            f"  duplicated      {len(self.duplicated)}",
            *(f"  audit {name:11} {result}" for name, result in self.audit.items()),
        ]
        for kind, items in (("lost", self.lost), ("duplicated", self.duplicated)):
            lines += [f"  {kind}: {item}" for item in items[:10]]
        lines += [f"  stuck: {item}" for item in self.stuck[:10]]
        lines.append("clean / سليم" if self.clean else "NOT CLEAN / غير سليم")
        return lines


async def _wait_restarted(system: EmbeddedSystem, name: str, before: int) -> None:
    supervisor = system.supervisor
    assert supervisor is not None
    deadline = time.monotonic() + 60
    while supervisor.restarts.get(name, 0) <= before and time.monotonic() < deadline:
        await asyncio.sleep(0.1)


async def _kill(system: EmbeddedSystem, name: str) -> None:
    """kill -9 of one child; returns once the supervisor has it running again."""
    supervisor = system.supervisor
    assert supervisor is not None
    child = system.nats if name == "nats" else system.services[name]
    pid = child.process.pid if child and child.process else None
    if pid is None:
        return
    before = supervisor.restarts.get(name, 0)
    os.kill(pid, signal.SIGKILL)
    await _wait_restarted(system, name, before)


async def _chaos(
    system: EmbeddedSystem,
    schedule: list[str],
    requests: int,
    done: asyncio.Event,
    report: ChaosReport,
) -> None:
    """Each kill when the share of the people's requests answered reaches its point
    of the run (the rest at once, should the cases end first)."""
    for index, victim in enumerate(schedule):
        point = (index + 1) * requests // (len(schedule) + 1)
        while RetryingDriver.answered < point and not done.is_set():
            await asyncio.sleep(0.05)
        await _kill(system, victim)
        if victim == "nats":
            report.nats_restarts += 1
        else:
            report.kills[victim] += 1


def _schedule(
    kills: int, nats_restarts: int, rng: random.Random, among: tuple[str, ...] = VICTIMS
) -> list[str]:
    victims = [rng.choice(among) for _ in range(kills)] + ["nats"] * nats_restarts
    rng.shuffle(victims)
    return victims


async def _drive(
    system: EmbeddedSystem, kinds: list[str], args: argparse.Namespace, report: ChaosReport
) -> list[CaseRun]:
    endpoints = Endpoints.from_mapping(system.endpoints())
    done = asyncio.Event()
    semaphore = asyncio.Semaphore(args.concurrency)
    limits = httpx.Limits(max_connections=args.concurrency * 2)
    async with httpx.AsyncClient(timeout=20.0, limits=limits) as client:
        staff = embedded_staff(system.data_dir, endpoints.identity, client)
        driver = RetryingDriver(client, endpoints, step_timeout=args.step_timeout, staff=staff)

        async def one(kind: str) -> CaseRun:
            async with semaphore:
                return await driver.run(kind)

        schedule = _schedule(
            args.kills, args.nats_restarts, random.Random(args.seed), tuple(args.victims)
        )
        requests = sum(REQUESTS_PER_CASE[kind] for kind in kinds)
        RetryingDriver.retries = RetryingDriver.answered = 0
        chaos = asyncio.ensure_future(_chaos(system, schedule, requests, done, report))
        runs = list(await asyncio.gather(*(one(kind) for kind in kinds)))
        done.set()
        await chaos
        report.retries = RetryingDriver.retries
        await _classify_unfinished(driver, runs, report)
        return runs


def _awaited(driver: CaseDriver, run: CaseRun) -> Awaitable[Any] | None:
    """What the system owes a case that stopped after its last step: the plan's next
    wait point (then a person acts). None when a person acts next at once."""
    endpoints, case = driver.endpoints, run.case_id
    last = run.steps[-1]
    verification = f"{endpoints.verification}/verifications/{case}"
    committee = f"{endpoints.committee}/cases/{case}"
    intake = f"{endpoints.intake}/cases/{case}"
    chair = As(COMMITTEE_CHAIR, seat="chair")
    approve = run.kind in ("approved", "referred", "corrected")
    if last == "submitted" and run.kind == "referred":
        return None
    if last in ("submitted", "referred"):
        return driver._wait_for(As(VERIFIER), verification)
    if last.startswith("verified:") and run.kind == "corrected":
        return driver._wait_for(As(FRONT_DESK), intake, lambda doc: bool(doc.get("corrections")))
    if last.startswith("verified:") and run.kind == "referred":
        return driver._wait_for(chair, committee, lambda doc: bool(doc.get("referral_open")))
    if last == "corrected":
        return driver._wait_for(As(VERIFIER), verification, lambda doc: doc.get("revision") == 2)
    if last.startswith("verified") or last == "researched":
        return driver._wait_for(
            chair, committee, lambda doc: doc.get("verification_outcome") is not None
        )
    if last == "decided" and approve:
        return driver._wait_for(As(FRONT_DESK), intake, lambda doc: doc.get("status") == "approved")
    return driver._invitation_token(case)


async def _classify_unfinished(
    driver: CaseDriver, runs: list[CaseRun], report: ChaosReport
) -> None:
    """A case that did not reach the end is held when the system did its part (a person
    is next), stuck when the system still owes it something."""
    driver.step_timeout = 15.0
    for run in runs:
        if END_STEP in run.steps:
            continue
        label = (
            f"{run.kind} {run.case_ref or '(not submitted)'} after {run.steps or '-'}: {run.error}"
        )
        if not run.steps:
            report.stuck.append(label)
            continue
        owed = _awaited(driver, run)
        try:
            if owed is not None:
                await owed
        except SimulationError:
            report.stuck.append(label)
            continue
        report.held.append(label)


def _event_of(step: str) -> str:
    return STEP_EVENTS.get(step) or STEP_EVENTS.get(step.split(":")[0], "")


def check_stream(runs: list[CaseRun], records: list[Any], report: ChaosReport) -> None:
    """Each step a client saw succeed has its event on the stream exactly once."""
    seen: Counter[tuple[str, str]] = Counter()
    ids: Counter[str] = Counter()
    for record in records:
        if record.event is None:
            report.duplicated.append(f"undecodable message at {record.sequence}: {record.error}")
            continue
        ids[str(record.event.event_id)] += 1
        case = "" if record.event.event_type == ANONYMOUS_EVENT else str(record.event.case_id)
        seen[(case, record.event.event_type)] += 1
    report.duplicated += [f"event {eid} {n} times" for eid, n in ids.items() if n > 1]
    required: Counter[tuple[str, str]] = Counter()
    # A case that stopped may have had its step in progress land: one more allowed.
    allowance: Counter[tuple[str, str]] = Counter()
    for run in runs:
        for step in run.steps:
            event = _event_of(step)
            if event:
                required[("" if event == ANONYMOUS_EVENT else run.case_id, event)] += 1
        if run.error is not None:
            for event in set(STEP_EVENTS.values()):
                allowance[("" if event == ANONYMOUS_EVENT else run.case_id, event)] = 1
        if not run.case_id and run.error is not None:
            allowance[("", "RequestReceived")] += 1
    for key in set(required) | set(seen):
        case, event = key
        if seen[key] < required[key]:
            report.lost.append(
                f"{event} of {case or 'the answers'}: {seen[key]} of {required[key]}"
            )
        elif seen[key] > required[key] + allowance[key] and case:
            report.duplicated.append(f"{event} of {case}: {seen[key]}, expected {required[key]}")
        elif not case and seen[key] > required[key] + allowance[key]:
            report.duplicated.append(f"{event}: {seen[key]}, expected {required[key]}")


def run_audit(system: EmbeddedSystem, settle: float = 60.0) -> dict[str, str]:
    """The auditors' three checks, each retried until clean while the relays catch up."""
    env = {
        **os.environ,
        "KHIDMA_DATA_DIR": str(system.data_dir),
        "KHIDMA_NATS_URL": system.admin_nats_url,
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    results = {}
    deadline = time.monotonic() + settle
    for command in AUDIT_COMMANDS:
        while True:
            done = subprocess.run(
                [sys.executable, "-m", "audit", *command],
                cwd=PROJECT_ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if done.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(2.0)
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        results[command[0]] = "clean" if done.returncode == 0 else " | ".join(tail)
    return results


def run_chaos(args: argparse.Namespace, folder: Path) -> ChaosReport:
    report = ChaosReport(cases=args.cases)
    started = time.perf_counter()
    kinds = plan(args.cases, args.mix, seed=args.seed)
    with EmbeddedSystem(folder, fixed_ports=False, restart_policy=chaos_policy) as system:
        print(f"driving {args.cases} cases, {args.kills} kills …", file=sys.stderr)
        runs = asyncio.run(_drive(system, kinds, args, report))
        report.completed = sum(1 for run in runs if END_STEP in run.steps)
        drove = time.perf_counter()
        report.audit = run_audit(system)
        print(
            f"drove the cases in {drove - started:.1f}s, audited in {time.perf_counter() - drove:.1f}s",
            file=sys.stderr,
        )
        records = list(replay_stream(system.admin_nats_url, idle_timeout=1.0))
        check_stream(runs, records, report)
    report.elapsed = time.perf_counter() - started
    return report


def parser() -> argparse.ArgumentParser:
    parsed = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parsed.add_argument("--cases", type=int, default=100)
    parsed.add_argument("--kills", type=int, default=5, help="services killed with -9")
    parsed.add_argument(
        "--nats-restarts", type=int, default=None, help="default: one per five kills, at least 1"
    )
    parsed.add_argument(
        "--victims",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        default=list(VICTIMS),
        help=f"the services killed, comma-separated (default {','.join(VICTIMS)})",
    )
    parsed.add_argument("--concurrency", type=int, default=16)
    parsed.add_argument("--mix", type=parse_mix, default=DEFAULT_MIX)
    parsed.add_argument("--seed", type=int, default=1)
    parsed.add_argument("--step-timeout", type=float, default=120.0)
    parsed.add_argument("--data-dir", type=Path, default=None, help="default: a temporary one")
    return parsed


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.nats_restarts is None:
        args.nats_restarts = max(1, args.kills // 5)
    if args.data_dir:
        report = run_chaos(args, args.data_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="khidma-chaos-") as folder:
            report = run_chaos(args, Path(folder))
    print("\n".join(report.lines()))
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
