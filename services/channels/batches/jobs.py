"""Batches that run after their upload is answered: each one's progress, row by row,
and its result file once every row has its outcome.

A job is its uploader's alone (another caller is told there is no such batch), and
lives in this process's memory only: the result holds the secret codes, so it is
never written anywhere, and it is forgotten `keep_seconds` after the batch ends
(or when the service stops: the uploader then uploads again, and the rows already
received are answered without being repeated).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from services.channels.batches.files import Kind

log = logging.getLogger(__name__)
# The rows not taken that a finished batch's progress names with their reasons (the
# web page's summary); the result file names them all.
REFUSALS_LISTED = 100
NOT_TAKEN = ("refused", "failed")


@dataclass
class BatchJob:
    id: str
    owner: str  # the uploader's subject
    kind: Kind
    stem: str  # the result file's name, before `-results.<kind>`
    rows: int
    done: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    results: list[dict[str, Any]] | None = None
    failure: str | None = None  # the batch stopped (not a row): why, for the log
    ended_at: float | None = None
    task: asyncio.Task[None] | None = None

    @property
    def finished(self) -> bool:
        return self.results is not None or self.failure is not None

    def row_done(self, result: dict[str, Any]) -> None:
        self.done += 1
        outcome = str(result.get("outcome", "failed"))
        self.counts[outcome] = self.counts.get(outcome, 0) + 1

    def progress(self) -> dict[str, Any]:
        return {
            "batch": self.id,
            "rows": self.rows,
            "done": self.done,
            "counts": dict(sorted(self.counts.items())),
            "finished": self.finished,
            "failed": self.failure is not None,
            "refusals": self.refusals(),
        }

    def refusals(self) -> list[dict[str, Any]]:
        """The first rows not taken, once finished: their number and reason, and nothing
        of what was sent or of a secret code, so that a page can show them."""
        kept = ("row", "outcome", "error", "reason_en", "reason_ar")
        not_taken = (r for r in self.results or () if r.get("outcome") in NOT_TAKEN)
        return [{k: r.get(k) for k in kept} for _, r in zip(range(REFUSALS_LISTED), not_taken)]


Work = Callable[[BatchJob], Awaitable[list[dict[str, Any]]]]


class BatchJobs:
    """The batches of this process, by id; the ended ones kept `keep_seconds`."""

    def __init__(self, keep_seconds: float = 3600.0, clock: Callable[[], float] = time.monotonic):
        self.keep_seconds = keep_seconds
        self.clock = clock
        self._jobs: dict[str, BatchJob] = {}

    def start(self, job: BatchJob, work: Work) -> BatchJob:
        self.forget_old()
        self._jobs[job.id] = job

        async def run() -> None:
            try:
                job.results = await work(job)
            except Exception as error:  # the job says it failed; the log says why
                job.failure = type(error).__name__
                log.exception("batch %s stopped after %d of %d rows", job.id, job.done, job.rows)
            finally:
                job.ended_at = self.clock()

        job.task = asyncio.create_task(run(), name=f"batch {job.id}")
        return job

    def of(self, batch_id: str, owner: str) -> BatchJob | None:
        """The uploader's batch, or None (unknown, forgotten, or another's)."""
        self.forget_old()
        job = self._jobs.get(batch_id)
        return job if job is not None and job.owner == owner else None

    def forget_old(self) -> None:
        now = self.clock()
        for batch_id, job in list(self._jobs.items()):
            if job.ended_at is not None and now - job.ended_at > self.keep_seconds:
                del self._jobs[batch_id]

    async def stop(self) -> None:
        tasks = [job.task for job in self._jobs.values() if job.task and not job.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def new_job_id() -> str:
    return "b-" + secrets.token_urlsafe(12)
