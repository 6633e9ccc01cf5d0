"""Survey results: answers and satisfaction by service, channel and stage, never by
officer (surveys' `GET /results`, which suppresses groups too small to show)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from services.web.dependencies import Pages, Services, signed_in_with
from services.web.pages import NavLink
from services.web.session import Session
from shared.roles import AUDITOR, SURVEYS_OFFICER

router = APIRouter()
READERS = (SURVEYS_OFFICER, AUDITOR)
NAV = [NavLink("/survey-results", "surveys.nav", READERS, 70)]
Reader = Annotated[Session, Depends(signed_in_with(*READERS))]
BREAKDOWNS = ("service_code", "channel", "stage", "association_id")


def group_label(
    dimension: str, value: str, associations: dict[str, Any], t: Any
) -> dict[str, str] | str:
    """A group's name as a person reads it: the pack's service name, the channel's, the stage's."""
    if dimension == "service_code":
        for association in associations.values():
            for service in association["services"]:
                if service["code"] == value:
                    return dict(service["name"])
        return value
    if dimension == "association_id" and value in associations:
        return dict(associations[value]["name"])
    if dimension in ("channel", "stage"):
        key = f"surveys.{'channels' if dimension == 'channel' else 'stages'}.{value}"
        return {lang: t(key, lang) for lang in ("ar", "en")}
    return value


@router.get("/survey-results", response_class=HTMLResponse)
async def results(
    request: Request, pages: Pages, services: Services, session: Reader, association: str = ""
) -> HTMLResponse:
    held = session.associations_with(*READERS)
    params = {"association_id": association} if association in held else {}
    found = await services.json("surveys", "GET", "/results", token=session.token, params=params)
    associations = {
        a["association_id"]: a for a in await request.app.state.associations.named(held)
    }
    text = request.app.state.renderer.catalogue.text
    tables = [
        (
            dimension,
            [
                {**row, "label": group_label(dimension, row[dimension], associations, text)}
                for row in found.get(f"by_{dimension}", [])
            ],
        )
        for dimension in BREAKDOWNS
        if dimension != "association_id" or len(held) > 1
    ]
    return pages.page(
        request,
        "surveys/results.html",
        tables=tables,
        note=found.get("note"),
        minimum=found.get("minimum_answers"),
        associations=associations,
        association=association if association in held else "",
    )
