"""The verifier in the browser: the queue updates by itself, the case file beside
its automatic checks, confirming, and an override that needs a reason."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from shared.roles import RESEARCHER, VERIFIER
from tests.browser.steps_verify import (
    APPEAR_MS,
    confirm,
    correct_card,
    erase,
    find_in_queue,
    reload_until_erased,
    submit_case,
    waiting,
)
from tests.web import WebSystem

pytestmark = pytest.mark.e2e

NEEDS_YOU = {"ar": "ينتظر هذا الطلب تأكيدك", "en": "This request waits for your confirmation"}
NEVER_BY_ITSELF = {
    "ar": "لا يبتّ التحقق في الطلبات من تلقاء نفسه",
    "en": "Verification never decides by itself",
}
FAILED = {"ar": "غير مستوفٍ", "en": "Failed"}
PASSED = {"ar": "مستوفٍ", "en": "Passed"}
ERASED = {"ar": "مُحيت", "en": "erased"}
# verification's own refusal (override_needs_reason), in the reader's language
NEEDS_REASON = {"ar": "يتطلب ذكر السبب", "en": "needs a reason"}
CONFIRMED = {"ar": "أُكِّدت", "en": "Confirmed"}
AGAIN = {"ar": "فتُفحص وتُؤكَّد من جديد", "en": "it is checked and confirmed again"}


def open_case(web: WebSystem, lang: str, case_ref: str) -> Page:
    page = web.page(VERIFIER, lang)
    find_in_queue(page, web, "/verification", case_ref)
    expect(page.locator("h1")).to_contain_text(case_ref)
    return page


def test_the_queue_shows_a_new_request_by_itself(web_system: WebSystem, lang: str, shoot) -> None:
    page = web_system.page(VERIFIER, lang)
    # Elites' requests: the association's own list, so that the new one is on its first page.
    page.goto(web_system.url + "/verification?association=elites")
    expect(page.locator(".who-decides")).to_contain_text(NEVER_BY_ITSELF[lang])
    page.evaluate("window.notReloaded = true")
    case = submit_case(web_system, "elites")
    row = page.locator(f"#queue tr[data-case-ref='{case['case_ref']}']")
    expect(row).to_be_visible(timeout=APPEAR_MS)
    assert page.evaluate("window.notReloaded === true"), "the page was reloaded"
    expect(row.locator(".badge.warn")).to_be_visible()
    shoot(page, "verification-queue")


def test_the_case_file_is_beside_its_automatic_checks(
    web_system: WebSystem, lang: str, shoot
) -> None:
    case = submit_case(web_system, expired_card=True)
    page = open_case(web_system, lang, case["case_ref"])
    file, checks = page.locator(".columns .case-file"), page.locator(".columns .checks-column")
    expect(file).to_contain_text(case["applicant"]["name"])
    expect(file).to_contain_text(case["applicant"]["national_id"])
    expect(checks.locator("tr.failed")).to_contain_text(FAILED[lang])
    expect(checks.locator("tr.passed").first).to_contain_text(PASSED[lang])
    expect(checks.locator(".corrections li")).not_to_have_count(0)
    expect(page.locator(".who-decides")).to_contain_text(NEEDS_YOU[lang])
    left, right = file.bounding_box(), checks.bounding_box()
    assert left and right and abs(left["y"] - right["y"]) < 2, "the columns are side by side"
    # Arabic reads from the right: the case file, first, is on the right.
    assert (left["x"] > right["x"]) == (lang == "ar")
    shoot(page, "verification-case")


def test_the_verifier_confirms_and_the_case_no_longer_waits(
    web_system: WebSystem, lang: str
) -> None:
    case = submit_case(web_system)
    confirm(web_system, lang, case["case_ref"])
    page = web_system.page(VERIFIER, lang)
    waiting(page, web_system, case["case_ref"], count=0)
    page.goto(f"{web_system.url}/verification?status=confirmed&ref={case['case_ref']}")
    row = page.locator(f"#queue tr[data-case-ref='{case['case_ref']}']")
    expect(row).to_contain_text(CONFIRMED[lang], timeout=APPEAR_MS)


def test_an_override_without_a_reason_is_refused_on_the_form_and_with_one_accepted(
    web_system: WebSystem, lang: str, shoot
) -> None:
    case = submit_case(web_system)  # the checks suggest "verified"
    page = open_case(web_system, lang, case["case_ref"])
    form = page.locator(".confirm-form")
    form.locator("input[name=outcome][value=discrepancies]").check()
    form.locator("button[type=submit]").click()
    expect(form.locator(".flash.error")).to_contain_text(NEEDS_REASON[lang])
    expect(form.locator("input[name=outcome][value=discrepancies]")).to_be_checked()
    shoot(page, "verification-override-refused")
    reason = {
        "ar": "موقع الزراعة المذكور ليس أرضًا لصاحب الطلب",
        "en": "The planting site named is not the applicant's land",
    }[lang]
    form.locator("textarea[name=reason]").fill(reason)
    form.locator("button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/verification$"))
    expect(page.locator(".flash.ok")).to_be_visible()
    find_in_queue(page, web_system, "/verification?status=confirmed", case["case_ref"])
    expect(page.locator(".confirmed")).to_contain_text(reason)


def test_an_erased_applicants_data_shows_erased(web_system: WebSystem, lang: str) -> None:
    case = submit_case(web_system)
    page = open_case(web_system, lang, case["case_ref"])
    expect(page.locator(".case-file")).to_contain_text(case["applicant"]["name"])
    erase(web_system, "sidr", case["applicant"]["national_id"])
    reload_until_erased(page, ".case-file", ERASED[lang])
    expect(page.locator(".case-file")).not_to_contain_text(case["applicant"]["name"])


def test_a_corrected_request_comes_back_as_a_new_revision_to_confirm(
    web_system: WebSystem, lang: str, shoot
) -> None:
    case = submit_case(web_system, expired_card=True)
    confirm(web_system, lang, case["case_ref"])  # as suggested: discrepancies
    correct_card(web_system, case)
    page = web_system.page(VERIFIER, lang)
    waiting(page, web_system, case["case_ref"], count=1)
    page.locator(f"#queue tr[data-case-ref='{case['case_ref']}'] a").click()
    expect(page.locator(".who-decides")).to_contain_text(AGAIN[lang])
    expect(page.locator(".checks-column tr.failed")).to_have_count(0)
    earlier = page.locator(".earlier details")
    expect(earlier).to_have_count(1)
    earlier.locator("summary").click()
    expect(earlier.locator("tr.failed")).to_have_count(1)
    shoot(page, "verification-case-corrected")


def test_the_verifiers_screens_are_refused_to_another_role(
    web_system: WebSystem, lang: str
) -> None:
    page = web_system.page(RESEARCHER, lang)
    response = page.goto(web_system.url + "/verification")
    assert response is not None and response.status == 403
    expect(page.locator(".refusal")).to_be_visible()
