"""The applicant's public pages, in Arabic and in English: no sign-in."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from khidma.simulate import simulated_applicant
from shared.form_link import load_key
from tests.browser.steps_public import (
    REQUESTS,
    VALID_CARD,
    apply_on_website,
    fill_request,
    open_status,
)
from tests.web import LOCALES, WebSystem

pytestmark = pytest.mark.e2e

SIDR_MEMBER = {"ar": "عضو الجمعية العمومية", "en": "member of the general assembly"}


def expect_language(page: Page, lang: str) -> None:
    expect(page.locator("html")).to_have_attribute("lang", lang)
    expect(page.locator("html")).to_have_attribute("dir", "rtl" if lang == "ar" else "ltr")


def test_the_associations_and_what_each_service_needs(
    web_system: WebSystem, lang: str, shoot
) -> None:
    page = web_system.visit(lang, "/")
    expect_language(page, lang)
    expect(page.locator("a[href='/a/sidr']")).to_be_visible()
    expect(page.locator("a[href='/signin']")).to_be_visible()
    shoot(page, "public-home")
    page.locator("a[href='/a/sidr']").click()
    expect(page.locator("#service-seedlings")).to_be_visible()
    expect(page.locator("body")).to_contain_text(
        {"ar": "أعضاء الجمعية العمومية", "en": "members of the general assembly"}[lang]
    )
    expect(page.locator("#service-seedlings")).to_contain_text(
        {"ar": "يصرف من ١ إلى ٥٠٠ شتلة", "en": "One request may ask for 1 to 500 seedlings"}[lang]
    )
    shoot(page, "public-association")


def test_apply_shows_the_reference_and_code_once_and_the_status_opens_with_them(
    web_system: WebSystem, lang: str, shoot
) -> None:
    page = web_system.visit(lang, "/a/sidr/seedlings/apply")
    expect(page.locator("legend").first).to_contain_text(SIDR_MEMBER[lang])
    fields, documents = REQUESTS[("sidr", "seedlings")]
    fill_request(page, simulated_applicant(), fields, documents)
    expect(page.locator("#eligibility .eligibility-answer")).to_have_attribute(
        "data-eligible", "yes"
    )
    shoot(page, "public-apply")
    page.locator("form.request-form button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/applied$"))
    expect_language(page, lang)
    reference = page.locator(".case-ref bdi[dir=ltr]")
    expect(reference).to_have_text(re.compile(r"^SDR-\d{4}-\d{6}$"))
    expect(page.locator(".case-code bdi[dir=ltr]")).to_have_text(re.compile(r"^[A-Z0-9-]{10,}$"))
    shoot(page, "public-applied")
    case_ref = reference.inner_text()
    code = page.locator(".case-code bdi[dir=ltr]").inner_text()
    page.reload()  # shown once: a reload no longer has the code
    expect(page.locator(".case-code")).to_have_count(0)

    status = open_status(web_system, lang, case_ref, code)
    expect_language(status, lang)
    expect(status.locator("dd bdi[dir=ltr]").first).to_have_text(case_ref)
    expect(status.locator(".status-label")).to_be_visible()
    expect(status.locator(".history li").first).to_be_visible()
    shoot(status, "public-status")


def test_a_wrong_code_reads_as_an_unknown_reference(web_system: WebSystem, lang: str) -> None:
    applied = apply_on_website(web_system, lang, "sidr", "seedlings", simulated_applicant())
    wrong = open_status(web_system, lang, applied.case_ref, "AAAA-BBBB-CCCC")
    unknown = open_status(web_system, lang, "SDR-1400-999999", "AAAA-BBBB-CCCC")
    for page in (wrong, unknown):
        expect(page.locator(".flash.error")).to_have_text(
            {
                "ar": "لا يوجد طلب بهذا الرقم وهذا الرمز. تحقق منهما وحاول مرة أخرى.",
                "en": "No request matches this reference and this code. Check them and try again.",
            }[lang]
        )
        expect(page.locator(".status-label")).to_have_count(0)


def test_eligibility_refusal_is_shown_live(web_system: WebSystem, lang: str) -> None:
    page = web_system.visit(lang, "/a/sidr/seedlings/apply")
    page.locator("input[name='field.seedling_count']").fill("900")
    answer = page.locator("#eligibility .eligibility-answer")
    expect(answer).to_have_attribute("data-eligible", "no")
    expect(answer).to_contain_text(
        {
            "ar": "يصرف من ١ إلى ٥٠٠ شتلة للطلب الواحد",
            "en": "One request may ask for 1 to 500 seedlings",
        }[lang]
    )
    # The question on its own page answers without JavaScript too (a plain POST).
    context = web_system.browser.new_context(**LOCALES[lang], java_script_enabled=False)
    web_system.contexts.append(context)
    plain = context.new_page()
    plain.goto(web_system.url + "/a/sidr/seedlings/eligibility")
    plain.locator("input[name='field.seedling_count']").fill("40")
    plain.locator("main form button[type=submit]").click()
    expect(plain.locator(".eligibility-answer")).to_have_attribute("data-eligible", "yes")
    expect(plain.locator("input[name='field.seedling_count']")).to_have_value("40")


def test_a_refused_form_keeps_what_was_typed_and_names_the_problem(
    web_system: WebSystem, lang: str
) -> None:
    page = web_system.visit(lang, "/a/sidr/seedlings/apply")
    person = {**simulated_applicant(), "national_id": "1" * 25}
    fields, documents = REQUESTS[("sidr", "seedlings")]
    fill_request(page, person, fields, documents)
    page.locator("form.request-form button[type=submit]").click()
    expect(page.locator(".flash.error[role=alert]").first).to_be_visible()
    problem = page.locator("input[name='applicant.national_id'] ~ .field-error")
    expect(problem).to_contain_text({"ar": "أطول من المسموح", "en": "Too long"}[lang])
    expect(page.locator("input[name='applicant.name']")).to_have_value(person["name"])
    expect(page.locator("input[name='field.planting_site']")).to_have_value("وادي حنيفة")
    expect(page.locator("input[name='applicant.national_id']")).to_have_value(person["national_id"])


def test_an_unknown_survey_link_reads_clearly(web_system: WebSystem, lang: str) -> None:
    page = web_system.visit(lang, "/surveys/no-such-token-at-all")
    expect_language(page, lang)
    expect(page.locator("h1")).to_have_text({"ar": "رابط غير معروف", "en": "Unknown link"}[lang])
    expect(page.locator(".flash")).to_contain_text(
        {"ar": "لا يوجد استبيان يطابق هذا الرابط", "en": "No survey matches this link"}[lang]
    )


def test_the_applicant_completes_an_incomplete_request_with_the_code(
    web_system: WebSystem, lang: str
) -> None:
    applied = apply_on_website(
        web_system,
        lang,
        "sidr",
        "seedlings",
        simulated_applicant(),
        leave_out_document="national_id_card",
    )
    page = open_status(web_system, lang, applied.case_ref, applied.code)
    form = page.locator("form#information")
    expect(form).to_be_visible()
    form.locator("input[name='doc.national_id_card.number']").fill(VALID_CARD["number"])
    form.locator("input[name='doc.national_id_card.expires_on']").fill(VALID_CARD["expires_on"])
    form.locator("input[name=attested]").check()
    form.locator("button[type=submit]").click()
    expect(page.locator(".flash.ok")).to_be_visible()
    expect(page.locator("form#information")).to_have_count(0)


@pytest.mark.parametrize(
    ("association_id", "term"),
    [
        ("textile-coop", {"ar": "مستفيد", "en": "beneficiary"}),
        ("elites", {"ar": "مستخدم", "en": "user"}),
    ],
)
def test_the_form_says_the_associations_own_word_for_its_clients(
    web_system: WebSystem, lang: str, association_id: str, term: dict[str, str]
) -> None:
    page = web_system.visit(lang, f"/a/{association_id}")
    page.locator("a.button.primary").first.click()
    expect(page).to_have_url(re.compile(rf"/a/{association_id}/[a-z-]+/apply$"))
    expect(page.locator("legend").first).to_contain_text(term[lang])
    expect(page.locator("body")).not_to_contain_text(SIDR_MEMBER[lang])


def test_a_double_click_sends_one_request_and_still_shows_the_code(
    web_system: WebSystem, lang: str
) -> None:
    page = web_system.visit(lang, "/a/sidr/seedlings/apply")
    fields, documents = REQUESTS[("sidr", "seedlings")]
    fill_request(page, simulated_applicant(), fields, documents)
    sent: list[str] = []
    page.on(
        "request",
        lambda r: sent.append(r.url) if r.method == "POST" and r.url.endswith("/apply") else None,
    )
    page.locator("form.request-form button[type=submit]").dblclick()
    expect(page).to_have_url(re.compile(r"/applied$"))
    expect(page.locator(".case-code bdi[dir=ltr]")).to_have_text(re.compile(r"^[A-Z0-9-]{10,}$"))
    assert len(sent) == 1


EXPIRED_FORM = {
    "ar": "انتهت صلاحية النموذج أو لم يُرسل من هذا الموقع",
    "en": "The form has expired or was not sent from this site",
}


def test_a_refused_submission_says_why_above_the_form_and_keeps_what_was_typed(
    web_system: WebSystem, lang: str, shoot
) -> None:
    """htmx swaps no 403: the web's refusal (here a form whose session token no longer
    matches, as after the session ended in another tab) is aimed at the page's panel."""
    page = web_system.visit(lang, "/a/sidr/seedlings/apply")
    fields, documents = REQUESTS[("sidr", "seedlings")]
    applicant = simulated_applicant()
    fill_request(page, applicant, fields, documents)
    page.evaluate(
        """() => {
            document.body.setAttribute("hx-headers", JSON.stringify({"X-CSRF-Token": "stale"}));
            document.querySelectorAll("input[name=csrf_token]").forEach(i => i.value = "stale");
        }"""
    )
    page.locator("form.request-form button[type=submit]").click()
    panel = page.locator("#page-refusal .refusal[role=alert]")
    expect(panel).to_contain_text(EXPIRED_FORM[lang])
    expect(panel).to_contain_text("csrf_failed")
    expect(page).to_have_url(re.compile(r"/apply$"))
    expect(page.locator("input[name='applicant.national_id']")).to_have_value(
        applicant["national_id"]
    )
    expect(page.locator("form.request-form button[type=submit]")).to_be_enabled()
    shoot(page, "apply-refused", full_page=False)


