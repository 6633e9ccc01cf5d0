"""Drives cases through the public interfaces of a running Khidma.

Each simulated case is submitted to intake, confirmed by a verification
officer, optionally referred to and answered by the social researcher,
decided by the committee, delivered when approved, and rated by the
applicant, each step through the services' HTTP APIs, waiting for the
system to be ready for the next one as a person would.

    python -m khidma.simulate --cases 50 --mix approved=6,rejected=2,referred=2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx

from khidma.signin import Staff, embedded_staff
from services.surveys.outbound import invitation_links, token_of_link
from shared.roles import (
    ADMIN,
    COMMITTEE_CHAIR,
    COMMITTEE_MEMBER,
    FRONT_DESK,
    RESEARCHER,
    VERIFIER,
)

KINDS = ("approved", "rejected", "referred", "ineligible", "corrected")
# Members present at a simulated sitting: enough for the packs' quorum of three.
COMMITTEE_PRESENT = ("chair", "member-2", "member-3")
DEFAULT_MIX = {"approved": 6, "rejected": 2, "referred": 2, "ineligible": 0, "corrected": 0}


class SimulationError(Exception):
    pass


@dataclass
class Endpoints:
    intake: str
    verification: str
    committee: str
    surveys: str
    identity: str = ""  # the issuer of the tokens (make run's identity service)
    # The surveys' logged outbox: the simulated applicants read the invitation they
    # were sent there, as a real one reads the message on their phone.
    surveys_outbox: str = ""

    @classmethod
    def from_file(cls, path: Path) -> Endpoints:
        """From the endpoints file `make run` writes into its data folder."""
        data = json.loads(path.read_text())
        data.setdefault("surveys_outbox", str(path.parent / "surveys-outbox.jsonl"))
        return cls.from_mapping(data)

    @classmethod
    def from_mapping(cls, data: Mapping[str, str]) -> Endpoints:
        """From a running system's endpoints (`EmbeddedSystem.endpoints()`)."""
        services = ("intake", "verification", "committee", "surveys")
        return cls(
            **{name: data[name] for name in services},
            identity=data.get("identity", ""),
            surveys_outbox=data.get("surveys_outbox", ""),
        )


@dataclass(frozen=True)
class As:
    """Who makes a request: a role (and the committee seat, for a member's own
    vote), or nobody signed in (the applicant with their link)."""

    role: str | None
    seat: str | None = None


APPLICANT = As(None)
CHAIR = "chair"  # the committee seat of the chair in every seed pack


@dataclass
class CaseRun:
    kind: str
    case_id: str = ""
    case_ref: str = ""
    started: float = 0.0
    finished: float = 0.0
    error: str | None = None
    steps: list[str] = field(default_factory=list)
    # Who applied: their national id, name, phone and e-mail (each case its own).
    applicant: dict[str, str] = field(default_factory=dict)
    # A token of this case in each thing staff wrote about the applicant (a referral's
    # reason and question, an override's reason): sealed at rest, never found plain.
    staff_words: list[str] = field(default_factory=list)


@dataclass
class SimulationReport:
    runs: list[CaseRun]
    elapsed: float

    @property
    def completed(self) -> list[CaseRun]:
        return [run for run in self.runs if run.error is None]

    @property
    def failed(self) -> list[CaseRun]:
        return [run for run in self.runs if run.error is not None]

    def summary(self) -> str:
        kinds = Counter(run.kind for run in self.completed)
        lines = [
            (
                f"simulated {len(self.runs)} cases in {self.elapsed:.2f}s: "
                f"{len(self.completed)} completed, {len(self.failed)} failed"
            ),
            "  by kind: " + ", ".join(f"{kind}={kinds[kind]}" for kind in KINDS if kinds[kind]),
        ]
        if self.completed:
            lines.append(f"  full cases per second: {len(self.completed) / self.elapsed:.1f}")
        for run in self.failed[:5]:
            lines.append(f"  failed {run.kind} {run.case_ref or '(not submitted)'}: {run.error}")
        return "\n".join(lines)


