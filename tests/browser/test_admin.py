"""The administrator: a user registered with a role, shown their one-time password
once, granted another role, signs in and chooses their own password; a member
registered, then looked up by national id without it ever being in a URL."""

from __future__ import annotations

from uuid import uuid4

import pytest
from playwright.sync_api import expect

from khidma.simulate import national_id
from shared.roles import ADMIN, FRONT_DESK, VERIFIER
from tests.browser.steps_admin import (
    admin_creates_user,
    admin_grants_role,
    admin_looks_up_member,
    admin_registers_member,
    new_user_signs_in,
)
from tests.web import WebSystem

pytestmark = pytest.mark.e2e

ROLE = {"ar": "مدقق البيانات", "en": "Verifier"}
GOOD = {"ar": "عضوية سارية", "en": "In good standing"}
NOT_FOUND = {"ar": "لا يوجد عضو مسجل بهذا الرقم", "en": "No member with this ID number"}


def test_a_new_user_gets_a_role_and_signs_in_with_their_own_password(
    web_system: WebSystem, lang: str, shoot
) -> None:
    username = f"officer-{lang}-{uuid4().hex[:6]}"
    admin = web_system.page(ADMIN, lang)
    one_time = admin_creates_user(
        web_system, lang, username, "ريم العتيبي", "sidr", FRONT_DESK, page=admin
    )
    assert len(one_time) >= 12
    # Shown once: the list does not show it again.
    admin.goto(web_system.url + "/admin/users")
    expect(admin.locator("body")).not_to_contain_text(one_time)
    admin_grants_role(web_system, lang, username, "sidr", VERIFIER, page=admin)
    row = admin.locator(f"tr[data-user='{username}']")
    expect(row.locator(".user-roles")).to_contain_text(ROLE[lang])
    expect(row.locator(".badge.warn")).to_be_visible()  # has not chosen a password yet
    shoot(admin, "admin-users")
    home = new_user_signs_in(web_system, lang, username, one_time, f"own-{uuid4().hex}")
    expect(home.locator("main")).to_contain_text(ROLE[lang])


def test_a_member_is_registered_then_looked_up_by_national_id(
    web_system: WebSystem, lang: str, shoot
) -> None:
    number = national_id()
    page = admin_registers_member(web_system, lang, "dumat-bees", number, "سلمان الحربي")
    page = admin_looks_up_member(web_system, lang, "dumat-bees", number, page=page)
    member = page.locator("#member")
    expect(member).to_contain_text("سلمان الحربي")
    expect(member).to_contain_text(number)
    expect(member).to_contain_text(GOOD[lang])
    assert number not in page.url
    shoot(page, "admin-members")
    page.locator("#lookup input[name=national_id]").fill(national_id())
    page.locator("#lookup button[type=submit]").click()
    expect(page.locator("#lookup .flash.error")).to_contain_text(NOT_FOUND[lang])


def test_only_the_administrator_opens_the_admin_screens(web_system: WebSystem, lang: str) -> None:
    page = web_system.page(VERIFIER, lang)
    assert page.request.get(web_system.url + "/admin/users").status == 403
    assert page.request.get(web_system.url + "/admin/members").status == 403


def test_a_role_is_revoked_and_an_account_disabled(web_system: WebSystem, lang: str) -> None:
    username = f"leaver-{lang}-{uuid4().hex[:6]}"
    admin = web_system.page(ADMIN, lang)
    one_time = admin_creates_user(
        web_system, lang, username, "خالد الدوسري", "sidr", FRONT_DESK, page=admin
    )
    admin_grants_role(web_system, lang, username, "sidr", VERIFIER, page=admin)
    row = admin.locator(f"tr[data-user='{username}']")
    row.locator("form[action$='/revoke']:has(input[name=role][value='verifier']) button").click()
    expect(admin.locator(".flash.ok")).to_be_visible()
    expect(row.locator(".user-roles")).not_to_contain_text(ROLE[lang])
    row.locator("details:has(form.disable) summary").click()
    row.locator("form.disable input[name=reason]").fill("Left the association")
    row.locator("form.disable button[type=submit]").click()
    expect(row.locator(".badge.bad")).to_be_visible()
    # A disabled account signs in to nothing, not even to choose its password.
    page = web_system.visit(lang, "/signin")
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(one_time)
    page.locator("form[action='/signin'] button[type=submit]").click()
    expect(page.locator(".flash.error")).to_be_visible()


def test_the_member_registry_is_imported_from_a_csv_file(web_system: WebSystem, lang: str) -> None:
    number = national_id()
    csv = f"national_id,name,joined_on,status,status_since\n{number},منيرة الشمري,2019-03-01,suspended,2024-01-01\n"
    page = web_system.page(ADMIN, lang)
    page.goto(web_system.url + "/admin/members")
    form = page.locator("#import form")
    form.locator("select[name=association_id]").select_option("dumat-bees")
    form.locator("input[name=file]").set_input_files(
        {"name": "members.csv", "mimeType": "text/csv", "buffer": csv.encode()}
    )
    form.locator("button[type=submit]").click()
    expect(page.locator(".flash.ok")).to_contain_text("1")
    member = admin_looks_up_member(web_system, lang, "dumat-bees", number, page=page)
    expect(member.locator("#member")).to_contain_text("منيرة الشمري")
    expect(member.locator("#member .badge.warn")).to_be_visible()  # suspended