def test_a_channels_link_opens_the_form_with_the_phone_filled_in(
    web_system: WebSystem, lang: str, shoot
) -> None:
    """WhatsApp's menu links the form with the sender's phone sealed in (the
    channels service seals with the runner's form-link key; the web app opens it)."""
    key = load_key(web_system.system.data_dir / "form-link.key", configured=True)
    assert key is not None
    phone = "+966500000123"
    token = key.seal(
        "sidr", "seedlings", {"applicant": {"phone": phone}}, datetime.now(UTC) + timedelta(days=7)
    )
    page = web_system.visit(lang, f"/a/sidr/seedlings/apply?prefill={token}")
    expect_language(page, lang)  # English: the language switched, the phone kept
    expect(page.locator("input[name='applicant.phone']")).to_have_value(phone)
    expect(page.locator("input[name='applicant.national_id']")).to_have_value("")
    expect(page.locator(".flash.warn")).to_have_count(0)
    assert token not in page.content()
    shoot(page, "public-apply-prefilled")
    # The same link once it has expired: the empty form, and why.
    expired = key.seal(
        "sidr", "seedlings", {"applicant": {"phone": phone}}, datetime.now(UTC) - timedelta(days=1)
    )
    page.goto(f"{web_system.url}/a/sidr/seedlings/apply?prefill={expired}")
    expect(page.locator(".flash.warn")).to_contain_text(
        {"ar": "انتهت صلاحية الرابط", "en": "The link you opened has expired"}[lang]
    )
    expect(page.locator("input[name='applicant.phone']")).to_have_value("")
