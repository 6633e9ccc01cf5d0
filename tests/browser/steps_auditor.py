"""Journey steps: the auditor reads a case's timeline, the exceptions and the board report."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from shared.roles import AUDITOR
from tests.web import WebSystem


def auditor_finds_timeline(
    web: WebSystem, lang: str, reference: str, *, events: tuple[str, ...] = ("RequestReceived",),
    page: Page | None = None,
) -> Page:
    """The auditor types the reference and sees the case's timeline with these events
    (waiting for them, as the audit replays what the services recorded). Returns the page."""
    page = page or web.page(AUDITOR, lang)
    for event in events:
        page.goto(web.url + "/auditor")
        page.locator("input[name=reference]").fill(reference)
        page.locator("form[action='/auditor'] button[type=submit]").click()
        expect(page.locator("#timeline h2")).to_contain_text(reference, timeout=30_000)
        expect(page.locator(f"#timeline tr[data-event='{event}']").first).to_be_visible(
            timeout=30_000
        )
    return page


def auditor_sees_exception(
    web: WebSystem, lang: str, reference: str, check: str, *, page: Page | None = None
) -> Page:
    """The compliance screen lists the exception `check` on the case. Returns the page."""
    page = page or web.page(AUDITOR, lang)
    page.goto(web.url + "/auditor/compliance")
    row = page.locator(f"#exceptions tr[data-case='{reference}'][data-check='{check}']")
    expect(row).to_be_visible()
    return page


def auditor_opens_report(
    web: WebSystem, lang: str, association: str, start: str, end: str, *, page: Page | None = None
) -> Page:
    """The auditor asks for the board report of the association for [start, end]
    (Hijri or Gregorian days) and it opens, in the page's language. Returns the page."""
    page = page or web.page(AUDITOR, lang)
    page.goto(web.url + "/auditor/report")
    form = page.locator("#report-form")
    form.locator("select[name=association]").select_option(association)
    form.locator("input[name=start]").fill(start)
    form.locator("input[name=end]").fill(end)
    form.locator("button[type=submit]").click()
    expect(page.locator("html")).to_have_attribute("lang", lang)
    expect(page).to_have_url(re.compile(r"/auditor/report/view"))
    return page
