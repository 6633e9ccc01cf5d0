"""The web application in a real browser: Debian's chromium driven by Playwright.

`web_system` is the whole system (`make run`'s, web included) with a person per
role (khidma/signin.py), started once for every browser test. `lang` is the
language a test runs in: Arabic (`ar-SA`, Asia/Riyadh) or English
(pytest_generate_tests below says which tests run in both). `WebSystem.page(role)`
opens a fresh browser session signed in as that role's person, in that language.
`shoot(page, name)` keeps a screenshot: under `KHIDMA_SCREENSHOTS` (make
screenshots: docs/screenshots) or the test's temporary folder.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from khidma.browser import ensure_chromium
from khidma.run import EmbeddedSystem
from khidma.signin import STAFF
from services.identity.main import IdentitySettings, open_identity

LOCALES: dict[str, dict[str, Any]] = {
    "ar": {"locale": "ar-SA", "timezone_id": "Asia/Riyadh"},
    "en": {"locale": "en-GB", "timezone_id": "Europe/London"},
}

# The suite runs beside another session on two cores (khidma/testsuite.py): a page
# that answers in a second alone may take several under load. A wait ends as soon
# as its condition holds; the longer bound only delays a real failure.
expect.set_options(timeout=15_000)


@dataclass
class WebSystem:
    system: EmbeddedSystem
    passwords: dict[str, str]
    browser: Browser
    contexts: list[BrowserContext] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.system.services["web"].url

    def new_page(self, lang: str) -> Page:
        """A fresh browser session (no cookie) in the language's locale and time zone."""
        context = self.browser.new_context(**LOCALES[lang], viewport={"width": 1280, "height": 900})
        context.set_default_timeout(15_000)
        self.contexts.append(context)
        return context.new_page()

    def visit(self, lang: str, path: str = "/") -> Page:
        """A visitor's page at `path`, switched to English when `lang` is "en"."""
        page = self.new_page(lang)
        page.goto(self.url + path)
        if lang == "en":
            choose_language(page, "en")
        return page

    def page(self, role: str, lang: str, *, username: str | None = None) -> Page:
        """A browser session signed in as the role's person (or `username`, a seat)."""
        username = username or STAFF[role]
        page = self.visit(lang, "/signin")
        page.locator("input[name=username]").fill(username)
        page.locator("input[name=password]").fill(self.passwords[username])
        page.locator("form[action='/signin'] button[type=submit]").click()
        expect(page).not_to_have_url(re.compile(r"/signin"))
        return page

    def close_contexts(self) -> None:
        for context in self.contexts:
            context.close()
        self.contexts.clear()


def choose_language(page: Page, lang: str) -> None:
    page.locator(f"form[action='/language'] button[value={lang}]").click()
    expect(page.locator("html")).to_have_attribute("lang", lang)


def prepare_web_staff(data_dir: Path, identity_url: str) -> dict[str, str]:
    from khidma.signin import prepare_staff

    app = open_identity(IdentitySettings(data_dir=data_dir, issuer=identity_url, nats_url=""))
    try:
        return prepare_staff(app)
    finally:
        app.close()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """pytest-playwright's browser, as Debian's chromium (installed when missing)."""
    return {**browser_type_launch_args, "executable_path": str(ensure_chromium())}


@pytest.fixture(scope="session")
def web_system(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[WebSystem]:
    data_dir = tmp_path_factory.mktemp("khidma-web")
    environment = {
        "KHIDMA_CLOCK_FILE": str(data_dir / "clock-offset"),
        "KHIDMA_DEADLINE_SCAN_SECONDS": "0.5",
        "KHIDMA_REFRESH_SECONDS": "1",
        # Every page of every browser test comes from one address, 127.0.0.1: the
        # public budget per visitor (tests/unit/test_limits.py) would throttle the suite.
        "KHIDMA_LIMITS_PUBLIC_PER_MINUTE": "0",
    }
    with EmbeddedSystem(data_dir, fixed_ports=False, service_env=environment) as system:
        passwords = prepare_web_staff(data_dir, system.services["identity"].url)
        web = WebSystem(system, passwords, browser)
        try:
            yield web
        finally:
            web.close_contexts()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The browser tests run last: Playwright's sync API keeps an event loop running
    in this thread while its session-wide browser lives, and every `asyncio.run` of
    a later test would fail ("cannot be called from a running event loop")."""
    browser = [item for item in items if item.path.parent.name == "browser"]
    if browser:
        others = [item for item in items if item.path.parent.name != "browser"]
        items[:] = others + browser


LANGUAGES = ("ar", "en")
ALL_LANGUAGES = "KHIDMA_WEB_ALL_LANGUAGES"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`lang`: a test marked `both_languages` (sign-in) runs in Arabic
    and in English; every other browser test in one of them, half the screens'
    tests in each (by a stable hash of the test's name), so that `make test` stays
    within its time. `KHIDMA_WEB_ALL_LANGUAGES=1` (`make screenshots`,
    `make test-browser`) runs every test in both."""
    if "lang" not in metafunc.fixturenames or metafunc.definition.path.parent.name != "browser":
        return  # another test's own `lang` (the audit report's) is its own
    if os.environ.get(ALL_LANGUAGES) or metafunc.definition.get_closest_marker("both_languages"):
        chosen: tuple[str, ...] = LANGUAGES
    else:
        chosen = (LANGUAGES[zlib.crc32(metafunc.definition.name.encode()) % 2],)
    metafunc.parametrize("lang", chosen)


@pytest.fixture
def shoot(tmp_path: Path, lang: str) -> Any:
    folder = Path(os.environ.get("KHIDMA_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)

    def take(page: Page, name: str, *, full_page: bool = True) -> Path:
        path = folder / f"{name}-{lang}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return take
