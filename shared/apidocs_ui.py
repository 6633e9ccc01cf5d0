"""The API documentation pages, served without the internet: Swagger UI on `/docs`
and the AsyncAPI viewer on `/asyncapi`, their scripts and styles served by the app
itself under `/docs/assets/` from shared/apidocs_assets/ (which npm packages, their
versions and digests: VENDORED.md there; decision 25).

Every FastAPI app of the system is built with `docs_url=None, redoc_url=None` and
calls `install_api_docs` once: the services' (shared.http.create_http_app), the
audit API's, and any later one. There is no ReDoc page: Swagger UI shows the same
document.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, Response

ASSETS_DIR = Path(__file__).with_name("apidocs_assets")
ASSETS_PATH = "/docs/assets"

_JS = "text/javascript; charset=utf-8"
_CSS = "text/css; charset=utf-8"

# The name each asset is served under -> (its file in ASSETS_DIR, its content type).
# Only these are served: the folder's other files (licences, VENDORED.md) are not.
ASSETS: dict[str, tuple[str, str]] = {
    "swagger-ui-bundle.js": ("swagger-ui/swagger-ui-bundle.js", _JS),
    "swagger-ui.css": ("swagger-ui/swagger-ui.css", _CSS),
    "favicon-32x32.png": ("swagger-ui/favicon-32x32.png", "image/png"),
    "asyncapi-standalone.js": ("asyncapi/index.js", _JS),
    "asyncapi.css": ("asyncapi/default.min.css", _CSS),
}

# The AsyncAPI viewer's settings (those FastStream's page gave it).
ASYNCAPI_VIEWER_CONFIG: dict[str, Any] = {
    "show": {
        "sidebar": True,
        "info": True,
        "servers": True,
        "operations": True,
        "messages": True,
        "schemas": True,
        "errors": True,
    },
    "expand": {"messageExamples": True},
    "sidebar": {"showServers": "byDefault", "showOperations": "byDefault"},
}


def install_api_docs(api: FastAPI, *, asyncapi: Callable[[], dict[str, Any]] | None = None) -> None:
    """Adds `/docs` (Swagger UI), its OAuth2 redirect page and `/docs/assets/{name}`
    to `api`; with `asyncapi` (the function that returns the app's AsyncAPI
    document), the page `/asyncapi` too. Every URL a page names is the app's own."""
    if api.docs_url or api.redoc_url:
        raise ValueError(
            "build the FastAPI app with docs_url=None and redoc_url=None: "
            "install_api_docs serves /docs itself, without a CDN"
        )
    if not api.openapi_url:
        raise ValueError("the app has no OpenAPI document (openapi_url) for /docs to show")
    openapi_url = api.openapi_url
    oauth2_redirect_url = api.swagger_ui_oauth2_redirect_url

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root_path(request)
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{api.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon-32x32.png",
            oauth2_redirect_url=root + oauth2_redirect_url if oauth2_redirect_url else None,
            init_oauth=api.swagger_ui_init_oauth,
            # No badge fetched from the public validator: the page stays on this app.
            swagger_ui_parameters={"validatorUrl": None, **(api.swagger_ui_parameters or {})},
        )

    api.add_route("/docs", swagger_ui, include_in_schema=False)
    if oauth2_redirect_url:

        async def swagger_ui_redirect(_: Request) -> HTMLResponse:
            return get_swagger_ui_oauth2_redirect_html()

        api.add_route(oauth2_redirect_url, swagger_ui_redirect, include_in_schema=False)

    async def asset(request: Request) -> Response:
        found = ASSETS.get(request.path_params["name"])
        if found is None:
            return PlainTextResponse("Not Found", status_code=404)
        file, media_type = found
        return FileResponse(ASSETS_DIR / file, media_type=media_type)

    api.add_route(ASSETS_PATH + "/{name}", asset, methods=["GET", "HEAD"], include_in_schema=False)

    if asyncapi is not None:
        document = asyncapi

        @api.get("/asyncapi", tags=["operations"], response_class=HTMLResponse)
        async def asyncapi_page(request: Request) -> HTMLResponse:
            """The AsyncAPI document as a page (the AsyncAPI viewer, served by this app)."""
            return HTMLResponse(asyncapi_html(document(), assets=_root_path(request) + ASSETS_PATH))


def asyncapi_html(document: dict[str, Any], *, assets: str = ASSETS_PATH) -> str:
    """The page of an AsyncAPI document: the viewer's standalone bundle from `assets`
    renders the document, which the page carries (no request of its own)."""
    title = html.escape(str(document.get("info", {}).get("title", "AsyncAPI")))
    render = _script_json({"schema": document, "config": ASYNCAPI_VIEWER_CONFIG})
    css, js = html.escape(f"{assets}/asyncapi.css"), html.escape(f"{assets}/asyncapi-standalone.js")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{title} - AsyncAPI</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{css}">
<style>
html {{ font-family: ui-sans-serif, system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans",
  sans-serif; line-height: 1.5; }}
</style>
</head>
<body>
<div id="asyncapi"></div>
<script src="{js}"></script>
<script>
AsyncApiStandalone.render({render}, document.getElementById("asyncapi"));
</script>
</body>
</html>
"""


def _script_json(value: Any) -> str:
    """JSON that is safe inside a <script> element: no `</script>`, `<!--` or `&`."""
    return (
        json.dumps(value, ensure_ascii=True)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )


def _root_path(request: Request) -> str:
    """The prefix a proxy serves the app under (ASGI root_path), without its last slash."""
    return str(request.scope.get("root_path", "")).rstrip("/")
