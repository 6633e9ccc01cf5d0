"""The auditor: a case's timeline by its reference, compliance exceptions, the board
report and the access log, from the audit API."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from playwright.sync_api import expect

from shared.dates import RIYADH
from shared.roles import AUDITOR, FRONT_DESK
from tests.browser.oversight_cases import override_verification, submit_case
from tests.browser.steps_auditor import (
    auditor_finds_timeline,
    auditor_opens_report,
    auditor_sees_exception,
)
from tests.web import WebSystem

pytestmark = pytest.mark.e2e

REASON = "The card was renewed; the applicant showed it in person"
NO_CASE = {"ar": "لا توجد حالة بهذا الرقم", "en": "No case has this id or reference"}


@pytest.fixture(scope="module")
def overridden(web_system: WebSystem) -> dict:
    """A sidr request whose ID card had expired, verified by an officer's override."""
    case = submit_case(web_system, "sidr", expired_card=True)
    override_verification(web_system, case["case_id"], REASON)
    return case


def test_the_auditor_finds_a_cases_timeline_by_its_reference(
    web_system: WebSystem, lang: str, shoot, overridden: dict
) -> None:
    page = auditor_finds_timeline(
        web_system, lang, overridden["case_ref"], events=("RequestReceived", "DataVerified")
    )
    expect(page.locator("#timeline time").first).to_be_visible()
    shoot(page, "auditor-timeline")
    page.locator("input[name=reference]").fill("SDR-1300-999999")
    page.locator("form[action='/auditor'] button[type=submit]").click()
    expect(page.locator(".flash.error")).to_contain_text(NO_CASE[lang])


def test_the_auditor_sees_the_override_among_the_exceptions(
    web_system: WebSystem, lang: str, shoot, overridden: dict
) -> None:
    page = auditor_sees_exception(web_system, lang, overridden["case_ref"], "verification_override")
    row = page.locator(f"#exceptions tr[data-case='{overridden['case_ref']}']").first
    expect(row).to_contain_text(REASON)
    shoot(page, "auditor-compliance")
    # Filtered to another association, the sidr case is not among its exceptions.
    page.locator("select[name=association]").select_option("elites")
    page.locator("form[action='/auditor/compliance'] button[type=submit]").click()
    expect(page.locator(f"#exceptions tr[data-case='{overridden['case_ref']}']")).to_have_count(0)
    page.go_back()
    row.locator("a").click()  # the case's timeline, from the exception
    expect(page.locator("#timeline h2")).to_contain_text(overridden["case_ref"])


def test_the_auditor_opens_the_board_report(
    web_system: WebSystem, lang: str, shoot, overridden: dict
) -> None:
    today = datetime.now(RIYADH).date()  # the report's days are Riyadh's
    page = auditor_opens_report(
        web_system, lang, "sidr", (today - timedelta(days=30)).isoformat(), today.isoformat()
    )
    expect(page.locator("html")).to_have_attribute("dir", "rtl" if lang == "ar" else "ltr")
    expect(page.locator("link[href='/auditor/report.css']")).to_have_count(1)
    expect(page.locator("body")).to_contain_text(overridden["case_ref"])
    shoot(page, "auditor-report")
    # A period that ends before it starts is refused on the form.
    page.goto(web_system.url + "/auditor/report")
    form = page.locator("#report-form")
    form.locator("input[name=start]").fill(today.isoformat())
    form.locator("input[name=end]").fill((today - timedelta(days=3)).isoformat())
    form.locator("button[type=submit]").click()
    expect(page.locator(".flash.error")).to_be_visible()


def test_the_access_log_and_the_wrong_role(web_system: WebSystem, lang: str) -> None:
    page = web_system.page(AUDITOR, lang)
    page.goto(web_system.url + "/auditor/access")
    expect(page.locator("#reads")).to_be_visible()
    desk = web_system.page(FRONT_DESK, lang)
    assert desk.request.get(web_system.url + "/auditor").status == 403
    assert desk.request.get(web_system.url + "/auditor/compliance").status == 403
