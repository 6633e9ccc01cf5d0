"""Branch-office batches: a representative uploads the requests captured offline
(`POST /batches`, CSV or XLSX) and gets back the per-row result file.

The representative's own bearer token must hold `channel:branch_office` or
`front_desk` in each row's association, and the association's pack must enable the
branch office. Each row goes to intake with the representative's own token, so the
case's history names the representative who captured it, with `channel_ref` the
digest of the batch (its file, or the representative's batch id) and the row's
number: uploading the same batch again creates nothing twice (intake answers the
cases it already has, without their secret codes, given once).

A long batch is sent with `Prefer: respond-async`: the upload is answered at once
(202, the batch's id), `GET /batches/{id}` says how many rows are done, and
`GET /batches/{id}/result` gives the result file when all are. Without it the
upload is answered with the result file itself.

The result file holds the secret codes: it is answered to the uploader, held in
memory only until then (services/channels/batches/jobs.py), and written nowhere;
the log says only how many rows went which way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, File, Form, Header, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from opentelemetry.trace import SpanKind
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.channels.batches.auth import Verified, VerifiedCaller
from services.channels.batches.files import (
    CSV_MEDIA_TYPE,
    XLSX_MEDIA_TYPE,
    Sheet,
    read_batch,
    write_result,
)
from services.channels.batches.jobs import BatchJob, BatchJobs, new_job_id
from services.channels.batches.rows import (
    CHANNEL,
    RowUnreadable,
    batch_key,
    channel_ref,
    submission_of,
)
from services.channels.intake import IntakeRefused
from services.channels.main import enabled
from shared import tracing
from shared.errors import Invalid, NotFound, Refused
from shared.roles import FRONT_DESK, channel_role
from shared.settings import load_settings

log = logging.getLogger(__name__)
router = APIRouter(tags=["branch office"])


class BatchSettings(BaseSettings):
    """`KHIDMA_BATCHES_*`: how many rows go to intake at once, and the limits of a batch."""

    model_config = SettingsConfigDict(env_prefix="KHIDMA_BATCHES_", extra="ignore")

    concurrency: int = Field(default=16, ge=1, le=256)
    max_rows: int = Field(default=20_000, ge=1)
    max_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    # How long an ended batch's result waits for its uploader (in memory only).
    keep_seconds: float = Field(default=3600.0, gt=0)


# Read when the service assembles its adapters: an invalid value stops it at once,
# naming the variable (shared.settings.load_settings).
SETTINGS = load_settings(BatchSettings)


def batch_settings(app: FastAPI) -> BatchSettings:
    found: BatchSettings = getattr(app.state, "batch_settings", None) or SETTINGS
    return found


def batch_jobs(app: FastAPI) -> BatchJobs:
    found: BatchJobs | None = getattr(app.state, "batch_jobs", None)
    if found is None:
        found = app.state.batch_jobs = BatchJobs(batch_settings(app).keep_seconds)
    return found


def _too_big(limit: int) -> Invalid:
    return Invalid(
        "batch_too_large",
        f"The file is larger than {limit} bytes: split the batch.",
        f"الملف أكبر من {limit} بايت: قسّم الدفعة.",
    )


def _not_yours(association_id: str) -> dict[str, str]:
    return {
        "error": "forbidden",
        "reason_en": f"You may not submit for {association_id}: it needs the role "
        f"{channel_role(CHANNEL)} or {FRONT_DESK} there.",
        "reason_ar": f"لا يحق لك تقديم طلبات لـ{association_id}: يتطلب ذلك الدور "
        f"{channel_role(CHANNEL)} أو {FRONT_DESK} فيها.",
    }


def _not_enabled(association_id: str) -> dict[str, str]:
    return {
        "error": "channel_not_enabled",
        "reason_en": f"{association_id} does not take requests from branch offices "
        "(its pack does not enable branch_office).",
        "reason_ar": f"لا تستقبل {association_id} طلبات المكاتب الفرعية "
        "(لا تفعّل لائحتها قناة branch_office).",
    }


async def _one(
    app: FastAPI,
    caller: Verified,
    number: int,
    cells: dict[str, Any],
    *,
    key: str,
    association_id: str | None,
) -> dict[str, Any]:
    result: dict[str, Any] = {"row": number}
    try:
        submission = submission_of(
            cells,
            ref=channel_ref(key, number),
            default_association=association_id,
            packs=app.state.packs,
        )
    except RowUnreadable as error:
        return {**result, "outcome": "refused", "error": error.code,
                "reason_en": error.en, "reason_ar": error.ar}  # fmt: skip
    where = submission.association_id
    principal = caller.principal
    if not (principal.holds(channel_role(CHANNEL), where) or principal.holds(FRONT_DESK, where)):
        return {**result, "outcome": "refused", **_not_yours(where)}
    if not enabled(app, where, CHANNEL, own_client=False):
        return {**result, "outcome": "refused", **_not_enabled(where)}
    try:
        # The row is a trace of its own, the case's: its batch may hold thousands.
        with tracing.request_span("submit batch row", None, kind=SpanKind.INTERNAL):
            answer = await app.state.intake.submit(
                submission.model_dump(mode="json"), token=caller.token
            )
    except IntakeRefused as refusal:
        return {**result, "outcome": "refused", **_refused(refusal)}
    return {**result, **_received(answer)}


def _refused(refusal: IntakeRefused) -> dict[str, str]:
    reason_en, reason_ar = refusal.en, refusal.ar
    if refusal.status == 422 and isinstance(refusal.detail, list):
        named = "; ".join(
            ".".join(str(p) for p in d.get("loc", [])[1:]) + ": " + str(d.get("msg", ""))
            for d in refusal.detail
            if isinstance(d, dict)
        )
        reason_en, reason_ar = f"{reason_en} {named}", f"{reason_ar} {named}"
    return {"error": refusal.code, "reason_en": reason_en, "reason_ar": reason_ar}


def _received(answer: dict[str, Any]) -> dict[str, Any]:
    duplicate = bool(answer.get("duplicate"))
    linked = duplicate and bool(answer.get("linked"))
    found = {
        "outcome": "linked" if linked else "already_received" if duplicate else "received",
        "case_ref": answer.get("case_ref"),
        "access_code": answer.get("access_code"),
        "complete": answer.get("complete"),
        "missing": answer.get("missing") or [],
    }
    if linked:
        found["reason_en"] = (
            "The applicant already has an open request for this service: this row was "
            "added to it (its secret code was given with it)."
        )
        found["reason_ar"] = (
            "لدى مقدّم الطلب طلب مفتوح لهذه الخدمة: أُضيف هذا الصف إليه (وأُعطي رمزه السري معه)."
        )
    elif duplicate:
        found["reason_en"] = "Already received (an earlier upload): its secret code was given then."
        found["reason_ar"] = "استُلم من قبل (في رفع سابق): أُعطي رمزه السري حينها."
    return found


def _unreachable(number: int) -> dict[str, Any]:
    return {
        "row": number,
        "outcome": "failed",
        "error": "intake_unreachable",
        "reason_en": "Intake could not be reached for this row: upload the batch again "
        "(the rows already received are not repeated).",
        "reason_ar": "تعذّر الوصول إلى الاستقبال لهذا الصف: ارفع الدفعة مرة أخرى "
        "(لن تتكرر الصفوف المستلمة).",
    }


RowDone = Callable[[dict[str, Any]], None]


async def process(
    app: FastAPI,
    caller: Verified,
    sheet: Sheet,
    *,
    key: str,
    association_id: str | None,
    row_done: RowDone | None = None,
) -> list[dict[str, Any]]:
    """One result per row, in the rows' order; rows go to intake `concurrency` at a
    time, and `row_done` hears of each as it ends."""
    results: list[dict[str, Any] | None] = [None] * len(sheet.rows)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(sheet.rows)):
        queue.put_nowait(index)

    async def worker() -> None:
        while True:
            try:
                index = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            number, cells = sheet.rows[index]
            try:
                found = await _one(
                    app, caller, number, cells, key=key, association_id=association_id
                )
            except Exception as error:  # noqa: BLE001 — one row's failure is that row's
                log.warning("batch row %d not submitted: %s", number, type(error).__name__)
                found = _unreachable(number)
            results[index] = found
            if row_done is not None:
                row_done(found)

    workers = min(batch_settings(app).concurrency, len(sheet.rows)) or 1
    await asyncio.gather(*(worker() for _ in range(workers)))
    return [r for r in results if r is not None]


def _logged(job: BatchJob, started: float) -> None:
    log.info(
        "batch %s of %d rows: %s in %.1fs",
        job.id,
        job.rows,
        ", ".join(f"{k} {v}" for k, v in sorted(job.counts.items())),
        time.perf_counter() - started,
    )


def _stem(filename: str | None) -> str:
    stem = (filename or "batch").rsplit(".", 1)[0].encode("ascii", "ignore").decode()
    return "".join(c for c in stem if c.isalnum() or c in "-_") or "batch"


def _result_file(job: BatchJob) -> Response:
    assert job.results is not None
    return Response(
        write_result(job.kind, job.results),
        media_type=XLSX_MEDIA_TYPE if job.kind == "xlsx" else CSV_MEDIA_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{job.stem}-results.{job.kind}"',
            # The secret codes: no cache keeps them.
            "Cache-Control": "no-store",
            "X-Batch-Rows": str(job.rows),
            **{f"X-Batch-{k.replace('_', '-').title()}": str(v) for k, v in job.counts.items()},
        },
    )


def _links(job: BatchJob) -> dict[str, str]:
    return {"progress_url": f"/batches/{job.id}", "result_url": f"/batches/{job.id}/result"}


def no_such_batch(batch_id: str) -> Refused:
    return NotFound(
        "batch_not_found",
        f"There is no batch {batch_id} of yours here (its result is kept an hour after "
        "it ends, and not across a restart): upload it again; rows already received "
        "are not repeated.",
        f"لا توجد لك دفعة {batch_id} هنا (تُحفظ نتيجتها ساعة بعد انتهائها، ولا تبقى بعد "
        "إعادة التشغيل): ارفعها مرة أخرى؛ لن تتكرر الصفوف المستلمة.",
    )


def still_running(job: BatchJob) -> Refused:
    return Refused(
        "batch_not_finished",
        f"The batch is not finished: {job.done} of {job.rows} rows are done. Ask again "
        f"in a moment (GET /batches/{job.id}).",
        f"لم تنتهِ الدفعة بعد: أُنجز {job.done} من {job.rows} صفًا. أعد المحاولة بعد قليل.",
    )


def batch_failed(job: BatchJob) -> Refused:
    return Refused(
        "batch_failed",
        f"The batch stopped after {job.done} of {job.rows} rows: upload it again "
        "(the rows already received are not repeated).",
        f"توقفت الدفعة بعد {job.done} من {job.rows} صفًا: ارفعها مرة أخرى "
        "(لن تتكرر الصفوف المستلمة).",
    )


@router.post(
    "/batches",
    summary="A branch office's batch of requests captured offline (CSV or XLSX)",
    response_class=Response,
    responses={
        200: {
            "description": "The per-row result file (CSV with a BOM, or XLSX): each row's "
            "case reference and secret code, or its reason in English and Arabic.",
            "content": {"text/csv": {}, XLSX_MEDIA_TYPE: {}},
        },
        202: {
            "description": "With `Prefer: respond-async`: the batch is taken and runs on; "
            "its id, its rows, and where to follow it (progress_url, result_url)."
        },
    },
)
async def upload_batch(
    request: Request,
    caller: VerifiedCaller,
    file: Annotated[UploadFile, File(description="the batch: CSV (UTF-8) or XLSX")],
    association_id: Annotated[str | None, Form(max_length=32)] = None,
    batch_id: Annotated[str | None, Form(max_length=200)] = None,
    prefer: Annotated[str | None, Header(description="`respond-async`: answer at once")] = None,
) -> Response:
    app: FastAPI = request.app
    settings = batch_settings(app)
    content = await file.read(settings.max_bytes + 1)
    if len(content) > settings.max_bytes:
        raise _too_big(settings.max_bytes)
    sheet = read_batch(content, settings.max_rows)
    key = batch_key(content, batch_id or None, caller.principal.subject)
    job = BatchJob(
        new_job_id(), caller.principal.subject, sheet.kind, _stem(file.filename), len(sheet.rows)
    )
    started = time.perf_counter()

    async def work(job: BatchJob) -> list[dict[str, Any]]:
        results = await process(
            app, caller, sheet, key=key, association_id=association_id or None,
            row_done=job.row_done,
        )  # fmt: skip
        _logged(job, started)
        return results

    batch_jobs(app).start(job, work)
    if prefer and "respond-async" in prefer.lower():
        return JSONResponse(
            {**job.progress(), **_links(job)},
            status_code=202,
            headers={"Location": f"/batches/{job.id}", "Preference-Applied": "respond-async"},
        )
    assert job.task is not None
    # Shielded: an uploader who hangs up does not stop the rows half-way.
    await asyncio.shield(job.task)
    if job.failure is not None:
        raise batch_failed(job)
    return _result_file(job)


@router.get("/batches/{batch_id}", summary="How far an uploaded batch has gone")
async def batch_progress(batch_id: str, request: Request, caller: VerifiedCaller) -> JSONResponse:
    job = batch_jobs(request.app).of(batch_id, caller.principal.subject)
    if job is None:
        raise no_such_batch(batch_id)
    return JSONResponse({**job.progress(), **_links(job)}, headers={"Cache-Control": "no-store"})


@router.get(
    "/batches/{batch_id}/result",
    summary="The result file of a finished batch",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}, XLSX_MEDIA_TYPE: {}}}},
)
async def batch_result(batch_id: str, request: Request, caller: VerifiedCaller) -> Response:
    job = batch_jobs(request.app).of(batch_id, caller.principal.subject)
    if job is None:
        raise no_such_batch(batch_id)
    if job.failure is not None:
        raise batch_failed(job)
    if job.results is None:
        raise still_running(job)
    return _result_file(job)


async def run(app: FastAPI) -> None:
    """Kept beside the server only to stop the batches still running when it stops."""
    jobs = batch_jobs(app)
    try:
        await asyncio.Event().wait()
    finally:
        await jobs.stop()
