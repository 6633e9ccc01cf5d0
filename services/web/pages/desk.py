"""The front desk: the association's cases, a new request from an interview, a
phone call, a letter or a branch office, and each case: completing it, its
corrections, the referral to the social researcher, and the delivery.

Everything is sent with the officer's own token; intake decides what may be
done and records the officer as the actor.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import uuid4

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.web import request_form as rf
from services.web.associations import client_term
from services.web.backends import Backends, ServiceRefused
from services.web.dependencies import Form, Pages, Services, is_htmx, keep, signed_in_with
from services.web.pages import NavLink
from services.web.pages.public import (
    after_submission,
    pack_and_service,
    pack_of,
    redirect,
    refused_status,
)
from services.web.paging import Page
from services.web.session import Session
from shared.roles import FRONT_DESK

router = APIRouter()
NAV = [
    NavLink("/desk", "desk.nav_cases", (FRONT_DESK,), 10),
    NavLink("/desk/new", "desk.nav_new", (FRONT_DESK,), 11),
]

Officer = Annotated[Session, Depends(signed_in_with(FRONT_DESK))]

# The channels a person reaches the front desk by (the pack enables some of them).
STAFF_CHANNELS = ("interview", "phone", "letter", "branch_office")
STATUSES = (
    "incomplete",
    "received",
    "verified",
    "discrepancies",
    "correcting",
    "ineligible",
    "approved",
    "rejected",
    "delivered",
    # Shown over the status beneath it while a dead letter holds the case (intake).
    "held",
)


# The list of cases -------------------------------------------------------------


@router.get("/desk", response_class=HTMLResponse)
async def cases(
    request: Request,
    pages: Pages,
    services: Services,
    officer: Officer,
    paging: Page,
    association_id: str = "",
    status: str = "",
) -> HTMLResponse:
    """The cases of the officer's associations, as intake lists them; it polls itself."""
    params = paging.query(association_id=association_id, status=status)
    found = await services.json("intake", "GET", "/cases", token=officer.token, params=params)
    rows, has_next = paging.window(found)
    associations = await request.app.state.associations.named(officer.associations_with(FRONT_DESK))
    query = urlencode(
        {k: v for k, v in (("association_id", association_id), ("status", status)) if v}
    )
    template = "desk/_cases.html" if is_htmx(request) else "desk/cases.html"
    return pages.page(
        request,
        template,
        rows=rows,
        has_next=has_next,
        paging=paging,
        associations=associations,
        names={a["association_id"]: a["name"] for a in associations},
        service_names={
            a["association_id"]: {s["code"]: s["name"] for s in a.get("services", [])}
            for a in associations
        },
        chosen={"association_id": association_id, "status": status},
        statuses=STATUSES,
        query=("&" + query) if query else "",
        poll=f"/desk?{query}&page={paging.page}" if query else f"/desk?page={paging.page}",
    )


# A new request -------------------------------------------------------------------


async def new_page(
    request: Request,
    pages: Pages,
    services: Backends,
    officer: Session,
    chosen: dict[str, str],
    *,
    values: dict[str, str] | None = None,
    refusal: ServiceRefused | None = None,
    status: int | None = None,
) -> HTMLResponse:
    associations = await request.app.state.associations.named(officer.associations_with(FRONT_DESK))
    pack: dict[str, Any] | None = None
    service: dict[str, Any] | None = None
    if chosen.get("association_id") in {a["association_id"] for a in associations}:
        pack = await pack_of(services, chosen["association_id"])
        service = rf.service_of(pack, chosen.get("service_code", ""))
    channels = [c for c in STAFF_CHANNELS if pack and c in pack.get("channels", [])]
    ready = bool(service) and chosen.get("channel") in channels
    spec = rf.whole_form(service) if service else None
    values = values or {}
    return pages.page(
        request,
        "desk/new.html",
        status=status or (refusal.status if refusal else 200),
        associations=associations,
        chosen=chosen,
        pack=pack,
        service=service,
        channels=channels,
        ready=ready,
        spec=spec,
        values=values,
        problems=rf.problems_of(refusal.detail, spec.documents) if refusal and spec else {},
        refusal=refusal,
        channel_ref=values.get("channel_ref") or f"desk-{uuid4()}",
        client=client_term(pack, officer.lang),
    )


@router.get("/desk/new", response_class=HTMLResponse)
async def new_request(
    request: Request,
    pages: Pages,
    services: Services,
    officer: Officer,
    association_id: str = "",
    service_code: str = "",
    channel: str = "",
) -> HTMLResponse:
    chosen = {"association_id": association_id, "service_code": service_code, "channel": channel}
    return await new_page(request, pages, services, officer, chosen)


