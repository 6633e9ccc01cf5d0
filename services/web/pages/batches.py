"""Branch-office batches: a representative (or the front desk) uploads the requests
captured offline, follows the batch row by row, and downloads its result file.

Everything goes to the channels service (`POST /batches` with `Prefer:
respond-async`, `GET /batches/{id}`, `GET /batches/{id}/result`) with the person's
own token; it decides what may be taken. The result file holds the applicants'
secret codes: the web app keeps nothing of it, and fetches it from channels each
time the person asks to download it.
"""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import UploadFile

from services.web.backends import Backends, ServiceRefused
from services.web.dependencies import Form, PageRefused, Pages, Services, is_htmx, signed_in_with
from services.web.pages import NavLink
from services.web.pages.public import pack_of, redirect
from services.web.session import Session
from shared.roles import FRONT_DESK, channel_role

CHANNEL = "branch_office"
UPLOADERS = (FRONT_DESK, channel_role(CHANNEL))
router = APIRouter()
NAV = [NavLink("/batches", "batches.nav", UPLOADERS, 12, channel=CHANNEL)]
Uploader = Annotated[Session, Depends(signed_in_with(*UPLOADERS))]
# A batch's id as channels makes them (jobs.new_job_id): nothing else goes into its URL.
BatchId = Annotated[str, Path(pattern=r"^b-[A-Za-z0-9_-]{1,64}$")]
# The outcomes of a row, in the order the page counts them (docs/operations.md).
OUTCOMES = ("received", "already_received", "linked", "refused", "failed")
# Refusals of a file a person can fix (or retry): shown on the upload page itself.
SHOWN_ON_THE_FORM = (400, 403, 413, 422, 503)
# Answers of the result file a browser needs; the rest of channels' headers stay there.
RESULT_HEADERS = ("content-type", "content-disposition")
# The columns every batch may have besides the services' own (docs/operations.md).
APPLICANT_COLUMNS = ("association_id", "service_code", "national_id", "name", "phone", "email")
DECLARATION_COLUMNS = ("attested", "method", "attested_by")


async def uploading_for(request: Request, person: Session) -> list[dict[str, Any]]:
    """The associations the person may upload for: a role of theirs there, and a pack
    that enables the branch office; none is the forbidden page."""
    held = person.associations_with(*UPLOADERS)
    found: list[dict[str, Any]] = await request.app.state.associations.with_channel(CHANNEL, held)
    if not found:
        raise PageRefused(403, "forbidden", "errors.forbidden")
    return found


def template_columns(pack: dict[str, Any]) -> list[str]:
    """The header row of a batch for the association: its services' fields and
    documents, once each, between the applicant's columns and the declaration."""
    columns = list(APPLICANT_COLUMNS)
    for service in pack.get("services", []):
        columns += [f["name"] for f in service.get("required_fields", [])]
        for document in service.get("required_documents", []):
            parts = ("number", "expires_on") if document.get("has_expiry") else ("number",)
            columns += [f"doc:{document['code']}:{part}" for part in parts]
    columns += DECLARATION_COLUMNS
    return list(dict.fromkeys(columns))


