"""Everyone signs in: the web application in Arabic first, and in English."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from khidma.signin import STAFF
from shared.roles import FRONT_DESK, VERIFIER
from tests.web import WebSystem

pytestmark = [pytest.mark.e2e, pytest.mark.both_languages]

TITLES = {"ar": "تسجيل الدخول", "en": "Sign in"}
# identity's own refusal, shown in the reader's language
WRONG = {
    "ar": "اسم المستخدم أو كلمة المرور غير صحيحة",
    "en": "The user name or the password is wrong",
}


def test_the_sign_in_page_is_arabic_right_to_left_by_default(web_system: WebSystem) -> None:
    page = web_system.new_page("ar")
    page.goto(web_system.url + "/signin")
    expect(page.locator("html")).to_have_attribute("lang", "ar")
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    expect(page.locator("h1")).to_have_text(TITLES["ar"])


def test_a_person_signs_in_sees_their_menu_and_signs_out(
    web_system: WebSystem, lang: str, shoot
) -> None:
    page = web_system.visit(lang, "/signin")
    expect(page.locator("h1")).to_have_text(TITLES[lang])
    expect(page.locator("html")).to_have_attribute("dir", "rtl" if lang == "ar" else "ltr")
    shoot(page, "signin")
    page.locator("input[name=username]").fill(STAFF[VERIFIER])
    page.locator("input[name=password]").fill(web_system.passwords[STAFF[VERIFIER]])
    page.locator("form[action='/signin'] button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/staff$"))
    expect(page.locator(".person")).to_contain_text(STAFF[VERIFIER])
    shoot(page, "staff-home")
    page.locator("form[action='/signout'] button").click()
    expect(page).to_have_url(re.compile(r"/signin$"))
    page.goto(web_system.url + "/staff")
    expect(page).to_have_url(re.compile(r"/signin\?next=/staff"))


def test_a_wrong_password_is_refused_in_the_readers_language(
    web_system: WebSystem, lang: str
) -> None:
    page = web_system.visit(lang, "/signin")
    page.locator("input[name=username]").fill(STAFF[FRONT_DESK])
    page.locator("input[name=password]").fill("not-the-password-at-all")
    page.locator("form[action='/signin'] button[type=submit]").click()
    expect(page.locator(".flash.error")).to_contain_text(WRONG[lang])
    expect(page.locator("h1")).to_have_text(TITLES[lang])
    assert "/staff" not in page.url


def test_a_form_without_its_csrf_token_is_refused(web_system: WebSystem, lang: str) -> None:
    page = web_system.page(FRONT_DESK, lang)
    response = page.request.post(web_system.url + "/signout", form={"next": "/"})
    assert response.status == 403
    # Still signed in: the forged sign-out did nothing.
    page.goto(web_system.url + "/staff")
    expect(page.locator(".person")).to_contain_text(STAFF[FRONT_DESK])
