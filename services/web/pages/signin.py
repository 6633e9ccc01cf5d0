"""Everyone: sign in (and choose one's own password the first time), sign out,
the language, and the staff's home page with what each role may open."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from services.web.backends import ServiceRefused
from services.web.dependencies import Form, Pages, SignedIn, Visitor, keep
from services.web.rendering import returning_to
from services.web.session import LANGUAGES

router = APIRouter()


def safe_next(value: Any) -> str:
    """Where to go after signing in: a path of this site only."""
    path = str(value or "")
    return path if path.startswith("/") and not path.startswith("//") else "/staff"


def redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


@router.get("/signin", response_class=HTMLResponse)
async def signin_page(request: Request, pages: Pages, next: str = "/staff") -> HTMLResponse:
    return pages.page(request, "signin/signin.html", next=safe_next(next), error=None)


@router.post("/signin", response_class=HTMLResponse, response_model=None)
async def sign_in(
    request: Request, pages: Pages, session: Visitor, form: Form
) -> HTMLResponse | RedirectResponse:
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    target = safe_next(form.get("next"))
    try:
        signed = await request.app.state.signing.sign_in(username, password, session.lang)
    except ServiceRefused as refusal:
        if refusal.code == "password_change_required":
            return pages.page(
                request, "signin/choose_password.html", next=target, error=None, username=username
            )
        return pages.page(
            request,
            "signin/signin.html",
            status=400 if refusal.status < 500 else 503,
            next=target,
            error=refusal.message,
            username=username,
        )
    keep(request, signed)
    return redirect(target)


@router.post("/signin/password", response_class=HTMLResponse, response_model=None)
async def choose_password(
    request: Request, pages: Pages, session: Visitor, form: Form
) -> HTMLResponse | RedirectResponse:
    """The first sign-in with a one-time password: the person chooses their own."""
    username = str(form.get("username", "")).strip()
    target = safe_next(form.get("next"))
    new_password = str(form.get("new_password", ""))
    signing = request.app.state.signing
    try:
        if new_password != str(form.get("repeat_password", "")):
            raise ServiceRefused(400, "passwords_differ", signing.differ)
        await signing.change_password(username, str(form.get("current_password", "")), new_password)
        signed = await signing.sign_in(username, new_password, session.lang)
    except ServiceRefused as refusal:
        return pages.page(
            request,
            "signin/choose_password.html",
            status=400,
            next=target,
            error=refusal.message,
            username=username,
        )
    keep(request, signed)
    return redirect(target)


@router.post("/signout")
async def sign_out(request: Request, session: Visitor, form: Form) -> RedirectResponse:
    keep(request, session.signed_out())
    return redirect("/signin")


@router.post("/language")
async def language(request: Request, session: Visitor, form: Form) -> RedirectResponse:
    chosen = str(form.get("lang", ""))
    if chosen in LANGUAGES:
        keep(request, replace(session, lang=chosen))
    return redirect(returning_to(request, safe_next(form.get("next") or "/")))


@router.get("/staff", response_class=HTMLResponse)
async def staff_home(request: Request, pages: Pages, session: SignedIn) -> HTMLResponse:
    associations = await request.app.state.associations.named(sorted(session.roles))
    known = request.app.state.associations
    links = [link for link in request.app.state.navigation if link.offered_to(session, known)]
    return pages.page(
        request, "signin/home.html", links=links, associations=associations, now=time.time()
    )