@router.post("/desk/new", response_model=None)
async def submit_request(
    request: Request, pages: Pages, services: Services, officer: Officer, form: Form
) -> Response:
    """Submitted with the officer's token; the applicant's code is shown to hand over."""
    chosen = {k: rf.text_of(form, k) for k in ("association_id", "service_code", "channel")}
    _, service = await pack_and_service(services, chosen["association_id"], chosen["service_code"])
    body = rf.submission_of(
        form,
        rf.whole_form(service),
        association_id=chosen["association_id"],
        service_code=chosen["service_code"],
        channel=chosen["channel"],
        method="in_person",
    )
    try:
        result = await services.json(
            "intake", "POST", "/submissions", token=officer.token, json=body
        )
    except ServiceRefused as refusal:
        if not refusal.shown_on_form:
            raise
        return await new_page(
            request,
            pages,
            services,
            officer,
            chosen,
            values=rf.values_of(form),
            refusal=refusal,
            status=refused_status(request, refusal),
        )
    shown = {
        "key": "desk.created",
        "kind": "ok",
        "case_ref": str(result["case_ref"]),
        "code": str(result.get("access_code") or ""),
    }
    keep(request, officer.with_flash(shown))
    return after_submission(request, f"/desk/cases/{result['case_id']}")


# A case ------------------------------------------------------------------------------


async def case_page(
    request: Request,
    pages: Pages,
    services: Backends,
    officer: Session,
    case_key: str,
    *,
    values: dict[str, str] | None = None,
    refusal: ServiceRefused | None = None,
    which: str = "",
) -> HTMLResponse:
    """The case as intake's read model and its file say, with what may be done now."""
    file = await services.json("intake", "GET", f"/cases/{case_key}/file", token=officer.token)
    try:
        case = await services.json("intake", "GET", f"/cases/{case_key}", token=officer.token)
    except ServiceRefused as missing:
        if missing.status != 404:
            raise
        case = None  # the read model has not caught up yet: the file is enough
    pack, service = await pack_and_service(services, file["association_id"], file["service_code"])
    missing_spec = rf.missing_form(service, file.get("missing", []))
    corrections_spec = rf.corrections_form(service, file.get("corrections", []))
    shown = dict(officer.flash or {})
    documents = missing_spec.documents if which == "information" else corrections_spec.documents
    return pages.page(
        request,
        "desk/case.html",
        status=refusal.status if refusal else 200,
        file=file,
        case=case,
        pack=pack,
        service=service,
        missing_spec=missing_spec if file.get("missing") else None,
        corrections_spec=corrections_spec if file.get("corrections") else None,
        values=values or {},
        problems=rf.problems_of(refusal.detail, documents) if refusal else {},
        refusal=refusal,
        which=which,
        handed=shown if shown.get("case_ref") == file["case_ref"] else None,
        doc_labels={d["code"]: d["label"] for d in service.get("required_documents", [])},
        client=client_term(pack, officer.lang),
    )


@router.get("/desk/cases/{case_key}", response_class=HTMLResponse)
async def case(
    request: Request, case_key: str, pages: Pages, services: Services, officer: Officer
) -> HTMLResponse:
    return await case_page(request, pages, services, officer, case_key)


async def file_of(
    services: Backends, officer: Session, case_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    file = await services.json("intake", "GET", f"/cases/{case_id}/file", token=officer.token)
    _, service = await pack_and_service(services, file["association_id"], file["service_code"])
    return file, service


def command_body(
    what: str, form: dict[str, Any], file: dict[str, Any], service: dict[str, Any]
) -> dict[str, Any]:
    """The body of the front desk's command `what`, from the form the officer sent."""
    method = "in_person"
    if what == "information":
        return rf.information_of(form, rf.missing_form(service, file.get("missing", [])), method)
    if what == "corrections":
        spec = rf.corrections_form(service, file.get("corrections", []))
        return rf.corrections_of(form, spec, method)
    if what == "referral":
        questions = [q.strip() for q in rf.text_of(form, "questions").splitlines() if q.strip()]
        return {"reason": rf.text_of(form, "reason"), "questions": questions}
    return {"delivered": rf.text_of(form, "delivered")}


@router.post("/desk/cases/{case_id}/{what}", response_model=None)
async def command(
    request: Request,
    case_id: str,
    what: str,
    pages: Pages,
    services: Services,
    officer: Officer,
    form: Form,
) -> HTMLResponse | RedirectResponse:
    """Completing, correcting, referring or delivering: intake says whether it may be."""
    if what not in ("information", "corrections", "referral", "delivery"):
        raise ServiceRefused(404, "not_found", {"en": "No such page.", "ar": "الصفحة غير موجودة."})
    file, service = await file_of(services, officer, case_id)
    path = f"/cases/{file['case_id']}/{what}"
    try:
        await services.json(
            "intake",
            "POST",
            path,
            token=officer.token,
            json=command_body(what, form, file, service),
        )
    except ServiceRefused as refusal:
        if not refusal.shown_on_form:
            raise
        return await case_page(
            request,
            pages,
            services,
            officer,
            case_id,
            values=rf.values_of(form),
            refusal=refusal,
            which=what,
        )
    keep(request, officer.with_flash({"key": f"desk.done_{what}", "kind": "ok"}))
    return redirect(f"/desk/cases/{file['case_id']}")
