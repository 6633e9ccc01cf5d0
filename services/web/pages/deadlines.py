"""Deadlines: the committee's undecided cases near or past their decision window,
by association, for the committee and the auditor (committee's `GET /deadlines`).
The list updates by itself; the days left are the committee's, by its clock."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from services.web.dependencies import Pages, Services, is_htmx, signed_in_with
from services.web.pages import NavLink
from services.web.paging import Page
from services.web.session import Session
from shared.dates import arabic_digits
from shared.roles import AUDITOR, COMMITTEE_CHAIR, COMMITTEE_MEMBER

router = APIRouter()
READERS = (COMMITTEE_MEMBER, COMMITTEE_CHAIR, AUDITOR)
NAV = [NavLink("/deadlines", "deadlines.nav", READERS, 40)]
Reader = Annotated[Session, Depends(signed_in_with(*READERS))]
STATUSES = ("approaching", "overdue")
STAGES = ("on_agenda", "awaiting_research", "awaiting_correction", "awaiting_verification")


def days_text(days: int | None, lang: str) -> tuple[str, dict[str, str]] | None:
    """The catalogue key for the days left (or late) and its number, Arabic's plural forms."""
    if days is None:
        return None
    if days == 0:
        return "deadlines.last_day", {}
    count = abs(days)
    form = "1" if count == 1 else "2" if count == 2 else "few" if count <= 10 else "many"
    shown = arabic_digits(str(count)) if lang == "ar" else str(count)
    return f"deadlines.{'left' if days > 0 else 'late'}_{form}", {"n": shown}


def shown_row(
    row: dict[str, Any], services: dict[tuple[str, str], Any], lang: str
) -> dict[str, Any]:
    stage = next((name for name in STAGES if row.get(name)), None)
    return {
        **row,
        "service_name": services.get((row["association_id"], row.get("service_code") or "")),
        "days": days_text(row.get("days_left"), lang),
        "stage": stage,
    }


@router.get("/deadlines", response_class=HTMLResponse)
async def deadlines(
    request: Request,
    pages: Pages,
    services: Services,
    session: Reader,
    paging: Page,
    association: str = "",
    status: str = "",
) -> HTMLResponse:
    held = session.associations_with(*READERS)
    params = paging.query(
        association_id=association if association in held else None,
        status=status if status in STATUSES else None,
    )
    found = await services.json(
        "committee", "GET", "/deadlines", token=session.token, params=params
    )
    rows, has_next = paging.window(found)
    associations = await request.app.state.associations.named(held)
    names = {
        (a["association_id"], s["code"]): s["name"] for a in associations for s in a["services"]
    }
    template = "deadlines/_list.html" if is_htmx(request) else "deadlines/deadlines.html"
    return pages.page(
        request,
        template,
        rows=[shown_row(row, names, session.lang) for row in rows],
        associations={a["association_id"]: a for a in associations},
        association=association if association in held else "",
        flag=status if status in STATUSES else "",
        statuses=STATUSES,
        paging=paging,
        has_next=has_next,
    )
