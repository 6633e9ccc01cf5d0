"""A batch's rows through a stand-in intake: bounded concurrency, each row's outcome,
the rows' order kept, a row whose submission fails left for the next upload."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from services.channels.adapters.batches import BatchSettings, process
from services.channels.batches.auth import Verified
from services.channels.batches.files import read_batch
from services.channels.batches.jobs import BatchJob, BatchJobs
from services.channels.batches.rows import batch_key
from services.channels.intake import IntakeRefused
from shared.auth import Principal
from shared.policy_loader import load_packs

pytestmark = pytest.mark.unit

POLICIES = Path(__file__).resolve().parent.parent.parent / "policies"
IDS = ["1748526058", "1747938098", "1275253092", "1318561006", "1831671621", "1859820829"]


class StandInIntake:
    def __init__(self) -> None:
        self.in_flight = 0
        self.most = 0
        self.seen: dict[str, int] = {}
        self.tokens: set[str | None] = set()

    def serves(self, channel: str) -> bool:
        return channel == "branch_office"

    async def submit(self, submission: dict[str, Any], *, token: str | None = None) -> dict[str, Any]:
        self.tokens.add(token)
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(0.01)
            national_id = submission["applicant"]["national_id"]
            if national_id == IDS[3]:
                raise httpx.ConnectError("intake is down")
            if national_id == IDS[4]:
                raise IntakeRefused(422, "service_not_found", "No such service.", "لا خدمة.")
            ref = submission["channel_ref"]
            duplicate = ref in self.seen
            self.seen.setdefault(ref, len(self.seen) + 1)
            return {
                "case_ref": f"TXT-1448-{self.seen[ref]:06d}",
                "duplicate": duplicate,
                "access_code": None if duplicate else f"code-{self.seen[ref]}",
                "complete": True,
                "missing": [],
            }
        finally:
            self.in_flight -= 1


def app_with(intake: StandInIntake, concurrency: int) -> Any:
    state = SimpleNamespace(
        packs=load_packs(POLICIES),
        intake=intake,
        batch_settings=BatchSettings(concurrency=concurrency),
    )
    return SimpleNamespace(state=state)


def representative(*associations: str) -> Verified:
    principal = Principal(
        subject="rep-1",
        name="Rep",
        kind="user",
        roles={a: frozenset({"channel:branch_office"}) for a in associations},
        issuer="tests",
    )
    return Verified(principal, "the-representatives-own-token")


async def run_batch(
    app: Any, who: Verified, content: bytes, association_id: str, **kwargs: Any
) -> tuple[str, list[dict[str, Any]]]:
    sheet = read_batch(content, 1000)
    key = batch_key(content, None, who.principal.subject)
    results = await process(app, who, sheet, key=key, association_id=association_id, **kwargs)
    return sheet.kind, results


def batch(count: int) -> bytes:
    lines = ["service_code,national_id,name,level"]
    lines += [f"sewing-training,{IDS[i % len(IDS)]},اسم {i},beginner" for i in range(count)]
    return ("\ufeff" + "\r\n".join(lines) + "\r\n").encode()


async def test_rows_go_at_most_concurrency_at_a_time_and_keep_their_order():
    intake = StandInIntake()
    kind, results = await run_batch(
        app_with(intake, 3), representative("textile-coop"), batch(30), "textile-coop"
    )
    assert kind == "csv"
    assert [r["row"] for r in results] == list(range(2, 32))
    assert intake.most == 3
    # Every row went with the representative's own token: intake records them.
    assert intake.tokens == {"the-representatives-own-token"}


async def test_each_row_gets_its_outcome_and_the_same_batch_again_nothing_new():
    intake = StandInIntake()
    app, who = app_with(intake, 4), representative("textile-coop")
    _, first = await run_batch(app, who, batch(6), "textile-coop")
    by_row = {r["row"]: r for r in first}
    assert by_row[2]["outcome"] == "received" and by_row[2]["access_code"]
    assert by_row[5]["outcome"] == "failed" and by_row[5]["reason_ar"]  # intake unreachable
    assert by_row[6]["outcome"] == "refused" and by_row[6]["error"] == "service_not_found"
    assert by_row[6]["reason_en"] == "No such service." and by_row[6]["reason_ar"] == "لا خدمة."
    _, again = await run_batch(app, who, batch(6), "textile-coop")
    again_by_row = {r["row"]: r for r in again}
    assert again_by_row[2]["outcome"] == "already_received"
    assert again_by_row[2]["case_ref"] == by_row[2]["case_ref"]
    assert again_by_row[2]["access_code"] is None
    assert len(intake.seen) == 4


async def test_rows_outside_the_uploaders_associations_or_the_packs_are_refused():
    intake = StandInIntake()
    _, elsewhere = await run_batch(
        app_with(intake, 2), representative("health-coop"), batch(1), "textile-coop"
    )
    assert elsewhere[0]["error"] == "forbidden"
    _, not_enabled = await run_batch(app_with(intake, 2), representative("sidr"), batch(1), "sidr")
    assert not_enabled[0]["error"] == "channel_not_enabled"
    assert intake.seen == {}


async def test_a_job_counts_its_rows_as_they_end_and_ends_with_the_results():
    intake = StandInIntake()
    app, who = app_with(intake, 2), representative("textile-coop")
    job = BatchJob("b-1", "rep-1", "csv", "batch", rows=6)
    seen_progress: list[int] = []

    def row_done(result: dict[str, Any]) -> None:
        job.row_done(result)
        seen_progress.append(job.progress()["done"])

    jobs = BatchJobs()

    async def work(job: BatchJob) -> list[dict[str, Any]]:
        return (await run_batch(app, who, batch(6), "textile-coop", row_done=row_done))[1]

    jobs.start(job, work)
    assert job.task is not None and not job.finished
    await asyncio.wait_for(job.task, timeout=10)
    assert seen_progress == [1, 2, 3, 4, 5, 6]
    assert job.finished and job.results is not None and len(job.results) == 6
    assert job.progress()["counts"] == {"failed": 1, "received": 4, "refused": 1}


async def test_a_finished_jobs_progress_names_the_rows_not_taken_without_any_secret():
    job = BatchJob("b-4", "rep-1", "csv", "batch", rows=3)
    taken = {"row": 2, "outcome": "received", "case_ref": "TX-1", "access_code": "SECRET-1"}
    refused = {"row": 3, "outcome": "refused", "error": "invalid_national_id",
               "reason_en": "Bad id.", "reason_ar": "رقم غير صحيح.", "national_id": "123"}  # fmt: skip
    failed = {"row": 4, "outcome": "failed", "error": "intake_unreachable",
              "reason_en": "Again.", "reason_ar": "مرة أخرى."}  # fmt: skip
    assert job.progress()["refusals"] == []  # running: nothing yet
    job.results = [taken, refused, failed]
    listed = job.progress()["refusals"]
    assert [r["row"] for r in listed] == [3, 4]
    assert listed[0] == {"row": 3, "outcome": "refused", "error": "invalid_national_id",
                         "reason_en": "Bad id.", "reason_ar": "رقم غير صحيح."}  # fmt: skip
    assert "SECRET-1" not in str(job.progress()) and "123" not in str(listed)


async def test_a_job_is_its_uploaders_alone_and_forgotten_an_hour_after_it_ends():
    now = [1000.0]
    jobs = BatchJobs(keep_seconds=3600, clock=lambda: now[0])

    async def work(job: BatchJob) -> list[dict[str, Any]]:
        return []

    job = jobs.start(BatchJob("b-2", "rep-1", "csv", "batch", rows=0), work)
    assert job.task is not None
    await asyncio.wait_for(job.task, timeout=10)
    assert jobs.of("b-2", "rep-1") is job
    assert jobs.of("b-2", "someone-else") is None
    now[0] += 3599
    assert jobs.of("b-2", "rep-1") is job
    now[0] += 2
    assert jobs.of("b-2", "rep-1") is None


async def test_a_job_whose_work_breaks_says_it_failed():
    jobs = BatchJobs()

    async def work(job: BatchJob) -> list[dict[str, Any]]:
        raise RuntimeError("the disk is gone")

    job = jobs.start(BatchJob("b-3", "rep-1", "csv", "batch", rows=3), work)
    assert job.task is not None
    await asyncio.wait_for(job.task, timeout=10)
    assert job.finished and job.progress()["failed"] is True and job.results is None
