"""Journey steps of the applicant on the public pages (no sign-in).

Plain functions taking the running `WebSystem` and the language, driving a fresh
browser session as the applicant does, and returning what the next step needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from playwright.sync_api import Page, expect

from tests.web import WebSystem


@dataclass(frozen=True)
class Applied:
    case_ref: str
    code: str
    case_id: str | None = None


def fill_request(
    page: Page,
    applicant: dict[str, str],
    fields: dict[str, Any],
    documents: dict[str, dict[str, str]],
    *,
    declare: bool = True,
) -> None:
    """Types a request into the shared request form (public or front desk)."""
    for name, value in applicant.items():
        page.locator(f"input[name='applicant.{name}']").fill(str(value))
    for name, value in fields.items():
        page.locator(f"[name='field.{name}']").fill(str(value))
    for code, document in documents.items():
        for part, value in document.items():
            page.locator(f"input[name='doc.{code}.{part}']").fill(str(value))
    if declare:
        page.locator("input[name=attested]").check()


def apply_on_website(
    web: WebSystem,
    lang: str,
    association_id: str,
    service_code: str,
    applicant: dict[str, str],
    *,
    fields: dict[str, Any] | None = None,
    documents: dict[str, dict[str, str]] | None = None,
    leave_out_document: str | None = None,
) -> Applied:
    """Applies through the public form; `leave_out_document` leaves that required
    document out, so the request is incomplete and the front desk completes it.

    `fields` and `documents` default to a request the seed packs accept (see
    `REQUESTS`); returns the reference and the secret code shown once."""
    page = web.visit(lang, f"/a/{association_id}/{service_code}/apply")
    given = REQUESTS.get((association_id, service_code), ({}, {}))
    fields = given[0] if fields is None else fields
    documents = dict(given[1] if documents is None else documents)
    documents.pop(leave_out_document or "", None)
    fill_request(page, applicant, fields, documents)
    page.locator("form.request-form button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/applied$"))
    case_ref = page.locator(".case-ref bdi[dir=ltr]").inner_text().strip()
    code = page.locator(".case-code bdi[dir=ltr]").inner_text().strip()
    page.context.close()
    return Applied(case_ref=case_ref, code=code)


# Requests the seed packs accept, by (association, service): fields and documents.
VALID_CARD = {"number": "1098765432", "expires_on": "2031-01-01"}
REQUESTS: dict[tuple[str, str], tuple[dict[str, Any], dict[str, dict[str, str]]]] = {
    ("sidr", "seedlings"): (
        {"planting_site": "وادي حنيفة", "seedling_count": 40},
        {"national_id_card": VALID_CARD},
    ),
}


def open_status(web: WebSystem, lang: str, case_ref: str, code: str) -> Page:
    page = web.visit(lang, "/status")
    page.locator("input[name=case_ref]").fill(case_ref)
    page.locator("input[name=code]").fill(code)
    page.locator("form[action='/status'] button[type=submit]").click()
    return page


def request_status(web: WebSystem, lang: str, case_ref: str, code: str) -> str:
    """ "Where is my request?": the status text shown for the reference and code."""
    page = open_status(web, lang, case_ref, code)
    label = page.locator(".status-label")
    expect(label).to_be_visible()
    text = label.inner_text().strip()
    page.context.close()
    return text


def answer_survey(
    web: WebSystem, lang: str, link: str, satisfaction: int, recommend: int, comment: str
) -> None:
    """Answers the survey from the invitation's link (the web app's /surveys/<token>)."""
    path = "/surveys/" + link.rstrip("/").rsplit("/", 1)[-1]
    page = web.visit(lang, path)
    page.locator(f"input[name=satisfaction][value='{satisfaction}']").check()
    page.locator(f"input[name=recommend][value='{recommend}']").check()
    page.locator("textarea[name=comment]").fill(comment)
    page.locator("form[action^='/surveys/'] button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/survey-thanks$"))
    page.context.close()
