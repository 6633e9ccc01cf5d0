"""Branch-office batches: a representative uploads the requests captured offline
(`POST /batches`, CSV or XLSX) and gets back the per-row result file.

The representative's own bearer token must hold `channel:branch_office` or
`front_desk` in each row's association, and the association's pack must enable the
branch office. Each row goes to intake as the branch office's machine client, with
`channel_ref` the digest of the batch (its file, or the representative's batch id)
and the row's number: uploading the same batch again creates nothing twice (intake
answers the cases it already has, without their secret codes, given once).

The result file holds the secret codes: it is answered to the uploader and kept
nowhere; the log says only how many rows went which way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, File, Form, Request, UploadFile
from fastapi.responses import Response
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.channels.batches.auth import Caller
from services.channels.batches.files import (
    CSV_MEDIA_TYPE,
    XLSX_MEDIA_TYPE,
    Kind,
    read_batch,
    write_result,
)
from services.channels.batches.rows import (
    CHANNEL,
    RowUnreadable,
    batch_key,
    channel_ref,
    submission_of,
)
from services.channels.intake import IntakeRefused
from services.channels.main import enabled
from shared.auth import Principal
from shared.errors import Invalid
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


# Read when the service assembles its adapters: an invalid value stops it at once,
# naming the variable (shared.settings.load_settings).
SETTINGS = load_settings(BatchSettings)


def batch_settings(app: FastAPI) -> BatchSettings:
    found: BatchSettings = getattr(app.state, "batch_settings", None) or SETTINGS
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
        "(its pack does not enable branch_office, or the channel has no client here).",
        "reason_ar": f"لا تستقبل {association_id} طلبات المكاتب الفرعية "
        "(لا تفعّل لائحتها قناة branch_office، أو لا عميل للقناة هنا).",
    }


async def _one(
    app: FastAPI,
    principal: Principal,
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
    if not (principal.holds(channel_role(CHANNEL), where) or principal.holds(FRONT_DESK, where)):
        return {**result, "outcome": "refused", **_not_yours(where)}
    if not enabled(app, where, CHANNEL):
        return {**result, "outcome": "refused", **_not_enabled(where)}
    try:
        answer = await app.state.intake.submit(submission.model_dump(mode="json"))
    except IntakeRefused as refusal:
        reason_en, reason_ar = refusal.en, refusal.ar
        if refusal.status == 422 and isinstance(refusal.detail, list):
            named = "; ".join(
                ".".join(str(p) for p in d.get("loc", [])[1:]) + ": " + str(d.get("msg", ""))
                for d in refusal.detail
                if isinstance(d, dict)
            )
            reason_en, reason_ar = f"{reason_en} {named}", f"{reason_ar} {named}"
        return {**result, "outcome": "refused", "error": refusal.code,
                "reason_en": reason_en, "reason_ar": reason_ar}  # fmt: skip
    duplicate = bool(answer.get("duplicate"))
    linked = duplicate and bool(answer.get("linked"))
    found = {
        **result,
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


async def process(
    app: FastAPI,
    principal: Principal,
    content: bytes,
    *,
    association_id: str | None,
    batch_id: str | None,
) -> tuple[Kind, list[dict[str, Any]]]:
    """The batch's kind and one result per row, in the rows' order; rows go to intake
    `concurrency` at a time."""
    settings = batch_settings(app)
    sheet = read_batch(content, settings.max_rows)
    key = batch_key(content, batch_id, principal.subject)
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
                results[index] = await _one(
                    app, principal, number, cells, key=key, association_id=association_id
                )
            except Exception as error:  # noqa: BLE001 — one row's failure is that row's
                log.warning("batch row %d not submitted: %s", number, type(error).__name__)
                results[index] = {
                    "row": number,
                    "outcome": "failed",
                    "error": "intake_unreachable",
                    "reason_en": "Intake could not be reached for this row: upload the "
                    "batch again (the rows already received are not repeated).",
                    "reason_ar": "تعذّر الوصول إلى الاستقبال لهذا الصف: ارفع الدفعة مرة أخرى "
                    "(لن تتكرر الصفوف المستلمة).",
                }

    workers = min(settings.concurrency, len(sheet.rows)) or 1
    await asyncio.gather(*(worker() for _ in range(workers)))
    return sheet.kind, [r for r in results if r is not None]


@router.post(
    "/batches",
    summary="A branch office's batch of requests captured offline (CSV or XLSX)",
    response_class=Response,
    responses={
        200: {
            "description": "The per-row result file (CSV with a BOM, or XLSX): each row's "
            "case reference and secret code, or its reason in English and Arabic.",
            "content": {"text/csv": {}, XLSX_MEDIA_TYPE: {}},
        }
    },
)
async def upload_batch(
    request: Request,
    principal: Caller,
    file: Annotated[UploadFile, File(description="the batch: CSV (UTF-8) or XLSX")],
    association_id: Annotated[str | None, Form(max_length=32)] = None,
    batch_id: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    app: FastAPI = request.app
    settings = batch_settings(app)
    content = await file.read(settings.max_bytes + 1)
    if len(content) > settings.max_bytes:
        raise _too_big(settings.max_bytes)
    started = time.perf_counter()
    kind, results = await process(
        app, principal, content, association_id=association_id or None, batch_id=batch_id or None
    )
    counts: dict[str, int] = {}
    for result in results:
        counts[result["outcome"]] = counts.get(result["outcome"], 0) + 1
    log.info(
        "batch of %d rows: %s in %.1fs",
        len(results),
        ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
        time.perf_counter() - started,
    )
    stem = (file.filename or "batch").rsplit(".", 1)[0].encode("ascii", "ignore").decode()
    stem = "".join(c for c in stem if c.isalnum() or c in "-_") or "batch"
    return Response(
        write_result(kind, results),
        media_type=XLSX_MEDIA_TYPE if kind == "xlsx" else CSV_MEDIA_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{stem}-results.{kind}"',
            # The secret codes: no cache keeps them.
            "Cache-Control": "no-store",
            "X-Batch-Rows": str(len(results)),
            **{f"X-Batch-{k.replace('_', '-').title()}": str(v) for k, v in counts.items()},
        },
    )
