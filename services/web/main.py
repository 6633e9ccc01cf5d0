"""Assembles the web application: the one place its dependencies are built."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from services.web import pages
from services.web.associations import Associations
from services.web.backends import Backends, ServiceRefused, website_credentials
from services.web.dependencies import PageRefused, SignInNeeded, is_htmx, keep, session_of
from services.web.i18n import Catalogue
from services.web.middleware import SessionMiddleware
from services.web.rendering import Renderer
from services.web.session import SessionCodec, session_key
from services.web.settings import WebSettings
from services.web.signing import Signing
from shared.auth import Verifier, verifier_from_environment
from shared.errors import Refused
from shared.files import keep_private
from shared.form_link import load_key_or_exit
from shared.http import TracedRequests, refusal_status, run_server, traced_client
from shared.limits import BodySizeLimit, Limiter, LimitSettings
from shared.logging import configure_logging
from shared.machine_token import MachineToken
from shared.settings import load_settings

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


def build(settings: WebSettings, verifier: Verifier | None = None) -> FastAPI:
    urls = {
        "intake": settings.intake_url,
        "verification": settings.verification_url,
        "committee": settings.committee_url,
        "surveys": settings.surveys_url,
        "privacy": settings.privacy_url,
        "audit": settings.audit_url,
        "identity": settings.identity_url,
        "channels": settings.channels_url,
    }
    client = traced_client(
        [*urls.values(), settings.token_endpoint], timeout=settings.backend_timeout_seconds
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await client.aclose()

    # Pages for people, not an API: no OpenAPI document and no /docs.
    app = FastAPI(
        title="Khidma web", lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None
    )
    app.state.settings = settings
    app.state.renderer = Renderer(Catalogue.load())
    backends = Backends(urls, client)
    app.state.backends = backends
    app.state.associations = Associations(backends)
    app.state.signing = Signing(
        settings.token_endpoint,
        f"{settings.identity_url.rstrip('/')}/account/password",
        verifier or verifier_from_environment(),
        client,
        settings.staff_client_id,
    )
    credentials = website_credentials(
        settings.website_client_id, settings.website_client_secret, settings.website_client_file
    )
    app.state.website = (
        MachineToken(settings.token_endpoint, *credentials, client) if credentials else None
    )
    # Opens the known fields a channel sealed into a form link (None: links are plain).
    app.state.form_link_key = load_key_or_exit(
        settings.form_link_key_path,
        configured=settings.form_link_key_configured,
        service_name="web",
    )
    limits = load_settings(LimitSettings)
    app.state.limiter = Limiter(limits)
    app.state.navigation = pages.include(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    answer_refusals(app)

    @app.get("/health", include_in_schema=False)
    async def health() -> JSONResponse:
        return JSONResponse({"alive": True})

    @app.get("/ready", include_in_schema=False)
    async def ready() -> JSONResponse:
        return JSONResponse({"ready": True, "website_client": credentials is not None})

    app.add_middleware(BodySizeLimit, limit=limits.max_body_bytes)
    app.add_middleware(
        SessionMiddleware,
        codec=SessionCodec(session_key(settings.session_key_path)),
        secure=settings.cookie_secure,
    )
    app.add_middleware(TracedRequests)
    return app


def _to_sign_in(request: Request, expired: bool) -> Response:
    session = session_of(request).signed_out()
    if expired:
        session = session.with_flash({"key": "signin.session_ended"})
    keep(request, session)
    target = "/signin?next=" + str(request.url.path)
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


# htmx swaps no 4xx or 5xx answer: a refused submission would change nothing on the
# screen. It gets a 200 whose fragment goes above the page instead, so the person reads
# why and keeps what they typed; a refused poll (a GET) waits for the next one.
REFUSAL_PANEL = {
    "HX-Retarget": "#page-refusal",
    "HX-Reswap": "innerHTML show:top",
    "HX-Reselect": ".refusal",
}


def refusal_page(
    request: Request, status: int, message: Mapping[str, str], code: str
) -> HTMLResponse:
    """The error page, or for an htmx submission the refusal above the page it came from."""
    renderer: Renderer = request.app.state.renderer
    if is_htmx(request) and request.method != "GET":
        panel = renderer.page(request, "_refusal.html", message=message, code=code)
        panel.headers.update(REFUSAL_PANEL)
        return panel
    return renderer.page(request, "error.html", status=status, message=message, code=code)


def answer_refusals(app: FastAPI) -> None:
    """A refusal ends in a page a person can read, in their language."""

    async def sign_in_needed(request: Request, error: Exception) -> Response:
        assert isinstance(error, SignInNeeded)
        return _to_sign_in(request, error.expired)

    async def page_refused(request: Request, error: Exception) -> Response:
        assert isinstance(error, PageRefused)
        renderer: Renderer = request.app.state.renderer
        lang = session_of(request).lang
        message = {lang: renderer.catalogue.text(error.message_key, lang)}
        return refusal_page(request, error.status, message, error.code)

    async def service_refused(request: Request, error: Exception) -> Response:
        assert isinstance(error, ServiceRefused)
        if error.status == 401:  # the token ended, or was revoked: sign in again
            return _to_sign_in(request, expired=True)
        return refusal_page(request, error.status, error.message, error.code)

    async def not_found(request: Request, error: Exception) -> Response:
        renderer: Renderer = request.app.state.renderer
        lang = session_of(request).lang
        return renderer.page(
            request,
            "error.html",
            status=404,
            code="not_found",
            message={lang: renderer.catalogue.text("errors.not_found", lang)},
        )

    async def refused(request: Request, error: Exception) -> Response:
        assert isinstance(error, Refused)  # one of ours, e.g. the website's client token
        message = {"en": error.en, "ar": error.ar}
        page = refusal_page(request, refusal_status(error), message, error.code)
        page.headers.update(getattr(error, "headers", None) or {})  # Retry-After of a 429
        return page

    async def invalid(request: Request, error: Exception) -> Response:
        # A path or query the page cannot take (a malformed id, page=0): a page in the
        # reader's language, not FastAPI's English JSON.
        return await page_refused(request, PageRefused(422, "invalid_request", "errors.invalid"))

    app.add_exception_handler(SignInNeeded, sign_in_needed)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(Refused, refused)
    app.add_exception_handler(PageRefused, page_refused)
    app.add_exception_handler(ServiceRefused, service_refused)
    app.add_exception_handler(404, not_found)


def main() -> None:
    settings = load_settings(WebSettings)
    keep_private(settings.data_dir)
    configure_logging("web", settings.log_level)
    run_server(
        build(settings),
        "web",
        host=settings.http_host,
        port=settings.http_port,
        log_level=settings.log_level,
    )


if __name__ == "__main__":
    main()
