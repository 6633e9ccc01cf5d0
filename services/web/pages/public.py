"""The public pages: the website channel of every association, with no sign-in.

The associations and what each service needs, the eligibility question, the
application form with its declaration, "where is my request?" with the
reference and its secret code (and completing or correcting it there), and the
survey reached from the invitation's link. A request is submitted with the
website client's token; everything shown is what the services answer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.web import request_form as rf
from services.web.associations import client_term
from services.web.backends import Backends, ServiceRefused
from services.web.dependencies import Form, Pages, Services, Visitor, is_htmx, keep
from services.web.pages import NavLink
from shared.form_link import FormLinkKey, PrefillRefused
from shared.limits import RateLimited

# The applicants' pages: each visitor's requests within the public budget.
router = APIRouter(dependencies=[RateLimited])
NAV: list[NavLink] = []  # the public pages are not in the staff's menu

WEBSITE = "website"
# The applicant declares online, on the website or with their secret code.
ONLINE = "one_time_code"


# A refusal the applicant can fix on the form they sent.
def redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def after_submission(request: Request, path: str) -> Response:
    """Where a sent request goes: htmx (which drops a second click while the first
    is under way, so the code shown once is not lost to a repeat) is told to go."""
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": path})
    return redirect(path)


def refused_status(request: Request, refusal: ServiceRefused) -> int:
    """htmx swaps only a success: the re-rendered form answers 200 to it."""
    return 200 if is_htmx(request) else refusal.status


async def pack_of(services: Backends, association_id: str) -> dict[str, Any]:
    """The association's pack, as intake's `GET /associations/{id}` gives it."""
    pack: dict[str, Any] = await services.json("intake", "GET", f"/associations/{association_id}")
    return pack


async def pack_and_service(
    services: Backends, association_id: str, service_code: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The association's pack and one of its services (a 404 page when it has none)."""
    pack = await pack_of(services, association_id)
    service = rf.service_of(pack, service_code)
    if service is None:
        raise ServiceRefused(
            404,
            "service_not_found",
            {
                "en": "This association has no such service.",
                "ar": "لا توجد هذه الخدمة لدى الجمعية.",
            },
        )
    return pack, service


def terms(pack: dict[str, Any], lang: str) -> dict[str, str]:
    return {"client": client_term(pack, lang), "clients": client_term(pack, lang, plural=True)}


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, pages: Pages) -> HTMLResponse:
    associations = await request.app.state.associations.all()
    return pages.page(request, "public/home.html", associations=associations)


@router.get("/a/{association_id}", response_class=HTMLResponse)
async def association(
    request: Request, association_id: str, pages: Pages, services: Services, session: Visitor
) -> HTMLResponse:
    pack = await pack_of(services, association_id)
    return pages.page(
        request,
        "public/association.html",
        pack=pack,
        terms=terms(pack, session.lang),
        takes_requests=website_open(request, pack),
    )


def website_open(request: Request, pack: dict[str, Any]) -> bool:
    return request.app.state.website is not None and WEBSITE in pack.get("channels", [])


# The eligibility question -------------------------------------------------------


@router.get("/a/{association_id}/{service_code}/eligibility", response_class=HTMLResponse)
async def eligibility_page(
    request: Request,
    association_id: str,
    service_code: str,
    pages: Pages,
    services: Services,
    session: Visitor,
) -> HTMLResponse:
    pack, service = await pack_and_service(services, association_id, service_code)
    return pages.page(
        request,
        "public/eligibility.html",
        pack=pack,
        service=service,
        spec=rf.eligibility_form(service),
        values={},
        answer=None,
        terms=terms(pack, session.lang),
    )


@router.post("/a/{association_id}/{service_code}/eligibility", response_class=HTMLResponse)
async def eligibility(
    request: Request,
    association_id: str,
    service_code: str,
    pages: Pages,
    services: Services,
    session: Visitor,
    form: Form,
) -> HTMLResponse:
    """Intake's answer (eligible or not, and why): the fragment for htmx, or the page."""
    pack, service = await pack_and_service(services, association_id, service_code)
    question = rf.eligibility_question(form, service, association_id)
    answer = await services.json("intake", "POST", "/eligibility", json=question)
    if is_htmx(request):
        return pages.page(request, "public/_eligibility.html", answer=answer)
    return pages.page(
        request,
        "public/eligibility.html",
        pack=pack,
        service=service,
        spec=rf.eligibility_form(service),
        values=rf.values_of(form),
        answer=answer,
        terms=terms(pack, session.lang),
    )


# The application form ------------------------------------------------------------