def template_csv(columns: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(columns)
    # A BOM, so that Excel opens it as UTF-8 (as channels writes its result files).
    return out.getvalue().encode("utf-8-sig")


async def upload_page(
    request: Request,
    pages: Pages,
    person: Session,
    *,
    chosen: dict[str, str] | None = None,
    refusal: ServiceRefused | None = None,
) -> HTMLResponse:
    associations = await uploading_for(request, person)
    return pages.page(
        request,
        "batches/upload.html",
        status=refusal.status if refusal else 200,
        associations=associations,
        chosen=chosen or {},
        refusal=refusal,
    )


@router.get("/batches", response_class=HTMLResponse)
async def batches(request: Request, pages: Pages, person: Uploader) -> HTMLResponse:
    return await upload_page(request, pages, person)


@router.get("/batches/template.csv")
async def template(
    request: Request, services: Services, person: Uploader, association_id: str = ""
) -> Response:
    """An empty batch for the association: the header row alone."""
    allowed = {a["association_id"] for a in await uploading_for(request, person)}
    if association_id not in allowed:
        raise PageRefused(404, "not_found", "errors.not_found")
    pack = await pack_of(services, association_id)
    return Response(
        template_csv(template_columns(pack)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{association_id}-batch.csv"'},
    )


async def sent_to_channels(
    services: Backends, person: Session, file: UploadFile, chosen: dict[str, str]
) -> dict[str, Any]:
    """The batch as channels took it (its id), the rows running on there."""
    content = await file.read()
    answer: dict[str, Any] = await services.json(
        "channels",
        "POST",
        "/batches",
        token=person.token,
        headers={"Prefer": "respond-async"},
        files={"file": (file.filename or "batch", content, "application/octet-stream")},
        data={k: v for k, v in chosen.items() if v},
    )
    return answer


@router.post("/batches", response_model=None)
async def upload(
    request: Request, pages: Pages, services: Services, person: Uploader, form: Form
) -> Response:
    allowed = {a["association_id"] for a in await uploading_for(request, person)}
    chosen = {
        "association_id": str(form.get("association_id") or ""),
        "batch_id": str(form.get("batch_id") or "").strip(),
    }
    file = form.get("file")
    try:
        if chosen["association_id"] not in allowed:
            raise refusal("association_needed")
        if not isinstance(file, UploadFile) or not file.filename:
            raise refusal("file_needed")
        taken = await sent_to_channels(services, person, file, chosen)
    except ServiceRefused as refused:
        if refused.status not in SHOWN_ON_THE_FORM:
            raise
        return await upload_page(request, pages, person, chosen=chosen, refusal=refused)
    return redirect(f"/batches/{taken['batch']}")


def refusal(key: str) -> ServiceRefused:
    """A refusal of the page's own (the form lacks what channels needs), both languages."""
    words = {
        "association_needed": (
            "Choose the association the batch is for.",
            "اختر الجمعية التي تخصها الدفعة.",
        ),
        "file_needed": ("Choose the file of the batch.", "اختر ملف الدفعة."),
    }
    en, ar = words[key]
    return ServiceRefused(422, key, {"en": en, "ar": ar})


async def progress_of(
    services: Backends, person: Session, batch_id: str
) -> tuple[dict[str, Any] | None, ServiceRefused | None]:
    """How far the batch has gone, or why channels cannot say (gone, unreachable)."""
    try:
        found = await services.json("channels", "GET", f"/batches/{batch_id}", token=person.token)
    except ServiceRefused as refused:
        if refused.status not in (404, 503):
            raise
        return None, refused
    return found, None


@router.get("/batches/{batch_id}", response_class=HTMLResponse)
async def progress(
    request: Request, batch_id: BatchId, pages: Pages, services: Services, person: Uploader
) -> HTMLResponse:
    """The batch's progress; it asks again by itself (htmx) until the batch is done."""
    found, refused = await progress_of(services, person, batch_id)
    # A poll answers 200 even when the batch is gone, so that htmx shows the words.
    status = refused.status if refused and not is_htmx(request) else 200
    template = "batches/_progress.html" if is_htmx(request) else "batches/progress.html"
    counts = (found or {}).get("counts", {})
    return pages.page(
        request,
        template,
        status=status,
        batch_id=batch_id,
        batch=found,
        refusal=refused,
        outcomes=[(o, counts[o]) for o in OUTCOMES if counts.get(o)],
    )


@router.get("/batches/{batch_id}/result")
async def result(batch_id: BatchId, services: Services, person: Uploader) -> Response:
    """The result file, fetched from channels now and passed on: no cache keeps it."""
    answer = await services.call(
        "channels", "GET", f"/batches/{batch_id}/result", token=person.token
    )
    headers = {k: v for k, v in answer.headers.items() if k.lower() in RESULT_HEADERS}
    return Response(answer.content, headers={**headers, "Cache-Control": "no-store"})
