"""The social researcher: the queue of referred cases, a referral with the front
desk's reason and questions, the answers and the note, and closing the referral.

The committee keeps the referrals (its researcher's queue and case file): this
area shows what it holds and sends what the researcher wrote. After the closure
the case shows the answers given and the note, "erased" once the applicant is.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from services.web.associations import client_term
from services.web.backends import Backends, ServiceRefused
from services.web.dependencies import Form, Pages, Services, is_htmx, keep, signed_in_with
from services.web.pages import NavLink
from services.web.pages.verification import clients_of, named_row
from services.web.paging import Page
from services.web.session import Session
from shared.roles import RESEARCHER

router = APIRouter()
NAV = [NavLink("/researcher", "researcher.nav", (RESEARCHER,), order=35)]

ResearcherSession = Annotated[Session, Depends(signed_in_with(RESEARCHER))]


# Refusals the researcher can answer on the same form (an answer left empty, the
# referral closed meanwhile).
@router.get("/researcher", response_class=HTMLResponse)
async def queue(
    request: Request,
    pages: Pages,
    services: Services,
    session: ResearcherSession,
    paging: Page,
    association: str = "",
    ref: Annotated[str, Query(max_length=40)] = "",
) -> HTMLResponse:
    """Open referrals of the researcher's associations, the nearest deadline first."""
    associations = await request.app.state.associations.named(session.associations_with(RESEARCHER))
    mine = {a["association_id"]: a for a in associations}
    association = association if association in mine else ""
    params = paging.query(association_id=association, case_ref=ref.strip())
    found = await services.json(
        "committee", "GET", "/researcher/queue", token=session.token, params=params
    )
    rows, has_next = paging.window(found)
    values: dict[str, Any] = {
        "rows": [named_row(row, mine) for row in rows],
        "has_next": has_next,
        "paging": paging,
        "associations": associations,
        "association": association,
        "ref": ref.strip(),
        "clients": clients_of(associations, association, session.lang),
    }
    template = "researcher/_queue.html" if is_htmx(request) else "researcher/queue.html"
    return pages.page(request, template, **values)


async def _referral_values(
    request: Request, services: Backends, session: Session, case_id: UUID
) -> dict[str, Any]:
    """The committee's case file of the referred case, named by its association's pack."""
    case_file = await services.json(
        "committee", "GET", f"/cases/{case_id}/file", token=session.token
    )
    association = await request.app.state.associations.get(case_file["association_id"])
    service_code = case_file["request"].get("service_code")
    service = next(
        (s for s in (association or {}).get("services", []) if s["code"] == service_code), None
    )
    referrals = case_file.get("referrals") or []
    return {
        "case_file": case_file,
        "association": association,
        "service": service,
        "client": client_term(association, session.lang),
        "open_referral": next((r for r in referrals if r["open"]), None),
        "closed_referrals": [r for r in referrals if not r["open"]],
    }


@router.get("/researcher/{case_id}", response_class=HTMLResponse)
async def referral(
    case_id: UUID, request: Request, pages: Pages, services: Services, session: ResearcherSession
) -> HTMLResponse:
    values = await _referral_values(request, services, session, case_id)
    return pages.page(
        request,
        "researcher/referral.html",
        refusal=None,
        typed={"answers": [], "note": ""},
        **values,
    )


def _answers(value: Any) -> list[str]:
    """The answers typed, one per question, in order (one answer comes as a string)."""
    if value is None:
        return []
    given = value if isinstance(value, list) else [value]
    return [str(answer).strip() for answer in given]


@router.post("/researcher/{case_id}/closure", response_model=None)
async def close(
    case_id: UUID,
    request: Request,
    pages: Pages,
    services: Services,
    session: ResearcherSession,
    form: Form,
) -> HTMLResponse | RedirectResponse:
    """Sends the researcher's answers and note, closing the referral."""
    answers = _answers(form.get("answers"))
    note = str(form.get("note", "")).strip()
    try:
        await services.json(
            "committee",
            "POST",
            f"/referrals/{case_id}/closure",
            token=session.token,
            json={"answers": answers, "note": note},
        )
    except ServiceRefused as refusal:
        if not refusal.shown_on_form:
            raise
        values = await _referral_values(request, services, session, case_id)
        return pages.page(
            request,
            "researcher/referral.html",
            status=refusal.form_status,
            refusal=refusal,
            typed={"answers": answers, "note": note},
            **values,
        )
    keep(request, session.with_flash({"key": "researcher.closed", "kind": "ok"}))
    return RedirectResponse(f"/researcher/{case_id}", status_code=303)
