"""Journey steps: the committee (or the auditor) watches the deadlines."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.web import WebSystem


def deadlines_show_case(
    web: WebSystem, lang: str, reference: str, flag: str, *, role: str = "committee_chair",
    username: str | None = "chair", page: Page | None = None,
) -> Page:
    """The deadlines screen, signed in as `username` (a committee seat) or the role's
    person, shows the case `reference` flagged `flag` ("approaching" or "overdue");
    it waits for the list to update by itself. Returns the page."""
    page = page or web.page(role, lang, username=username)
    if "/deadlines" not in page.url:
        page.goto(web.url + "/deadlines")
    row = page.locator(f"#deadlines tr[data-case='{reference}']")
    expect(row).to_have_attribute("data-flag", flag, timeout=30_000)
    return page
