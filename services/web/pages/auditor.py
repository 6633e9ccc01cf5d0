"""The auditor: a case's timeline found by its reference, the compliance exceptions,
the board report and the access log, all from the audit API (`audit`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

import audit.report
from services.web.backends import ServiceRefused
from services.web.dependencies import Pages, Services, signed_in_with
from services.web.pages import NavLink
from services.web.paging import Page
from services.web.session import Session
from shared.roles import AUDITOR

router = APIRouter()
NAV = [NavLink("/auditor", "auditor.nav", (AUDITOR,), 80)]
Auditor = Annotated[Session, Depends(signed_in_with(AUDITOR))]
# The report's own stylesheet, which its file carries inline; the pages' CSP allows
# only the site's own stylesheets, so the web app serves it as one.
REPORT_CSS = Path(audit.report.__file__).parent / "templates" / "report.css"
INLINE_STYLE = re.compile(r"<style>.*?</style>", re.DOTALL)


async def associations_of(request: Request, session: Session) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await request.app.state.associations.named(
        session.associations_with(AUDITOR)
    )
    return found


@router.get("/auditor", response_class=HTMLResponse)
async def timeline(
    request: Request, pages: Pages, services: Services, session: Auditor, reference: str = ""
) -> HTMLResponse:
    """The search by reference, and the case's timeline when one was asked for."""
    reference = reference.strip().upper()
    found, refusal = None, None
    if reference:
        try:
            found = await services.json(
                "audit", "GET", f"/cases/{quote(reference, safe='')}/timeline", token=session.token
            )
        except ServiceRefused as refused:
            if refused.status not in (403, 404, 422):
                raise
            refusal = refused
    association = (
        await request.app.state.associations.get(found["association_id"]) if found else None
    )
    return pages.page(
        request,
        "auditor/timeline.html",
        status=refusal.status if refusal else 200,
        reference=reference,
        found=found,
        association=association,
        refusal=refusal,
    )


@router.get("/auditor/compliance", response_class=HTMLResponse)
async def compliance(
    request: Request,
    pages: Pages,
    services: Services,
    session: Auditor,
    paging: Page,
    association: str = "",
) -> HTMLResponse:
    found = await services.json("audit", "GET", "/compliance", token=session.token)
    associations = {a["association_id"]: a for a in await associations_of(request, session)}
    chosen = association if association in associations else ""
    exceptions = [
        e for e in found.get("exceptions", []) if not chosen or e["association_id"] == chosen
    ]
    shown, has_next = paging.window(exceptions[paging.offset : paging.offset + paging.ask])
    return pages.page(
        request,
        "auditor/compliance.html",
        checks=found.get("checks", {}),
        not_run=found.get("checks_not_run", []),
        exceptions=shown,
        total=len(exceptions),
        associations=associations,
        association=chosen,
        paging=paging,
        has_next=has_next,
    )


@router.get("/auditor/report", response_class=HTMLResponse)
async def report_form(
    request: Request,
    pages: Pages,
    session: Auditor,
    association: str = "",
    start: str = "",
    end: str = "",
) -> HTMLResponse:
    return pages.page(
        request,
        "auditor/report.html",
        associations=await associations_of(request, session),
        association=association,
        start=start,
        end=end,
        refusal=None,
    )


@router.get("/auditor/report/view", response_class=HTMLResponse)
async def report_view(
    request: Request,
    pages: Pages,
    services: Services,
    session: Auditor,
    association: str = "",
    start: str = "",
    end: str = "",
    report_lang: str = "",
) -> Response:
    """The board report itself, as the audit API writes it (its own print view)."""
    lang = report_lang if report_lang in ("ar", "en") else session.lang
    params = {"association_id": association, "from": start, "to": end, "lang": lang}
    try:
        answer = await services.call("audit", "GET", "/report", token=session.token, params=params)
    except ServiceRefused as refused:
        if refused.status not in (403, 422):
            raise
        return pages.page(
            request,
            "auditor/report.html",
            status=refused.status,
            associations=await associations_of(request, session),
            association=association,
            start=start,
            end=end,
            refusal=refused,
        )
    linked = '<link rel="stylesheet" href="/auditor/report.css">'
    html = INLINE_STYLE.sub(lambda _: linked, answer.text, count=1)
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


@router.get("/auditor/report.css")
async def report_css(session: Auditor) -> Response:
    return Response(REPORT_CSS.read_text(encoding="utf-8"), media_type="text/css")


@router.get("/auditor/access", response_class=HTMLResponse)
async def access(
    request: Request,
    pages: Pages,
    services: Services,
    session: Auditor,
    paging: Page,
    reference: str = "",
) -> HTMLResponse:
    """Who read which case file or member record, and when (of one case, when asked),
    the latest first."""
    reference = reference.strip().upper()
    params = {"case": reference} if reference else {}
    found = await services.json("audit", "GET", "/access", token=session.token, params=params)
    latest = list(reversed(found.get("reads", [])))
    reads, has_next = paging.window(latest[paging.offset : paging.offset + paging.ask])
    return pages.page(
        request,
        "auditor/access.html",
        reads=reads,
        reference=reference,
        paging=paging,
        has_next=has_next,
    )
