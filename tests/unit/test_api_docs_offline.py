"""Every app's documentation pages work without the internet: `/docs` (Swagger UI)
and `/asyncapi` (the AsyncAPI viewer) name only the app's own URLs, and each asset
they name is served by the app with its content type (shared/apidocs_ui.py).

The apps are built as they run (each service's `build`, the audit API's
`create_app`) and called without being started: the pages need no broker."""

from __future__ import annotations

import fnmatch
import importlib
import json
import re
import tomllib
from collections.abc import AsyncIterator, Callable
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from audit.api import create_app
from audit.settings import AuditSettings
from khidma.apidocs import DOCUMENTATION_VERIFIER
from shared.apidocs_ui import (
    ASSETS,
    ASSETS_DIR,
    ASYNCAPI_VIEWER_CONFIG,
    asyncapi_html,
    install_api_docs,
)
from shared.asyncapi import SERVICES
from shared.personal.master import MasterKeys

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
BASE = "http://testserver"
APPS = (*SERVICES, "identity", "audit")
EXTERNAL = re.compile(r"https?://[^\s\"'<>)]*", re.IGNORECASE)
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


def build_app(name: str, data_dir: Path) -> tuple[FastAPI, Callable[[], None]]:
    """The app `name` as it runs (not started), and what closes its stores."""
    if name == "audit":
        return create_app(AuditSettings(data_dir=data_dir), DOCUMENTATION_VERIFIER), lambda: None
    main = importlib.import_module(f"services.{name}.main")
    if name == "identity":
        api = main.build(main.IdentitySettings(data_dir=data_dir, issuer="http://127.0.0.1:8106"))
    else:
        settings_class = getattr(main, f"{name.capitalize()}Settings")
        settings = settings_class(nats_url="nats://nats:4222", data_dir=data_dir)
        MasterKeys.ensure(settings.master_key_path)
        api = main.build(settings, verifier=DOCUMENTATION_VERIFIER)
    runtime = api.state.runtime
    return api, runtime.app.close


