"""What a page depends on: the session, the signed-in person, a checked form, the
services, the renderer; and the refusals a page can end in.

Every state-changing request (POST) must carry the session's CSRF token, in the
form field `csrf_token` or, from htmx, the `X-CSRF-Token` header: the routers
check it as a dependency of their own, so no form can forget it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Annotated, Any

from fastapi import Depends, Request

from services.web.backends import Backends
from services.web.rendering import Renderer
from services.web.session import Session, csrf_matches
from shared.limits import limiter_of

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


class SignInNeeded(Exception):
    """The page is for staff, and nobody (or nobody any longer) is signed in."""

    def __init__(self, expired: bool = False):
        super().__init__("sign in needed")
        self.expired = expired


class PageRefused(Exception):
    """A page refused with a status, a stable code and a message from the catalogue."""

    def __init__(self, status: int, code: str, message_key: str):
        super().__init__(code)
        self.status = status
        self.code = code
        self.message_key = message_key


def is_htmx(request: Request) -> bool:
    """An htmx request (a poll, a fragment): it is answered the fragment, not the page."""
    return request.headers.get("HX-Request") == "true"


def session_of(request: Request) -> Session:
    session: Session = request.state.session
    return session


def keep(request: Request, session: Session) -> None:
    """The session the response's cookie will carry."""
    request.state.session = session


def renderer_of(request: Request) -> Renderer:
    renderer: Renderer = request.app.state.renderer
    return renderer


def backends_of(request: Request) -> Backends:
    """The services, asked on behalf of this request's client: they count an
    applicant's requests against the applicant's address, not the web's."""
    backends: Backends = request.app.state.backends
    peer = request.client.host if request.client else None
    address = limiter_of(request.app).client_address(peer, request.headers.get("x-forwarded-for"))
    return replace(backends, forwarded_for=address)


async def checked_form(request: Request) -> dict[str, Any]:
    """The form of a state-changing request, once its CSRF token is the session's."""
    session = session_of(request)
    form = await request.form()
    sent = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)
    if not csrf_matches(session, sent if isinstance(sent, str) else None):
        raise PageRefused(403, "csrf_failed", "errors.csrf_failed")
    return {
        key: form.getlist(key) if len(form.getlist(key)) > 1 else value
        for key, value in form.items()
    }


async def csrf_protected(request: Request) -> None:
    """Router dependency: every POST, PUT, PATCH and DELETE is checked."""
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        request.state.form = await checked_form(request)


def signed_in_with(*roles: str) -> Callable[[Request], Awaitable[Session]]:
    """A dependency: the signed-in person, who holds one of the roles somewhere."""

    async def dependency(request: Request) -> Session:
        session = session_of(request)
        if not session.signed_in:
            raise SignInNeeded(expired=bool(session.username))
        if roles and not any(session.holds(role) for role in roles):
            raise PageRefused(403, "forbidden", "errors.forbidden")
        return session

    return dependency


SignedIn = Annotated[Session, Depends(signed_in_with())]
Pages = Annotated[Renderer, Depends(renderer_of)]
Services = Annotated[Backends, Depends(backends_of)]
Visitor = Annotated[Session, Depends(session_of)]


def form_of(request: Request, _: Annotated[None, Depends(csrf_protected)]) -> dict[str, Any]:
    """The form of this POST, once its CSRF token is checked."""
    form: dict[str, Any] = getattr(request.state, "form", {})
    return form


Form = Annotated[dict[str, Any], Depends(form_of)]