def parse_mix(text: str) -> dict[str, int]:
    mix = {kind: 0 for kind in KINDS}
    for part in text.split(","):
        kind, _, weight = part.partition("=")
        if kind.strip() not in mix or not weight.strip().isdigit():
            raise argparse.ArgumentTypeError(
                f"bad mix entry {part!r}: use kind=weight with kinds {', '.join(KINDS)}"
            )
        mix[kind.strip()] = int(weight)
    if not sum(mix.values()):
        raise argparse.ArgumentTypeError("the mix needs at least one positive weight")
    return mix


@dataclass(frozen=True)
class RequestTemplate:
    """A request an association's pack accepts: its service, fields and documents."""

    service_code: str
    channels: tuple[str, ...]
    fields: dict[str, Any]
    documents: tuple[dict[str, Any], ...]
    ineligible_fields: dict[str, Any]
    members_only: bool = False


ID_CARD = {"code": "national_id_card", "number": "ID-1", "expires_on": "2031-01-01"}
# A "corrected" case first attaches a card that had expired: verification asks for a valid one.
EXPIRED_ID_CARD = {**ID_CARD, "expires_on": "2020-01-01"}
TEMPLATES: dict[str, RequestTemplate] = {
    "sidr": RequestTemplate(
        "seedlings",
        ("website", "phone", "interview", "letter"),
        {"planting_site": "Wadi Hanifah", "seedling_count": 40},
        (ID_CARD,),
        {"seedling_count": 900},
    ),
    "health-coop": RequestTemplate(
        "medical-support",
        ("website", "phone", "branch_office"),
        {"diagnosis": "diabetes", "monthly_income": 4500},
        (ID_CARD, {"code": "medical_report", "expires_on": "2030-06-30"}),
        {"monthly_income": 20000},
    ),
    "textile-coop": RequestTemplate(
        "support-request",
        ("website", "branch_office", "help_request"),
        {"family_size": 6, "monthly_income": 3000},
        (ID_CARD,),
        {"monthly_income": 9000},
    ),
    "dumat-bees": RequestTemplate(
        "hive-support",
        ("interview", "phone", "website"),
        {"hive_count": 30},
        (ID_CARD, {"code": "apiary_licence", "expires_on": "2030-01-01"}),
        {"hive_count": 500},
        members_only=True,
    ),
    "elites": RequestTemplate(
        "scholarship",
        ("website", "interview", "social_media"),
        {"gpa": 4.8, "field_of_study": "physics"},
        (ID_CARD, {"code": "transcript"}),
        {"gpa": 3.1},
    ),
}


GIVEN_NAMES = ("فاطمة", "نورة", "عبدالله", "محمد", "سارة", "خالد", "هيفاء", "تركي")
FAMILY_NAMES = ("الزهراني", "القحطاني", "العتيبي", "الشمري", "الدوسري", "الحربي")


def simulated_applicant(rng: random.Random | None = None) -> dict[str, str]:
    """A person as an applicant writes themselves: an Arabic name, a mobile number,
    an e-mail address; each unique, so that a test can look for them anywhere."""
    rng = rng or random.Random()
    serial = rng.randrange(10**6)
    return {
        "national_id": national_id(rng),
        "name": f"{rng.choice(GIVEN_NAMES)} {rng.choice(FAMILY_NAMES)} {serial:06d}",
        "phone": f"05{rng.randrange(10**8):08d}",
        "email": f"applicant.{serial:06d}.{rng.randrange(10**4):04d}@example.org",
    }


def national_id(rng: random.Random | None = None, resident: bool = False) -> str:
    """A random Saudi national id (1…) or iqama (2…) number with a valid check digit."""
    digits = ("2" if resident else "1") + "".join(
        str((rng or random).randint(0, 9)) for _ in range(8)
    )
    total = 0
    for index, char in enumerate(digits):
        value = int(char) * (2 if index % 2 == 0 else 1)
        total += value // 10 + value % 10
    return digits + str((10 - total % 10) % 10)


@dataclass
class Scenario:
    """One case as a person lives it; the end-to-end tests vary these."""

    kind: str
    association_id: str = "sidr"
    incomplete_first: bool = False
    before_decision: Callable[[CaseRun], Awaitable[None]] | None = None
    # The verifier overrides the suggested outcome (choosing "verified"), with a reason.
    overridden: bool = False


def _words(run: CaseRun, what: str) -> str:
    """A token of this case for one thing staff write about its applicant (kept in
    `run.staff_words`: the tests look for it in the data folder's bytes)."""
    token = f"{what}-{uuid4().hex[:12]}"
    run.staff_words.append(token)
    return token