@pytest.fixture(params=APPS)
async def app(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[FastAPI]:
    api, close = build_app(request.param, tmp_path / request.param)
    try:
        yield api
    finally:
        close()


def client(api: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url=BASE)


class References(HTMLParser):
    """The URLs a page's elements name (src, href) and its inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for key, value in attrs if key in ("src", "href") and value]
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.scripts.append(data)


def references(page: str) -> References:
    found = References()
    found.feed(page)
    return found


def assert_no_external_url(text: str) -> None:
    """No http(s) URL but the app's own (a relative URL is the app's own)."""
    outside = [url for url in EXTERNAL.findall(text) if not url.startswith(BASE + "/")]
    assert not outside, f"the page names URLs outside the app: {outside}"


async def assert_served(http: httpx.AsyncClient, url: str) -> None:
    assert url.startswith("/"), f"{url}: not a URL of the app"
    response = await http.get(url)
    assert response.status_code == 200, f"{url}: {response.status_code}"
    expected = CONTENT_TYPES[Path(url).suffix]
    assert response.headers["content-type"].startswith(expected), (url, response.headers)
    assert len(response.content) > 500, url


async def test_docs_names_only_the_apps_own_assets_and_each_is_served(app: FastAPI) -> None:
    async with client(app) as http:
        page = await http.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "SwaggerUIBundle" in page.text
        assert_no_external_url(page.text)

        found = references(page.text)
        assert sorted(found.urls) == [
            "/docs/assets/favicon-32x32.png",
            "/docs/assets/swagger-ui-bundle.js",
            "/docs/assets/swagger-ui.css",
        ]
        for url in found.urls:
            await assert_served(http, url)

        # The document Swagger UI loads, and the OAuth2 redirect page it names.
        script = "".join(found.scripts)
        assert "url: '/openapi.json'" in script
        assert '"validatorUrl": null' in script
        openapi = await http.get("/openapi.json")
        assert openapi.status_code == 200 and openapi.json()["info"]["title"] == app.title
        assert "oauth2RedirectUrl: window.location.origin + '/docs/oauth2-redirect'" in script
        redirect = await http.get("/docs/oauth2-redirect")
        assert redirect.status_code == 200
        assert redirect.headers["content-type"].startswith("text/html")
        assert_no_external_url(redirect.text)
        assert not references(redirect.text).urls

        # No ReDoc page (it would load its bundle from a CDN), no other asset.
        assert (await http.get("/redoc")).status_code == 404
        assert (await http.get("/docs/assets/VENDORED.md")).status_code == 404
        assert (await http.get("/docs/assets/..%2Fapidocs_ui.py")).status_code == 404


async def test_the_asyncapi_page_renders_the_apps_document_from_its_own_assets(
    app: FastAPI,
) -> None:
    runtime = getattr(app.state, "runtime", None)
    async with client(app) as http:
        page = await http.get("/asyncapi")
        if runtime is None:  # the audit API publishes nothing: no AsyncAPI page
            assert page.status_code == 404
            return
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        found = references(page.text)
        assert sorted(found.urls) == [
            "/docs/assets/asyncapi-standalone.js",
            "/docs/assets/asyncapi.css",
            "data:,",
        ]
        for url in found.urls:
            if not url.startswith("data:"):
                await assert_served(http, url)

        # The page carries the document it renders: the same as /asyncapi.json.
        (render,) = [s for s in found.scripts if "AsyncApiStandalone.render(" in s]
        argument = re.search(r"AsyncApiStandalone\.render\((.*), document\.", render, re.DOTALL)
        assert argument is not None
        shown = json.loads(argument.group(1))
        assert shown == {"schema": runtime.asyncapi(), "config": ASYNCAPI_VIEWER_CONFIG}
        assert shown["schema"] == (await http.get("/asyncapi.json")).json()
        assert_no_external_url(page.text.replace(argument.group(1), ""))


def test_the_asyncapi_page_keeps_a_hostile_document_inside_its_script() -> None:
    document = {
        "asyncapi": "3.0.0",
        "info": {"title": "<b>x</b>", "description": "</script><script>alert(1)</script> & <!--"},
    }
    page = asyncapi_html(document)
    assert "</script><script>alert(1)" not in page and "<!--" not in page
    assert "<title>&lt;b&gt;x&lt;/b&gt; - AsyncAPI</title>" in page
    (render,) = [s for s in references(page).scripts if "render(" in s]
    argument = re.search(r"render\((.*), document\.", render, re.DOTALL)
    assert argument is not None and json.loads(argument.group(1))["schema"] == document


def test_an_app_with_fastapis_cdn_pages_is_refused() -> None:
    with pytest.raises(ValueError, match="docs_url=None"):
        install_api_docs(FastAPI())
    with pytest.raises(ValueError, match="docs_url=None"):
        install_api_docs(FastAPI(docs_url=None))


async def test_behind_a_prefix_the_pages_name_the_prefixed_urls() -> None:
    api = FastAPI(docs_url=None, redoc_url=None)
    install_api_docs(api, asyncapi=lambda: {"asyncapi": "3.0.0", "info": {"title": "t"}})
    # As a proxy that serves the app under /intake passes it (uvicorn --root-path).
    transport = httpx.ASGITransport(app=api, root_path="/intake")
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        docs = (await http.get("/docs")).text
        asyncapi = (await http.get("/asyncapi")).text
    assert "/intake/docs/assets/swagger-ui-bundle.js" in docs
    assert "url: '/intake/openapi.json'" in docs
    assert "'/intake/docs/oauth2-redirect'" in docs
    assert "/intake/docs/assets/asyncapi-standalone.js" in asyncapi


def test_every_asset_is_vendored_and_packaged() -> None:
    """Each asset's file is there, recorded in VENDORED.md with its licence beside
    it, and matched by the package data, so a non-editable install has it."""
    vendored = (ASSETS_DIR / "VENDORED.md").read_text()
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["shared"]
    for file, _ in ASSETS.values():
        path = ASSETS_DIR / file
        assert path.is_file() and path.stat().st_size > 500, file
        assert f"`{file}`" in vendored, f"{file}: not in VENDORED.md"
        assert (path.parent / "LICENSE").is_file(), f"{file}: no licence beside it"
    for path in ASSETS_DIR.rglob("*"):
        if path.is_file():
            relative = path.relative_to(ASSETS_DIR.parent).as_posix()
            assert any(fnmatch.fnmatch(relative, p) for p in patterns), relative


def test_every_fastapi_app_of_the_tree_installs_the_offline_pages() -> None:
    """A FastAPI app made anywhere in the code goes through install_api_docs, or has no
    API document at all (the web application: its pages are for people)."""
    makers = []
    for folder in ("shared", "services", "audit", "khidma"):
        for source in (ROOT / folder).rglob("*.py"):
            text = source.read_text()
            if "FastAPI(" in text:
                makers.append(source.relative_to(ROOT).as_posix())
                offline = "docs_url=None" in text and "install_api_docs(" in text
                assert offline or "openapi_url=None" in text, source
    assert {"audit/api.py", "shared/http.py"} <= set(makers), makers
