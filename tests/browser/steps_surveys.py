"""Journey steps: the surveys officer (or the auditor) reads the survey results."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.web import WebSystem


def survey_results(web: WebSystem, lang: str, *, role: str = "surveys_officer") -> Page:
    """The results screen as the role's person: by service, channel and stage. Returns the page."""
    page = web.page(role, lang)
    page.goto(web.url + "/survey-results")
    for breakdown in ("service_code", "channel", "stage"):
        expect(page.locator(f"section[data-breakdown='{breakdown}']")).to_be_visible()
    return page
