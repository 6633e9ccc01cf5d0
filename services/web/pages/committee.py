"""The research committee: the agenda, sittings with their attendance and quorum, each
member's vote or recusal from their own session, the chair's decision and closing,
the printable minutes, and the case's file as the committee holds it.

Every rule (who may vote, the quorum, whether the decision follows the votes) is the
committee service's: these pages show what it says and send what the person chose,
and show its refusals on the form that caused them.

The minutes are rendered with this app's own template from the sitting's data
(`GET /sittings/{id}`, JSON) and the association's pack (intake's public
`GET /associations/{id}`): the same facts as the service's printable HTML, inside
the app's layout, whose print stylesheet hides the menu.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.web.associations import client_term
from services.web.backends import ServiceRefused
from services.web.dependencies import Form, Pages, Services, is_htmx, keep, signed_in_with
from services.web.pages import NavLink
from services.web.paging import Page
from services.web.session import Session
from shared.roles import COMMITTEE_CHAIR, COMMITTEE_MEMBER

router = APIRouter(prefix="/committee")
ROLES = (COMMITTEE_MEMBER, COMMITTEE_CHAIR)
NAV = [
    NavLink("/committee/agenda", "committee.nav_agenda", ROLES, 50),
    NavLink("/committee/sittings", "committee.nav_sittings", ROLES, 51),
]
Member = Annotated[Session, Depends(signed_in_with(*ROLES))]
# A refusal the person can act on is shown on the form; others end in the error page.
ON_THE_FORM = (400, 403, 409, 422)
# The channels the catalogue names (committee.channels); any other is shown as its code.
CHANNELS = (
    "interview",
    "phone",
    "social_media",
    "letter",
    "help_request",
    "volunteering",
    "website",
    "branch_office",
)
PACK_SECONDS = 60.0
_packs: dict[str, tuple[float, dict[str, Any]]] = {}


def on_the_form(
    refusal: ServiceRefused, case_id: str | None, command: str, typed: dict[str, Any]
) -> dict[str, Any]:
    """A refusal shown on the form it answers, with what the person typed."""
    detail = refusal.detail if isinstance(refusal.detail, list) else None
    return {
        "case_id": case_id,
        "form": command,
        "code": refusal.code,
        "message": refusal.message,
        "detail": detail,
        "typed": typed,
    }


def redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def text_of(form: dict[str, Any], name: str) -> str:
    value = form.get(name, "")
    return str(value[-1] if isinstance(value, list) else value).strip()


def values_of(form: dict[str, Any], name: str) -> list[str]:
    value = form.get(name, [])
    return [str(v) for v in (value if isinstance(value, list) else [value]) if str(v)]


async def pack_of(services: Services, association_id: str) -> dict[str, Any]:
    """The association's policy (its committee's seats and names, its services), kept a minute."""
    kept = _packs.get(association_id)
    if kept and time.monotonic() - kept[0] < PACK_SECONDS:
        return kept[1]
    pack: dict[str, Any] = await services.json("intake", "GET", f"/associations/{association_id}")
    _packs[association_id] = (time.monotonic(), pack)
    return pack


def seat_names(pack: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {seat["id"]: seat["name"] for seat in pack.get("committee", {}).get("members", [])}


def service_names(pack: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {service["code"]: service["name"] for service in pack.get("services", [])}


def days_left(deadline: str | None) -> int | None:
    """Whole days until the deadline (negative once past it), for the reader."""
    if not deadline:
        return None
    seconds = (datetime.fromisoformat(deadline) - datetime.now(UTC)).total_seconds()
    return math.ceil(seconds / 86400) if seconds >= 0 else -math.ceil(-seconds / 86400)


def chosen_associations(session: Session, association_id: str | None) -> list[str]:
    mine = session.associations_with(*ROLES)
    return [association_id] if association_id in mine else mine


# The agenda ---------------------------------------------------------------------------


@router.get("/agenda", response_class=HTMLResponse)
async def agenda(
    request: Request,
    session: Member,
    pages: Pages,
    services: Services,
    paging: Page,
    association_id: str | None = None,
    case_ref: str = "",
) -> HTMLResponse:
    """The cases awaiting a decision, the nearest deadline first (or the one whose
    reference is asked for); it updates by itself."""
    chosen = chosen_associations(session, association_id)
    params = paging.query(
        association_id=chosen[0] if len(chosen) == 1 else None, case_ref=case_ref.strip()
    )
    found = await services.json("committee", "GET", "/agenda", token=session.token, params=params)
    rows, has_next = paging.window(found)
    packs = {a: await pack_of(services, a) for a in {row["association_id"] for row in rows}}
    named = await request.app.state.associations.named(session.associations_with(*ROLES))
    values = {
        "rows": [
            {
                **row,
                "days_left": days_left(row.get("deadline")),
                "service": service_names(packs[row["association_id"]]).get(row["service_code"]),
            }
            for row in rows
        ],
        "paging": paging,
        "has_next": has_next,
        "association_id": chosen[0] if len(chosen) == 1 and association_id else None,
        "case_ref": case_ref.strip(),
        "associations": named,
        "chaired": [a for a in named if session.holds(COMMITTEE_CHAIR, a["association_id"])],
    }
    template = "committee/_agenda.html" if is_htmx(request) else "committee/agenda.html"
    return pages.page(request, template, **values)


# Sittings -----------------------------------------------------------------------------


@router.get("/sittings", response_class=HTMLResponse)
async def sittings(
    request: Request,
    session: Member,
    pages: Pages,
    services: Services,
    paging: Page,
    association_id: str | None = None,
) -> HTMLResponse:
    chosen = chosen_associations(session, association_id)
    params = paging.query(association_id=chosen[0] if len(chosen) == 1 else None)
    found = await services.json("committee", "GET", "/sittings", token=session.token, params=params)
    rows, has_next = paging.window(found)
    named = await request.app.state.associations.named(session.associations_with(*ROLES))
    return pages.page(
        request,
        "committee/sittings.html",
        rows=rows,
        paging=paging,
        has_next=has_next,
        association_id=chosen[0] if len(chosen) == 1 and association_id else None,
        associations=named,
        names={a["association_id"]: a["name"] for a in named},
        chaired=[a for a in named if session.holds(COMMITTEE_CHAIR, a["association_id"])],
    )


@router.get("/sittings/new", response_class=HTMLResponse)
async def new_sitting(
    request: Request, session: Member, pages: Pages, services: Services, association_id: str
) -> HTMLResponse:
    """The chair records who is present (the seats of the association's committee)."""
    return await attendance_page(request, pages, services, association_id, None, None)


async def attendance_page(
    request: Request,
    pages: Pages,
    services: Services,
    association_id: str,
    present: list[str] | None,
    refusal: ServiceRefused | None,
) -> HTMLResponse:
    pack = await pack_of(services, association_id)
    seats = pack.get("committee", {}).get("members", [])
    return pages.page(
        request,
        "committee/new_sitting.html",
        status=400 if refusal else 200,
        association=await request.app.state.associations.get(association_id),
        association_id=association_id,
        seats=seats,
        quorum=pack.get("committee", {}).get("quorum"),
        present=[seat["id"] for seat in seats] if present is None else present,
        refusal=refusal,
    )


@router.post("/sittings", response_class=HTMLResponse, response_model=None)
async def open_sitting(
    request: Request, session: Member, pages: Pages, services: Services, form: Form
) -> HTMLResponse | RedirectResponse:
    association_id = text_of(form, "association_id")
    present = values_of(form, "members_present")
    try:
        opened = await services.json(
            "committee",
            "POST",
            "/sittings",
            token=session.token,
            json={"association_id": association_id, "members_present": present},
        )
    except ServiceRefused as refusal:
        if refusal.status not in ON_THE_FORM:
            raise
        return await attendance_page(request, pages, services, association_id, present, refusal)
    keep(request, session.with_flash({"key": "committee.sitting_opened"}))
    return redirect(f"/committee/sittings/{opened['sitting_id']}")


async def sitting_cases(
    services: Services, session: Session, sitting: dict[str, Any]
) -> list[dict[str, Any]]:
    """The sitting's agenda (undecided cases, by deadline) and the cases it already
    acted on, each with its record at this sitting (votes, recusals, decision)."""
    sitting_id = sitting["sitting_id"]
    waiting: list[dict[str, Any]] = []
    if not sitting["closed"]:
        waiting = await services.json(
            "committee", "GET", f"/sittings/{sitting_id}/agenda", token=session.token
        )
    records = {record["case_id"]: record for record in sitting["cases"]}
    cases = [{**doc, "record": records.pop(doc["case_id"], None)} for doc in waiting]
    cases += [
        {"case_id": case_id, "case_ref": record["case_ref"], "record": record}
        for case_id, record in records.items()
    ]
    for case in cases:
        case["days_left"] = days_left(case.get("deadline"))
    return cases


async def sitting_values(
    request: Request, services: Services, session: Session, sitting_id: str
) -> dict[str, Any]:
    sitting = await services.json(
        "committee", "GET", f"/sittings/{sitting_id}", token=session.token
    )
    association_id = sitting["association_id"]
    pack = await pack_of(services, association_id)
    association = await request.app.state.associations.get(association_id)
    return {
        "sitting": sitting,
        "association": association,
        "client": client_term(association, session.lang),
        "seats": seat_names(pack),
        "services": service_names(pack),
        "me": session.username,
        "chair": session.holds(COMMITTEE_CHAIR, association_id),
        "member": session.holds(COMMITTEE_MEMBER, association_id)
        or session.holds(COMMITTEE_CHAIR, association_id),
    }


@router.get("/sittings/{sitting_id}", response_class=HTMLResponse)
async def sitting_page(
    request: Request, session: Member, pages: Pages, services: Services, sitting_id: str
) -> HTMLResponse:
    """Attendance, quorum, and each case with its votes so far and the forms to act."""
    return await render_sitting(request, pages, services, session, sitting_id, None)


async def render_sitting(
    request: Request,
    pages: Pages,
    services: Services,
    session: Session,
    sitting_id: str,
    problem: dict[str, Any] | None,
) -> HTMLResponse:
    values = await sitting_values(request, services, session, sitting_id)
    values["cases"] = await sitting_cases(services, session, values["sitting"])
    return pages.page(
        request,
        "committee/sitting.html",
        status=400 if problem else 200,
        problem=problem,
        **values,
    )


@router.get("/sittings/{sitting_id}/cases/{case_id}/status", response_class=HTMLResponse)
async def case_status(
    request: Request,
    session: Member,
    pages: Pages,
    services: Services,
    sitting_id: str,
    case_id: str,
) -> HTMLResponse:
    """One case at the sitting as it now stands (the fragment the page polls)."""
    values = await sitting_values(request, services, session, sitting_id)
    record = next((c for c in values["sitting"]["cases"] if c["case_id"] == case_id), None)
    case = {"case_id": case_id, "case_ref": record["case_ref"] if record else "", "record": record}
    return pages.page(request, "committee/_case_status.html", case=case, **values)


async def act(
    request: Request,
    session: Session,
    pages: Pages,
    services: Services,
    form: Form,
    where: tuple[str, str, str],
    body: dict[str, Any],
) -> HTMLResponse | RedirectResponse:
    """Sends one member's or the chair's command on a case; its refusal on the form."""
    sitting_id, case_id, command = where
    path = f"/sittings/{sitting_id}/cases/{case_id}/{command}"
    try:
        await services.json("committee", "POST", path, token=session.token, json=body)
    except ServiceRefused as refusal:
        if refusal.status not in ON_THE_FORM:
            raise
        problem = on_the_form(refusal, case_id, command, form)
        return await render_sitting(request, pages, services, session, sitting_id, problem)
    keep(request, session.with_flash({"key": f"committee.done.{command}"}))
    return redirect(f"/committee/sittings/{sitting_id}#case-{case_id}")


@router.post("/sittings/{sitting_id}/cases/{case_id}/vote", response_model=None)
async def vote(
    request: Request,
    session: Member,
    pages: Pages,
    services: Services,
    form: Form,
    sitting_id: str,
    case_id: str,
) -> HTMLResponse | RedirectResponse:
    body = {"vote": text_of(form, "vote"), "dissent_note": text_of(form, "dissent_note") or None}
    return await act(request, session, pages, services, form, (sitting_id, case_id, "votes"), body)


@router.post("/sittings/{sitting_id}/cases/{case_id}/recusal", response_model=None)
async def recuse(
    request: Request,
    session: Member,
    pages: Pages,
    services: Services,
    form: Form,
    sitting_id: str,
    case_id: str,
) -> HTMLResponse | RedirectResponse:
    body = {"reason": text_of(form, "reason")}
    return await act(
        request, session, pages, services, form, (sitting_id, case_id, "recusals"), body
    )


@router.post("/sittings/{sitting_id}/cases/{case_id}/decision", response_model=None)
async def decide(
    request: Request,
    session: Member,
    pages: Pages,
    services: Services,
    form: Form,
    sitting_id: str,
    case_id: str,
) -> HTMLResponse | RedirectResponse:
    reasons = [line.strip() for line in text_of(form, "reasons").splitlines() if line.strip()]
    body = {"decision": text_of(form, "decision"), "reasons": reasons}
    return await act(
        request, session, pages, services, form, (sitting_id, case_id, "decision"), body
    )


@router.post("/sittings/{sitting_id}/close", response_model=None)
async def close(
    request: Request, session: Member, pages: Pages, services: Services, form: Form, sitting_id: str
) -> HTMLResponse | RedirectResponse:
    try:
        await services.json(
            "committee", "POST", f"/sittings/{sitting_id}/close", token=session.token
        )
    except ServiceRefused as refusal:
        if refusal.status not in ON_THE_FORM:
            raise
        problem = on_the_form(refusal, None, "close", form)
        return await render_sitting(request, pages, services, session, sitting_id, problem)
    keep(request, session.with_flash({"key": "committee.sitting_closed"}))
    return redirect(f"/committee/sittings/{sitting_id}")


@router.get("/sittings/{sitting_id}/minutes", response_class=HTMLResponse)
async def minutes(
    request: Request, session: Member, pages: Pages, services: Services, sitting_id: str
) -> HTMLResponse:
    """The sitting's minutes, printable (the layout's print stylesheet hides the menu)."""
    values = await sitting_values(request, services, session, sitting_id)
    pack = await pack_of(services, values["sitting"]["association_id"])
    return pages.page(request, "committee/minutes.html", board=pack.get("board_approval"), **values)


# The case's file ------------------------------------------------------------------------


@router.get("/cases/{case_id}", response_class=HTMLResponse)
async def case_file(
    request: Request, session: Member, pages: Pages, services: Services, case_id: str
) -> Response:
    """What the committee holds of the request (each read is access-logged by the service)."""
    file = await services.json("committee", "GET", f"/cases/{case_id}/file", token=session.token)
    association = await request.app.state.associations.get(file["association_id"])
    pack = await pack_of(services, file["association_id"])
    return pages.page(
        request,
        "committee/case_file.html",
        file=file,
        association=association,
        client=client_term(association, session.lang),
        services=service_names(pack),
        channels=CHANNELS,
    )