class CaseDriver:
    """The people around one case, acting through the public APIs."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        endpoints: Endpoints,
        *,
        association_id: str = "sidr",
        step_timeout: float = 60.0,
        staff: Staff | None = None,
    ):
        self.client = client
        self.endpoints = endpoints
        self.association_id = association_id
        self.step_timeout = step_timeout
        # Who signs in for each role; None for a system that asks for no token.
        self.staff = staff

    async def run(self, kind: str | Scenario) -> CaseRun:
        scenario = kind if isinstance(kind, Scenario) else Scenario(kind, self.association_id)
        run = CaseRun(kind=scenario.kind, started=time.perf_counter())
        try:
            await self._drive(run, scenario)
        except Exception as error:  # noqa: BLE001 — reported per case; the others go on
            run.error = f"{type(error).__name__}: {error}"
        run.finished = time.perf_counter()
        return run

    async def _drive(self, run: CaseRun, scenario: Scenario) -> None:
        kind = run.kind
        association = scenario.association_id
        template = TEMPLATES[association]
        run.applicant = simulated_applicant()
        applicant_id = run.applicant["national_id"]
        if template.members_only:
            await self._put(
                As(ADMIN),
                f"{self.endpoints.verification}/members/{association}/{applicant_id}",
                {
                    "name": run.applicant["name"],
                    "joined_on": "2020-01-01",
                    "status": "good",
                    "status_since": "2020-01-01",
                },
            )
        fields = {**template.fields, **(template.ineligible_fields if kind == "ineligible" else {})}
        attestation = {
            "attested": True,
            "method": "in_person",
            "attested_by": run.applicant["name"],
        }
        held_back = next(iter(fields)) if scenario.incomplete_first else None
        submitted = await self._post(
            As(FRONT_DESK),
            f"{self.endpoints.intake}/submissions",
            {
                "association_id": association,
                "channel": random.choice(template.channels),
                "channel_ref": f"sim-{uuid4()}",
                "service_code": template.service_code,
                "applicant": run.applicant,
                "fields": {k: v for k, v in fields.items() if k != held_back},
                "documents": [
                    EXPIRED_ID_CARD if kind == "corrected" and d is ID_CARD else d
                    for d in template.documents
                ],
                **({} if held_back else {"attestation": attestation}),
            },
            expect=(201,),
        )
        run.case_id, run.case_ref = submitted["case_id"], submitted["case_ref"]
        run.steps.append("submitted")
        case_id = run.case_id
        if held_back:
            if submitted.get("complete") or not submitted.get("missing"):
                raise SimulationError(f"{run.case_ref} should have been incomplete")
            await self._post(
                As(FRONT_DESK),
                f"{self.endpoints.intake}/cases/{case_id}/information",
                {"fields": {held_back: fields[held_back]}, "attestation": attestation},
            )
            run.steps.append("completed later")

        if kind == "referred":
            reason, question = _words(run, "reason"), _words(run, "question")
            await self._post(
                As(FRONT_DESK),
                f"{self.endpoints.intake}/cases/{case_id}/referral",
                {
                    "reason": f"The procedure is unclear to the applicant ({reason})",
                    "questions": [f"Which documents? ({question})"],
                    "referred_by": "officer-1",
                },
            )
            run.steps.append("referred")

        verification = await self._wait_for(
            As(VERIFIER), f"{self.endpoints.verification}/verifications/{case_id}"
        )
        suggested = verification.get("suggested_outcome")
        confirmation: dict[str, Any] = {"officer": "officer-2"}
        if scenario.overridden and suggested != "verified":
            reason = _words(run, "override")
            confirmation.update(
                outcome="verified", reason=f"Seen the papers at the branch ({reason})"
            )
        await self._post(
            As(VERIFIER),
            f"{self.endpoints.verification}/verifications/{case_id}/confirmation",
            confirmation,
        )
        run.steps.append(
            f"verified:{suggested}" + (" overridden" if "reason" in confirmation else "")
        )

        if kind == "corrected":
            await self._wait_for(
                As(FRONT_DESK),
                f"{self.endpoints.intake}/cases/{case_id}",
                lambda doc: doc.get("status") == "discrepancies" and bool(doc.get("corrections")),
            )
            await self._post(
                As(FRONT_DESK),
                f"{self.endpoints.intake}/cases/{case_id}/corrections",
                {"documents": [ID_CARD], "attestation": attestation},
            )
            run.steps.append("corrected")
            await self._wait_for(
                As(VERIFIER),
                f"{self.endpoints.verification}/verifications/{case_id}",
                lambda doc: doc.get("revision") == 2,
            )
            await self._post(
                As(VERIFIER),
                f"{self.endpoints.verification}/verifications/{case_id}/confirmation",
                {"officer": "officer-2", "revision": 2},
            )
            run.steps.append("verified again")

        if kind == "referred":
            await self._wait_for(
                As(RESEARCHER),
                f"{self.endpoints.committee}/cases/{case_id}",
                lambda doc: bool(doc.get("referral_open")),
            )
            await self._post(
                As(RESEARCHER),
                f"{self.endpoints.committee}/referrals/{case_id}/closure",
                {
                    "researcher": "researcher-1",
                    "answers": ["Only the ID is needed"],
                    "note": "Explained the procedure.",
                },
            )
            run.steps.append("researched")

        approve = kind in ("approved", "referred", "corrected")
        # An approval needs the verification of the latest revision, which reaches
        # the committee a moment after the officer confirms it.
        await self._wait_for(
            As(COMMITTEE_CHAIR, seat=CHAIR),
            f"{self.endpoints.committee}/cases/{case_id}",
            lambda doc: (
                doc.get("verification_outcome") == "verified"
                if approve
                else doc.get("verification_outcome") is not None
            ),
        )
        if scenario.before_decision:
            await scenario.before_decision(run)
        sitting = await self._post(
            As(COMMITTEE_CHAIR, seat=CHAIR),
            f"{self.endpoints.committee}/sittings",
            {"association_id": association, "members_present": list(COMMITTEE_PRESENT)},
        )
        sitting_case = (
            f"{self.endpoints.committee}/sittings/{sitting['sitting_id']}/cases/{case_id}"
        )
        for member in COMMITTEE_PRESENT:
            await self._post(
                As(COMMITTEE_MEMBER, seat=member),
                f"{sitting_case}/votes",
                {"member": member, "vote": "approve" if approve else "reject"},
            )
        await self._post(
            As(COMMITTEE_CHAIR, seat=CHAIR),
            f"{sitting_case}/decision",
            {
                "decision": "approved" if approve else "rejected",
                "reasons": ["Meets the criteria" if approve else "Does not meet the criteria"],
            },
        )
        run.steps.append("decided")

        if approve:
            await self._wait_for(
                As(FRONT_DESK),
                f"{self.endpoints.intake}/cases/{case_id}",
                lambda doc: doc.get("status") == "approved",
            )
            await self._post(
                As(FRONT_DESK),
                f"{self.endpoints.intake}/cases/{case_id}/delivery",
                {"delivered": "One food basket", "delivered_by": "officer-1"},
            )
            run.steps.append("delivered")

        token = await self._invitation_token(case_id)
        await self._post(
            APPLICANT,
            f"{self.endpoints.surveys}/surveys/{token}/answers",
            {
                "ratings": {
                    "satisfaction": random.randint(3, 5),
                    "recommend": random.randint(6, 10),
                },
                "comment": None,
            },
        )
        run.steps.append("surveyed")

    async def _headers(self, who: As) -> dict[str, str]:
        if self.staff is None or who.role is None:
            return {}
        return await self.staff.headers(who.role, seat=who.seat)

    async def _post(
        self, who: As, url: str, body: dict[str, Any], expect: tuple[int, ...] = (200, 201, 202)
    ) -> Any:
        response = await self.client.post(url, json=body, headers=await self._headers(who))
        if response.status_code not in expect:
            raise SimulationError(f"POST {url} -> {response.status_code} {response.text[:300]}")
        return response.json()

    async def _put(self, who: As, url: str, body: dict[str, Any]) -> Any:
        response = await self.client.put(url, json=body, headers=await self._headers(who))
        if response.status_code != 200:
            raise SimulationError(f"PUT {url} -> {response.status_code} {response.text[:300]}")
        return response.json()

    async def _invitation_token(self, case_id: str) -> str:
        """The survey token in the link the applicant was sent (the logged outbox)."""
        outbox = Path(self.endpoints.surveys_outbox)
        deadline = time.monotonic() + self.step_timeout
        while time.monotonic() < deadline:
            link = invitation_links(outbox).get(case_id)
            if link:
                return token_of_link(link)
            await asyncio.sleep(0.1)
        raise SimulationError(f"no invitation for {case_id} in {outbox} after {self.step_timeout}s")

    async def _wait_for(
        self, who: As, url: str, ready: Callable[[dict[str, Any]], bool] = lambda doc: True
    ) -> dict[str, Any]:
        deadline = time.monotonic() + self.step_timeout
        pause = 0.01
        while time.monotonic() < deadline:
            response = await self.client.get(url, headers=await self._headers(who))
            if response.status_code == 200:
                doc = response.json()
                if ready(doc):
                    return doc
            elif response.status_code != 404:
                raise SimulationError(f"GET {url} -> {response.status_code} {response.text[:300]}")
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, 0.2)
        raise SimulationError(f"timed out after {self.step_timeout}s waiting on {url}")


def plan(cases: int, mix: dict[str, int], seed: int | None = None) -> list[str]:
    """Which kind each case is: the mix's weights, spread evenly, then shuffled."""
    total = sum(mix.values())
    kinds: list[str] = []
    for kind in KINDS:
        kinds += [kind] * (cases * mix.get(kind, 0) // total)
    weighted = [kind for kind in KINDS for _ in range(mix.get(kind, 0))]
    while len(kinds) < cases:
        kinds.append(weighted[len(kinds) % len(weighted)])
    random.Random(seed).shuffle(kinds)
    return kinds


async def simulate(
    endpoints: Endpoints,
    kinds: list[str],
    *,
    concurrency: int = 16,
    association_id: str = "sidr",
    step_timeout: float = 60.0,
    progress: Callable[[int, int], Awaitable[None] | None] | None = None,
    identity_store: Path | None = None,
) -> SimulationReport:
    """Drives the cases; the staff sign in at `endpoints.identity`, their accounts
    prepared in the identity store of the data folder `identity_store`."""
    limits = httpx.Limits(
        max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2
    )
    semaphore = asyncio.Semaphore(concurrency)
    done = 0
    async with httpx.AsyncClient(timeout=30.0, limits=limits) as client:
        staff = (
            embedded_staff(identity_store, endpoints.identity, client)
            if identity_store is not None and endpoints.identity
            else None
        )
        driver = CaseDriver(
            client,
            endpoints,
            association_id=association_id,
            step_timeout=step_timeout,
            staff=staff,
        )

        async def one(kind: str) -> CaseRun:
            nonlocal done
            async with semaphore:
                run = await driver.run(kind)
            done += 1
            if progress:
                result = progress(done, len(kinds))
                if asyncio.iscoroutine(result):
                    await result
            return run

        started = time.perf_counter()
        runs = await asyncio.gather(*(one(kind) for kind in kinds))
        return SimulationReport(list(runs), time.perf_counter() - started)


def print_progress(done: int, total: int) -> None:
    if done == total or done % max(1, total // 20) == 0:
        print(
            f"\r  {done}/{total} cases",
            end="\n" if done == total else "",
            file=sys.stderr,
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Drive simulated cases through a running Khidma.")
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument(
        "--mix",
        type=parse_mix,
        default=DEFAULT_MIX,
        help="e.g. approved=6,rejected=2,referred=2,ineligible=1,corrected=1",
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--association", default="sidr", choices=sorted(TEMPLATES))
    parser.add_argument(
        "--endpoints", type=Path, default=Path("data/endpoints.json"), help="written by `make run`"
    )
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    if not args.endpoints.exists():
        print(
            f"{args.endpoints} not found: start the system with `make run` first.", file=sys.stderr
        )
        return 2
    endpoints = Endpoints.from_file(args.endpoints)
    kinds = plan(args.cases, args.mix, args.seed)
    report = asyncio.run(
        simulate(
            endpoints,
            kinds,
            concurrency=args.concurrency,
            association_id=args.association,
            progress=print_progress,
            identity_store=args.endpoints.parent,
        )
    )
    print(report.summary())
    return 0 if not report.failed else 1


if __name__ == "__main__":
    sys.exit(main())