def apply_page(
    request: Request,
    pages: Pages,
    pack: dict[str, Any],
    service: dict[str, Any],
    lang: str,
    *,
    values: dict[str, str] | None = None,
    refusal: ServiceRefused | None = None,
    status: int = 200,
    notice: str | None = None,
) -> HTMLResponse:
    spec = rf.whole_form(service)
    values = values or {}
    problems = rf.problems_of(refusal.detail, spec.documents) if refusal else {}
    return pages.page(
        request,
        "public/apply.html",
        status=status,
        pack=pack,
        service=service,
        spec=spec,
        values=values,
        problems=problems,
        refusal=refusal,
        notice=notice,
        channel_ref=values.get("channel_ref") or str(uuid4()),
        takes_requests=website_open(request, pack),
        terms=terms(pack, lang),
    )


@router.get("/a/{association_id}/{service_code}/apply", response_class=HTMLResponse)
async def apply_form(
    request: Request,
    association_id: str,
    service_code: str,
    pages: Pages,
    services: Services,
    session: Visitor,
    prefill: str | None = None,
) -> HTMLResponse:
    """The empty form, or, from a channel's link, filled with what the applicant
    already gave (a link that does not open: the empty form and a notice)."""
    pack, service = await pack_and_service(services, association_id, service_code)
    values, notice = prefilled(request, association_id, service, prefill)
    return apply_page(request, pages, pack, service, session.lang, values=values, notice=notice)


def prefilled(
    request: Request, association_id: str, service: dict[str, Any], token: str | None
) -> tuple[dict[str, str], str | None]:
    """The inputs a link's sealed prefill fills, and the notice's key when it does not
    open. Without a form-link key a prefill is ignored, as links are then plain."""
    key: FormLinkKey | None = request.app.state.form_link_key
    if not token or key is None:
        return {}, None
    try:
        known = key.open(token, association_id, service["code"], datetime.now(UTC))
    except PrefillRefused as refused:
        return {}, f"public.prefill_{refused.reason}"
    return rf.values_of_submission(known, rf.whole_form(service)), None


@router.post("/a/{association_id}/{service_code}/apply", response_model=None)
async def apply(
    request: Request,
    association_id: str,
    service_code: str,
    pages: Pages,
    services: Services,
    session: Visitor,
    form: Form,
) -> Response:
    """Submits with the website's token; the reference and the code are shown once."""
    pack, service = await pack_and_service(services, association_id, service_code)
    if not website_open(request, pack):
        return apply_page(request, pages, pack, service, session.lang, status=503)
    body = rf.submission_of(
        form,
        rf.whole_form(service),
        association_id=association_id,
        service_code=service_code,
        channel=WEBSITE,
        method=ONLINE,
    )
    try:
        token = await request.app.state.website.get()
        result = await services.json("intake", "POST", "/submissions", token=token, json=body)
    except ServiceRefused as refusal:
        if not refusal.shown_on_form:
            raise
        values = rf.values_of(form)
        return apply_page(
            request,
            pages,
            pack,
            service,
            session.lang,
            values=values,
            refusal=refusal,
            status=refused_status(request, refusal),
        )
    shown = {
        "key": "public.applied_flash",
        "kind": "ok",
        "case_ref": str(result["case_ref"]),
        "code": str(result.get("access_code") or ""),
        "association_id": association_id,
    }
    keep(request, session.with_flash(shown))
    return after_submission(request, "/applied")


@router.get("/applied", response_class=HTMLResponse)
async def applied(request: Request, pages: Pages, session: Visitor) -> HTMLResponse:
    """The reference and the secret code, once: a reload no longer shows the code."""
    shown = dict(session.flash or {})
    association = None
    if shown.get("association_id"):
        association = await request.app.state.associations.get(shown["association_id"])
    return pages.page(
        request,
        "public/applied.html",
        shown=shown if "case_ref" in shown else None,
        client=client_term(association, session.lang),
    )


# Where is my request? ----------------------------------------------------------------


async def my_request(services: Backends, case_ref: str, code: str) -> dict[str, Any] | None:
    """Intake's status with the code; None for a wrong code or an unknown reference alike."""
    if not case_ref or not code:
        return None
    try:
        view: dict[str, Any] = await services.json(
            "intake", "GET", f"/cases/{case_ref}/status", headers={"X-Case-Code": code}
        )
    except ServiceRefused as refusal:
        if refusal.status in (400, 404, 422):
            return None
        raise
    return view


async def status_page(
    request: Request,
    pages: Pages,
    services: Backends,
    lang: str,
    form: dict[str, Any],
    *,
    refusal: ServiceRefused | None = None,
    sent: bool = False,
) -> HTMLResponse:
    case_ref, code = rf.text_of(form, "case_ref"), rf.text_of(form, "code")
    view = await my_request(services, case_ref, code)
    if view is None:
        return pages.page(
            request,
            "public/status_ask.html",
            status=404 if case_ref else 200,
            case_ref=case_ref,
            not_found=bool(case_ref),
        )
    pack, service = await pack_and_service(services, view["association_id"], view["service_code"])
    missing = rf.missing_form(service, view.get("missing", []))
    corrections = rf.corrections_form(service, view.get("corrections", []))
    return pages.page(
        request,
        "public/status.html",
        status=refusal.status if refusal else 200,
        view=view,
        pack=pack,
        service=service,
        code=code,
        missing_spec=missing if view.get("missing") else None,
        corrections_spec=corrections if view.get("corrections") else None,
        values=rf.values_of(form) if refusal else {},
        problems=rf.problems_of(refusal.detail, missing.documents + corrections.documents)
        if refusal
        else {},
        refusal=refusal,
        sent=sent,
        terms=terms(pack, lang),
    )


