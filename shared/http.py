"""A service's HTTP edge: the FastAPI app around its runtime, refusals as
statuses, request logging, and serving under uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import uuid4

import httpx
import uvicorn
from fastapi import Depends, FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared import metrics, tracing
from shared.apidocs_ui import install_api_docs
from shared.auth import (
    AuthRefused,
    AuthUnavailable,
    Forbidden,
    Unauthenticated,
    Verifier,
    install,
)
from shared.errors import Gone, Invalid, NotFound, Refused
from shared.inputs import printable
from shared.limits import BodySizeLimit, Limiter, LimitSettings, TooManyRequests
from shared.logging import correlation_id_var, log_context, set_log_context
from shared.openapi import install_refusals
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings, load_settings

log = logging.getLogger(__name__)

# The HTTP status of each kind of refusal; the most specific kind wins. Domain
# code says what kind of refusal it is, never which status a protocol gives it.
REFUSAL_STATUS: dict[type[Refused], int] = {
    Unauthenticated: 401,
    Forbidden: 403,
    AuthUnavailable: 503,
    NotFound: 404,
    Gone: 410,
    TooManyRequests: 429,
    Invalid: 422,
    Refused: 409,
}


def refusal_status(error: Refused) -> int:
    for kind in type(error).__mro__:
        if kind in REFUSAL_STATUS:
            return REFUSAL_STATUS[kind]
    return 409


# Every list route of every service pages with these two parameters, bounded here once:
# at most MAX_PAGE rows an answer, and an offset SQLite can hold (its integers are
# 64-bit: a larger one overflows in the query instead of finding an empty page).
MAX_PAGE = 1000
MAX_OFFSET = 2**63 - 1


@dataclass(frozen=True)
class ListPage:
    limit: int
    offset: int


def list_page(
    limit: int = Query(default=100, ge=1, le=MAX_PAGE, description="rows in the answer"),
    offset: int = Query(default=0, ge=0, le=MAX_OFFSET, description="rows skipped first"),
) -> ListPage:
    return ListPage(limit=limit, offset=offset)


Page = Annotated[ListPage, Depends(list_page)]


def create_http_app(
    runtime: ServiceRuntime[Any],
    *,
    title: str,
    include: Callable[[FastAPI], None],
    verifier: Verifier,
    extra_startup: Callable[[], Awaitable[None]] | None = None,
) -> FastAPI:
    """The service's FastAPI app: its routes (`include`), each declaring the role it
    needs and verified by `verifier`, plus the open operations routes."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        if extra_startup:
            await extra_startup()
        yield
        await runtime.stop()

    api = FastAPI(
        title=title,
        lifespan=lifespan,
        dependencies=[Depends(_route_log_context)],
        docs_url=None,
        redoc_url=None,
    )
    api.state.runtime = runtime
    # The associations this service serves (its packs): see shared.auth.require.
    api.state.associations = frozenset(runtime.app.packs)
    install(api, verifier)
    limits = load_settings(LimitSettings)
    api.state.limiter = Limiter(limits)
    api.add_middleware(AllowedMethods, document=lambda: api.openapi())
    api.add_middleware(BodySizeLimit, limit=limits.max_body_bytes)
    api.add_middleware(RequestLogMiddleware)

    answer_refusals(api)

    not_ready: dict[int | str, dict[str, Any]] = {
        503: {"description": "Not alive, or not ready: the report says why."}
    }

    @api.get("/health", tags=["operations"], responses=not_ready)
    async def health() -> JSONResponse:
        report = await runtime.health()
        return JSONResponse(report, status_code=200 if report["alive"] else 503)

    @api.get("/ready", tags=["operations"], responses=not_ready)
    async def ready() -> JSONResponse:
        report = await runtime.readiness()
        return JSONResponse(report, status_code=200 if report["ready"] else 503)

    @api.get("/metrics", tags=["operations"], response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus metrics, text exposition format."""
        await runtime.update_metrics()
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @api.get("/asyncapi.json", tags=["operations"])
    async def asyncapi() -> JSONResponse:
        """The AsyncAPI 3.0 document of the events this service publishes and consumes."""
        return JSONResponse(runtime.asyncapi())

    # /docs, /asyncapi and their assets, served by the app (no CDN): shared.apidocs_ui.
    install_api_docs(api, asyncapi=lambda: runtime.asyncapi())

    include(api)
    install_refusals(api)
    return api


def answer_refusals(api: FastAPI) -> None:
    """Refusals and invalid requests answered in the bilingual error shape, with the
    status of their kind (and an authentication refusal's challenge headers)."""

    async def refused(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, Refused)
        return JSONResponse(
            error.as_dict(),
            status_code=refusal_status(error),
            headers=error.headers if isinstance(error, AuthRefused | TooManyRequests) else None,
        )

    async def invalid(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        # FastAPI's `detail` (each problem with its field's location) plus a
        # sentence a person can read in either language.
        return JSONResponse(
            {
                "error": "invalid_request",
                "message": {
                    "en": "The request is not valid; see the fields listed in detail.",
                    "ar": "الطلب غير صالح؛ راجع الحقول المذكورة في التفاصيل.",
                },
                # Printable: a refused body may hold text no UTF-8 can write (a lone
                # surrogate), and the refusal must still be answered.
                "detail": printable(
                    jsonable_encoder([_without_large_input(e) for e in error.errors()])
                ),
            },
            status_code=422,
        )

    async def framework_refusal(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        if error.status_code == 400 and error.detail == _BODY_NOT_PARSED:
            # JSON that Python's parser gives up on (nested thousands deep, an integer
            # of thousands of digits): as unreadable as broken JSON, which is a 422.
            return JSONResponse(
                {
                    "error": "invalid_request",
                    "message": {
                        "en": "The body cannot be read as JSON: nested too deep, or a number too long.",
                        "ar": "تعذّرت قراءة محتوى الطلب بصيغة JSON: تداخل عميق جدًا أو رقم طويل جدًا.",
                    },
                },
                status_code=422,
            )
        # The framework's own refusals (a body that is not JSON, an unknown path, a
        # method the path does not take) in the same bilingual shape as ours.
        code, en, ar = FRAMEWORK_REFUSALS.get(
            error.status_code,
            (f"http_{error.status_code}", str(error.detail), "تعذّر تنفيذ الطلب."),
        )
        return JSONResponse(
            {"error": code, "message": {"en": en, "ar": ar}},
            status_code=error.status_code,
            headers=getattr(error, "headers", None),
        )

    api.add_exception_handler(Refused, refused)
    api.add_exception_handler(RequestValidationError, invalid)
    api.add_exception_handler(StarletteHTTPException, framework_refusal)


FRAMEWORK_REFUSALS: dict[int, tuple[str, str, str]] = {
    400: ("malformed_request", "The body is not valid JSON (or not what its Content-Type says).",
          "محتوى الطلب ليس JSON صالحًا (أو لا يطابق نوعه المعلن)."),
    404: ("not_found", "There is nothing at this address.", "لا يوجد شيء على هذا العنوان."),
    405: ("method_not_allowed", "This address does not take this method.",
          "لا يقبل هذا العنوان هذه الطريقة."),
}  # fmt: skip


def _without_large_input(problem: Any) -> Any:
    """A problem without its input when that is large: a refused oversized
    request must not come back whole in the refusal."""
    if _too_large_to_repeat(problem.get("input")):
        return {key: value for key, value in problem.items() if key != "input"}
    return problem


def _too_large_to_repeat(value: Any) -> bool:
    try:
        return len(repr(value)) > 1000
    except RecursionError:  # nested too deep even to show
        return True


# What FastAPI says (a 400) when its JSON parser raised something else than a decode error.
_BODY_NOT_PARSED = "There was an error parsing the body"

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_QUIET_PATHS = {"/health", "/ready", "/metrics"}
# Path parameters masked in the log and in traces: personal data (verification's member
# routes) and a survey link's token, which lets whoever holds it answer for the applicant.
_MASKED_PATH_PARAMS = ("national_id", "token")


def _logged_path(scope: dict[str, Any]) -> str:
    """The request's path as the log shows it: a national id or a token in it masked."""
    path = str(scope["path"])
    params = scope.get("path_params") or {}
    for name in _MASKED_PATH_PARAMS:
        value = params.get(name)
        if isinstance(value, str) and value:
            path = path.replace(value, "***")
    return path


async def _route_log_context(request: Request) -> None:
    """Puts the route's case id (or reference) in the log context of the request.

    By the path parameter's name, never by its shape: a sitting's id is a UUID
    too. Intake's `/cases/{case_key}` takes either the id or the reference.
    """
    params = request.path_params
    case_id, case_ref = params.get("case_id"), params.get("case_ref")
    case_key = params.get("case_key")
    if isinstance(case_key, str):
        if _UUID.match(case_key):
            case_id = case_key
        else:
            case_ref = case_key
    if isinstance(case_id, str):
        set_log_context(case_id=case_id[:100])
    if isinstance(case_ref, str):
        set_log_context(case_ref=case_ref[:100])


class AllowedMethods:
    """ASGI middleware: a path whose documented routes take other methods answers
    with all of them in `Allow` — 204 for OPTIONS, else a bilingual 405 — where the
    router would name only its first route's (a path served by a GET and a PUT route).
    The routes are read from the app's OpenAPI document, once."""

    def __init__(self, app: Any, document: Callable[[], dict[str, Any]]):
        self.app = app
        self.document = document
        self._paths: list[tuple[re.Pattern[str], frozenset[str]]] | None = None

    def _methods_of(self, path: str) -> set[str]:
        if self._paths is None:
            self._paths = [
                (
                    re.compile("^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)) + "$"),
                    frozenset(method.upper() for method in operations),
                )
                for template, operations in self.document().get("paths", {}).items()
            ]
        found: set[str] = set()
        for pattern, methods in self._paths:
            if pattern.match(path):
                found |= methods
        return found

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        allowed = self._methods_of(scope["path"])
        method = scope["method"]
        if not allowed or method in allowed or (method == "HEAD" and "GET" in allowed):
            await self.app(scope, receive, send)
            return
        allow = ", ".join(sorted(allowed | {"OPTIONS"}))
        if method == "OPTIONS":
            response: Response = Response(status_code=204, headers={"Allow": allow})
        else:
            response = JSONResponse(
                {
                    "error": "method_not_allowed",
                    "message": {
                        "en": f"This address takes {allow} only.",
                        "ar": f"يقبل هذا العنوان {allow} فقط.",
                    },
                },
                status_code=405,
                headers={"Allow": allow},
            )
        await response(scope, receive, send)


class RequestLogMiddleware:
    """Takes the correlation id from `X-Correlation-Id` and logs each API request.

    Without the header, the request gets a correlation id of its own. Either
    way the response carries it in `X-Correlation-Id`, so that a caller can
    quote it and an operator find every line the request wrote.
    """

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        correlation = headers.get(b"x-correlation-id", b"").decode("latin-1")[:100] or str(uuid4())
        status = {"code": 500}

        async def send_status(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                answered = correlation_id_var.get()
                if answered:
                    message.setdefault("headers", [])
                    message["headers"] = [
                        *message["headers"],
                        (b"x-correlation-id", answered.encode("latin-1")),
                    ]
            await send(message)

        started = time.perf_counter()
        quiet = scope["path"] in _QUIET_PATHS
        with (
            log_context(correlation_id=correlation, case_id=None, case_ref=None, event_id=None),
            traced_request(scope, correlation) as answer,
        ):
            try:
                await self.app(scope, receive, answer(send_status))
            finally:
                if not quiet:
                    log.info(
                        "%s %s %d",
                        scope["method"],
                        _logged_path(scope),
                        status["code"],
                        extra={
                            "http_status": status["code"],
                            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                        },
                    )


Send = Callable[[dict[str, Any]], Awaitable[None]]


@contextlib.contextmanager
def traced_request(
    scope: dict[str, Any], correlation: str | None
) -> Iterator[Callable[[Send], Send]]:
    """The request's span (shared/tracing.py), around the app; what it yields wraps
    the app's `send` to read the status and answer a caller of ours its trace
    (`traceresponse`). Without tracing, or for /health, /ready, /metrics: nothing."""
    if not tracing.enabled() or scope["path"] in _QUIET_PATHS:
        yield _unchanged
        return
    headers = dict(scope.get("headers") or [])
    carried = tracing.carried_from(
        headers.get(b"traceparent", b"").decode("latin-1"),
        headers.get(b"tracestate", b"").decode("latin-1"),
    )
    method = scope["method"]
    with tracing.request_span(
        method, correlation, {"http.request.method": method}, carried=carried
    ) as request_trace:
        assert request_trace is not None
        status = {"code": 500}

        def answer(send: Send) -> Send:
            async def sending(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    status["code"] = message["status"]
                    response = tracing.trace_response(request_trace)
                    if response:
                        message["headers"] = [
                            *message.get("headers", []),
                            (b"traceresponse", response.encode("latin-1")),
                        ]
                await send(message)

            return sending

        try:
            yield answer
        finally:
            # Once routed: the route's template, and the path with what it must not show
            # masked (a national id, a survey's token).
            request_trace.name = f"{method} {_route_path(scope)}"
            request_trace.attributes["url.path"] = _logged_path(scope)
            request_trace.attributes["http.response.status_code"] = status["code"]


def _unchanged(send: Send) -> Send:
    return send


class TracedRequests:
    """A span per request, for an app without the API's request log (the web app, the
    channels, the audit API): its calls to our services hang from it."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with traced_request(scope, None) as answer:
            await self.app(scope, receive, answer(send))


def traced_client(own: Iterable[str], **options: Any) -> httpx.AsyncClient:
    """An HTTP client whose calls to our own services (the URLs under `own`) carry the
    request in progress (`traceparent`) and learn from the answer the case it joined
    (`traceresponse`). Calls elsewhere (Meta's Graph API) carry nothing."""
    bases = tuple(url.rstrip("/") for url in own if url)
    prefixes = tuple(base + "/" for base in bases)

    def ours(url: httpx.URL) -> bool:
        # A service's base URL, and an endpoint named whole (the token endpoint).
        text = str(url).split("?", 1)[0]
        return text in bases or text.startswith(prefixes)

    async def carry(request: httpx.Request) -> None:
        if ours(request.url):
            request.headers.update(tracing.outgoing_headers())

    async def learn(response: httpx.Response) -> None:
        if "traceresponse" in response.headers and ours(response.request.url):
            tracing.answered(response.headers["traceresponse"])

    return httpx.AsyncClient(event_hooks={"request": [carry], "response": [learn]}, **options)


def _route_path(scope: dict[str, Any]) -> str:
    """The route's template (`/cases/{case_key}`), which names a span for all its cases."""
    route = scope.get("route")
    return str(getattr(route, "path", None) or _logged_path(scope))


def serve(api: FastAPI, settings: ServiceSettings) -> None:
    run_server(
        api,
        settings.service_name,
        host=settings.http_host,
        port=settings.http_port,
        log_level=settings.log_level,
        otlp_endpoint=settings.otlp_endpoint,
    )


def run_server(
    app: Any,
    service_name: str,
    *,
    host: str,
    port: int,
    log_level: str,
    otlp_endpoint: str | None = None,
) -> None:
    """Serves `app` under uvicorn, with traces when an endpoint is configured
    (shared/tracing.py; nothing otherwise)."""
    tracing.configure_tracing(service_name, otlp_endpoint)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level.lower(),
        access_log=False,
        lifespan="on",
        log_config=None,  # our JSON handler (shared/logging.py) formats uvicorn's lines too
    )
    try:
        asyncio.run(uvicorn.Server(config).serve())
    finally:
        tracing.shutdown_tracing()  # what is still buffered goes out


def runtime_of(request: Request) -> ServiceRuntime[Any]:
    """The FastAPI dependency every route uses to reach its service's runtime.

    Each service's API names it with its application's type, e.g.
    `Annotated[ServiceRuntime[IntakeApplication], Depends(runtime_of)]`.
    """
    runtime: ServiceRuntime[Any] = request.app.state.runtime
    return runtime
