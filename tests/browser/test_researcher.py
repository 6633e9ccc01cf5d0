"""The social researcher in the browser: the queue updates by itself, the referral
with the front desk's reason and questions, answering and closing, and the
answers shown afterwards ("erased" once the applicant is)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from shared.roles import RESEARCHER, VERIFIER
from tests.browser.steps_verify import (
    APPEAR_MS,
    answer_referral,
    erase,
    find_in_queue,
    refer,
    reload_until_erased,
    submit_case,
)
from tests.web import WebSystem

pytestmark = pytest.mark.e2e

ERASED = {"ar": "مُحيت", "en": "erased"}
# What the front desk and the researcher write, in the language of the test's staff.
REASON = {
    "ar": "لا يعرف صاحب الطلب المستندات التي تتطلبها الخدمة",
    "en": "The applicant does not know which documents the service needs",
}
QUESTIONS = {
    "ar": ["ما المستندات المطلوبة؟", "هل يجوز لأحد أقاربه استلام الشتلات؟"],
    "en": ["Which documents are needed?", "Can a relative collect the seedlings?"],
}
ANSWERS = {
    "ar": ["صورة الهوية فقط", "نعم، بخطاب موقَّع من صاحب الطلب"],
    "en": ["The ID card only", "Yes, with a signed letter from the applicant"],
}
NOTE = {
    "ar": "اتصلت بصاحب الطلب، واتضحت له الإجراءات الآن.",
    "en": "Called the applicant; the procedure is clear to them now.",
}


def referred_case(web: WebSystem, lang: str, association_id: str = "sidr") -> dict[str, str]:
    case = submit_case(web, association_id)
    refer(web, case["case_id"], REASON[lang], QUESTIONS[lang])
    return case


def test_the_queue_shows_a_new_referral_by_itself(web_system: WebSystem, lang: str, shoot) -> None:
    page = web_system.page(RESEARCHER, lang)
    # Textile's referrals: the association's own list, so that the new one is on its first page.
    page.goto(web_system.url + "/researcher?association=textile-coop")
    expect(page.locator("#queue")).to_be_visible()
    page.evaluate("window.notReloaded = true")
    case = referred_case(web_system, lang, "textile-coop")
    row = page.locator(f"#queue tr[data-case-ref='{case['case_ref']}']")
    expect(row).to_be_visible(timeout=APPEAR_MS)
    expect(row).to_contain_text(REASON[lang])
    assert page.evaluate("window.notReloaded === true"), "the page was reloaded"
    shoot(page, "researcher-queue")


def test_the_researcher_answers_closes_and_the_answers_are_shown(
    web_system: WebSystem, lang: str, shoot
) -> None:
    case = referred_case(web_system, lang)
    page = web_system.page(RESEARCHER, lang)
    find_in_queue(page, web_system, "/researcher", case["case_ref"])
    referral = page.locator(".referral")
    expect(referral).to_contain_text(REASON[lang])
    for question in QUESTIONS[lang]:
        expect(referral).to_contain_text(question)
    shoot(page, "researcher-referral")

    answers, note = ANSWERS[lang], NOTE[lang]
    answer_referral(web_system, lang, case["case_ref"], answers, note)

    page.goto(f"{web_system.url}/researcher/{case['case_id']}")
    closed = page.locator(".closed-referral")
    expect(closed.locator(".answers li")).to_have_count(2)
    expect(closed.locator(".answers li").first).to_contain_text(QUESTIONS[lang][0])
    expect(closed.locator(".answers li").first).to_contain_text(answers[0])
    expect(closed.locator(".note")).to_contain_text(note)
    expect(page.locator("form[action$='/closure']")).to_have_count(0)
    shoot(page, "researcher-answered")
    # The queue no longer holds it.
    page.goto(f"{web_system.url}/researcher?ref={case['case_ref']}")
    expect(page.locator(f"#queue tr[data-case-ref='{case['case_ref']}']")).to_have_count(0)

    erase(web_system, "sidr", case["applicant"]["national_id"])
    page.goto(f"{web_system.url}/researcher/{case['case_id']}")
    reload_until_erased(page, ".closed-referral .note", ERASED[lang])
    expect(closed).not_to_contain_text(note)
    expect(closed.locator(".answers-erased .erased")).to_contain_text(ERASED[lang])


def test_the_researchers_screens_are_refused_to_another_role(
    web_system: WebSystem, lang: str
) -> None:
    page = web_system.page(VERIFIER, lang)
    response = page.goto(web_system.url + "/researcher")
    assert response is not None and response.status == 403
    expect(page.locator(".refusal")).to_be_visible()