@router.get("/status", response_class=HTMLResponse)
async def status_ask(request: Request, pages: Pages) -> HTMLResponse:
    return pages.page(request, "public/status_ask.html", case_ref="", not_found=False)


@router.post("/status", response_class=HTMLResponse)
async def status(
    request: Request, pages: Pages, services: Services, session: Visitor, form: Form
) -> HTMLResponse:
    """A lookup, not a change: answered on the POST so the code never is in a URL."""
    return await status_page(request, pages, services, session.lang, form)


@router.post("/status/{what}", response_class=HTMLResponse)
async def status_send(
    request: Request, what: str, pages: Pages, services: Services, session: Visitor, form: Form
) -> HTMLResponse:
    """The applicant completes (`information`) or corrects (`corrections`) with the code."""
    case_ref, code = rf.text_of(form, "case_ref"), rf.text_of(form, "code")
    view = await my_request(services, case_ref, code)
    if view is None or what not in ("information", "corrections"):
        return await status_page(request, pages, services, session.lang, form)
    _, service = await pack_and_service(services, view["association_id"], view["service_code"])
    if what == "information":
        spec = rf.missing_form(service, view.get("missing", []))
        body, path = rf.information_of(form, spec, ONLINE), f"/cases/{view['case_id']}/information"
    else:
        spec = rf.corrections_form(service, view.get("corrections", []))
        body, path = rf.corrections_of(form, spec, ONLINE), f"/cases/{case_ref}/corrections"
    try:
        await services.json("intake", "POST", path, json=body, headers={"X-Case-Code": code})
    except ServiceRefused as refusal:
        if not refusal.shown_on_form:
            raise
        return await status_page(request, pages, services, session.lang, form, refusal=refusal)
    return await status_page(request, pages, services, session.lang, form, sent=True)


# The survey, from the invitation's link --------------------------------------------


def survey_closed(request: Request, pages: Pages, refusal: ServiceRefused) -> HTMLResponse:
    return pages.page(
        request,
        "public/survey_closed.html",
        status=refusal.status,
        refusal=refusal,
        answered=refusal.status != 404,
    )


@router.get("/surveys/{token}", response_class=HTMLResponse)
async def survey(request: Request, token: str, pages: Pages, services: Services) -> HTMLResponse:
    try:
        found = await services.json("surveys", "GET", f"/surveys/{token}")
    except ServiceRefused as refusal:
        if refusal.status in (404, 409, 410, 422):
            return survey_closed(request, pages, refusal)
        raise
    return pages.page(request, "public/survey.html", survey=found, token=token, refusal=None)


def survey_answer(form: dict[str, Any]) -> dict[str, Any]:
    """The answer's body (surveys' `Answer`): ratings, the comment, whether anonymous."""
    satisfaction = rf.typed(rf.text_of(form, "satisfaction"), "integer")
    recommend = rf.text_of(form, "recommend")
    return {
        "ratings": {
            "satisfaction": satisfaction if satisfaction != "" else None,
            "recommend": rf.typed(recommend, "integer") if recommend else None,
        },
        "comment": rf.text_of(form, "comment") or None,
        "anonymous": bool(rf.text_of(form, "anonymous")),
    }


@router.post("/surveys/{token}", response_model=None)
async def answer(
    request: Request, token: str, pages: Pages, services: Services, session: Visitor, form: Form
) -> HTMLResponse | RedirectResponse:
    try:
        await services.json(
            "surveys", "POST", f"/surveys/{token}/answers", json=survey_answer(form)
        )
    except ServiceRefused as refusal:
        if refusal.status in (404, 409, 410):
            return survey_closed(request, pages, refusal)
        if refusal.status != 422:
            raise
        found = await services.json("surveys", "GET", f"/surveys/{token}")
        return pages.page(
            request, "public/survey.html", status=422, survey=found, token=token, refusal=refusal
        )
    keep(request, session.with_flash({"key": "public.survey_thanks", "kind": "ok"}))
    return redirect("/survey-thanks")


@router.get("/survey-thanks", response_class=HTMLResponse)
async def survey_thanks(request: Request, pages: Pages) -> HTMLResponse:
    return pages.page(request, "public/survey_thanks.html")
