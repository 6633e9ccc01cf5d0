"""Journey steps of the front-desk officer, each in a fresh session signed in as
the front desk (tests/web.py), driving the desk's screens."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Page, expect

from shared.roles import FRONT_DESK
from tests.browser.steps_public import Applied, fill_request
from tests.web import WebSystem

DELIVERED = {"ar": "سُلّمت الشتلات لمقدم الطلب", "en": "The seedlings were handed over"}


def open_case(web: WebSystem, lang: str, case_ref: str) -> Page:
    """The case page, by its reference, as the front desk."""
    page = web.page(FRONT_DESK, lang)
    page.goto(f"{web.url}/desk/cases/{case_ref}")
    expect(page.locator("h1 bdi[dir=ltr]")).to_have_text(case_ref)
    return page


def expect_done(page: Page) -> None:
    expect(page.locator(".flash.ok")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/desk/cases/[0-9a-f-]{36}$"))


def new_request(
    web: WebSystem,
    lang: str,
    association_id: str,
    service_code: str,
    channel: str,
    applicant: dict[str, str],
    fields: dict[str, Any],
    documents: dict[str, dict[str, str]],
) -> Applied:
    """A request from a phone call, an interview, a letter or a branch office;
    returns the reference and the code the officer hands over."""
    page = web.page(FRONT_DESK, lang)
    page.goto(
        f"{web.url}/desk/new?association_id={association_id}"
        f"&service_code={service_code}&channel={channel}"
    )
    fill_request(page, applicant, fields, documents)
    page.locator("form.request-form button[type=submit]").click()
    expect_done(page)
    case_ref = page.locator(".handover .case-ref bdi[dir=ltr]").inner_text().strip()
    code = page.locator(".handover .case-code bdi[dir=ltr]").inner_text().strip()
    case_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    page.context.close()
    return Applied(case_ref=case_ref, code=code, case_id=case_id)


def complete_request(
    web: WebSystem, lang: str, case_ref: str, documents: dict[str, dict[str, str]]
) -> None:
    """Completes an incomplete request with the documents it lacked (code ->
    {"number": …, "expires_on": …})."""
    page = open_case(web, lang, case_ref)
    form = page.locator("#complete form")
    for code, document in documents.items():
        for part, value in document.items():
            form.locator(f"input[name='doc.{code}.{part}']").fill(str(value))
    if form.locator("input[name=attested]").count():
        form.locator("input[name=attested]").check()
    form.locator("button[type=submit]").click()
    expect_done(page)
    page.context.close()


def refer(web: WebSystem, lang: str, case_ref: str, reason: str, questions: list[str]) -> None:
    """Refers the case to the social researcher with the reason and the questions."""
    page = open_case(web, lang, case_ref)
    form = page.locator("#referral form")
    form.locator("textarea[name=reason]").fill(reason)
    form.locator("textarea[name=questions]").fill("\n".join(questions))
    form.locator("button[type=submit]").click()
    expect_done(page)
    page.context.close()


def deliver(web: WebSystem, lang: str, case_ref: str, delivered: str | None = None) -> None:
    """Records the delivery of an approved case."""
    page = open_case(web, lang, case_ref)
    form = page.locator("#delivery form")
    form.locator("textarea[name=delivered]").fill(delivered or DELIVERED[lang])
    form.locator("button[type=submit]").click()
    expect_done(page)
    expect(page.locator(".case-status .badge[data-status]")).to_have_attribute("data-status", "delivered")
    page.context.close()
