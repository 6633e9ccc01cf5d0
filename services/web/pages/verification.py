"""The verifier: the queue of requests waiting for their confirmation, a case file
beside its automatic checks, and the confirmation (or an override, with a reason).

Verification never decides by itself: its checks only suggest an outcome, and
every round (each revision of a request: a corrected request is checked again)
waits in the queue until a verifier confirms it in their own name. The screens
say so; the service refuses an override without a reason, and the form shows
its words.
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
from services.web.paging import Page
from services.web.session import Session
from shared.roles import VERIFIER

router = APIRouter()
NAV = [NavLink("/verification", "verification.nav", (VERIFIER,), order=30)]

VerifierSession = Annotated[Session, Depends(signed_in_with(VERIFIER))]
STATUSES = ("pending", "confirmed")
OUTCOMES = ("verified", "discrepancies", "ineligible")


# Refusals the verifier can answer on the same form (a reason missing, a newer
# revision arrived, already confirmed by someone else).
async def _association_names(request: Request, session: Session) -> list[dict[str, Any]]:
    named: list[dict[str, Any]] = await request.app.state.associations.named(
        session.associations_with(VERIFIER)
    )
    return named


def clients_of(associations: list[dict[str, Any]], chosen: str, lang: str) -> str | None:
    """The association's own word for its clients, when the list is of one association."""
    one = [a for a in associations if a["association_id"] == chosen] or (
        associations if len(associations) == 1 else []
    )
    return client_term(one[0], lang, plural=True) if one else None


def named_row(row: dict[str, Any], associations: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A row of a list with its association's name and its service's, as the pack says."""
    association = associations.get(row["association_id"]) or {}
    service = next(
        (s for s in association.get("services", []) if s["code"] == row.get("service_code")),
        None,
    )
    return {
        **row,
        "association_name": association.get("name") or row["association_id"],
        "service_name": service["name"] if service else row.get("service_code") or "",
    }


@router.get("/verification", response_class=HTMLResponse)
async def queue(
    request: Request,
    pages: Pages,
    services: Services,
    session: VerifierSession,
    paging: Page,
    association: str = "",
    status: str = "pending",
    ref: Annotated[str, Query(max_length=40)] = "",
) -> HTMLResponse:
    """The requests of the verifier's associations, oldest first, polled by htmx."""
    status = status if status in STATUSES else "pending"
    associations = await _association_names(request, session)
    mine = {a["association_id"]: a for a in associations}
    association = association if association in mine else ""
    params = paging.query(status=status, association_id=association, case_ref=ref.strip())
    found = await services.json(
        "verification", "GET", "/verifications", token=session.token, params=params
    )
    rows, has_next = paging.window(found)
    values: dict[str, Any] = {
        "rows": [named_row(row, mine) for row in rows],
        "has_next": has_next,
        "paging": paging,
        "associations": associations,
        "by_id": mine,
        "association": association,
        "showing": status,
        "ref": ref.strip(),
        "clients": clients_of(associations, association, session.lang),
    }
    template = "verification/_queue.html" if is_htmx(request) else "verification/queue.html"
    return pages.page(request, template, **values)


async def _case_values(
    request: Request, services: Backends, session: Session, case_id: UUID
) -> dict[str, Any]:
    """The verification (its checks) and the case file (the data as received)."""
    verification = await services.json(
        "verification", "GET", f"/verifications/{case_id}", token=session.token
    )
    case_file = await services.json(
        "verification", "GET", f"/verifications/{case_id}/file", token=session.token
    )
    association_id = verification["association_id"]
    association = await request.app.state.associations.get(association_id)
    pack = await services.json("intake", "GET", f"/associations/{association_id}")
    service = next(
        (s for s in pack.get("services", []) if s["code"] == verification["service_code"]), None
    )
    revisions = case_file.get("revisions") or []
    current = revisions[-1] if revisions else {}
    return {
        "verification": verification,
        "case_file": case_file,
        "current": current,
        "earlier": revisions[:-1],
        "association": association,
        "service": service,
        "client": client_term(association, session.lang),
        "fields": {f["name"]: f["label"] for f in (service or {}).get("required_fields", [])},
        "documents": {d["code"]: d["label"] for d in (service or {}).get("required_documents", [])},
    }


@router.get("/verification/{case_id}", response_class=HTMLResponse)
async def case(
    case_id: UUID, request: Request, pages: Pages, services: Services, session: VerifierSession
) -> HTMLResponse:
    values = await _case_values(request, services, session, case_id)
    suggested = values["verification"]["suggested_outcome"]
    return pages.page(
        request,
        "verification/case.html",
        refusal=None,
        typed={"outcome": suggested, "reason": ""},
        **values,
    )


@router.post("/verification/{case_id}/confirmation", response_model=None)
async def confirm(
    case_id: UUID,
    request: Request,
    pages: Pages,
    services: Services,
    session: VerifierSession,
    form: Form,
) -> HTMLResponse | RedirectResponse:
    """Sends what the verifier chose: the outcome, their reason, the revision seen."""
    outcome = str(form.get("outcome", "")).strip()
    reason = str(form.get("reason", "")).strip()
    revision = str(form.get("revision", "")).strip()
    body: dict[str, Any] = {
        "outcome": outcome if outcome in OUTCOMES else None,
        "reason": reason or None,
        "revision": int(revision) if revision.isdigit() else None,
    }
    try:
        answer = await services.json(
            "verification",
            "POST",
            f"/verifications/{case_id}/confirmation",
            token=session.token,
            json=body,
        )
    except ServiceRefused as refusal:
        if not refusal.shown_on_form:
            raise
        values = await _case_values(request, services, session, case_id)
        return pages.page(
            request,
            "verification/case.html",
            status=refusal.form_status,
            refusal=refusal,
            typed={"outcome": outcome, "reason": reason},
            **values,
        )
    keep(
        request,
        session.with_flash(
            {"key": f"verification.confirmed_{answer.get('outcome', 'verified')}", "kind": "ok"}
        ),
    )
    return RedirectResponse("/verification", status_code=303)
