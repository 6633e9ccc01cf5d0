"""Journey steps: the administrator registers users, grants roles and keeps the member
registry; a new user signs in with the one-time password and chooses their own."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from shared.roles import ADMIN
from tests.web import WebSystem


def admin_creates_user(
    web: WebSystem, lang: str, username: str, name: str, association: str, role: str,
    *, page: Page | None = None,
) -> str:
    """The administrator registers the user with a role; returns the one-time password
    the page shows (once)."""
    page = page or web.page(ADMIN, lang)
    page.goto(web.url + "/admin/users")
    form = page.locator("#new-user form")
    form.locator("input[name=username]").fill(username)
    form.locator("input[name=display_name]").fill(name)
    form.locator("select[name=association_id]").select_option(association)
    form.locator("select[name=role]").select_option(role)
    form.locator("button[type=submit]").click()
    expect(page.locator("#created")).to_contain_text(username)
    return page.locator(".one-time-password").inner_text().strip()


def admin_grants_role(
    web: WebSystem, lang: str, username: str, association: str, role: str,
    *, page: Page | None = None,
) -> Page:
    """The administrator grants the user another role; the users' list shows it. Returns the page."""
    page = page or web.page(ADMIN, lang)
    page.goto(web.url + "/admin/users")
    row = page.locator(f"tr[data-user='{username}']")
    row.locator("details").first.locator("summary").click()
    grant = row.locator("form.grant")
    grant.locator("select[name=association_id]").select_option(association)
    grant.locator("select[name=role]").select_option(role)
    grant.locator("button[type=submit]").click()
    expect(page.locator(".flash.ok")).to_be_visible()
    revoke = f"form[action$='/revoke']:has(input[name=role][value='{role}'])"
    expect(page.locator(f"tr[data-user='{username}'] {revoke}")).to_have_count(1)
    return page


def new_user_signs_in(
    web: WebSystem, lang: str, username: str, one_time_password: str, new_password: str
) -> Page:
    """The new user signs in with the one-time password, chooses their own and is in.
    Returns their page (the staff home)."""
    page = web.visit(lang, "/signin")
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(one_time_password)
    page.locator("form[action='/signin'] button[type=submit]").click()
    form = page.locator("form[action='/signin/password']")
    form.locator("input[name=current_password]").fill(one_time_password)
    form.locator("input[name=new_password]").fill(new_password)
    form.locator("input[name=repeat_password]").fill(new_password)
    form.locator("button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/staff$"))
    expect(page.locator(".person")).to_contain_text(username)
    return page


def admin_registers_member(
    web: WebSystem, lang: str, association: str, national_id: str, name: str,
    *, joined_on: str = "2020-01-01", status: str = "good", page: Page | None = None,
) -> Page:
    """The administrator registers a member (or updates their standing). Returns the page."""
    page = page or web.page(ADMIN, lang)
    page.goto(web.url + "/admin/members")
    form = page.locator("#register form")
    form.locator("select[name=association_id]").select_option(association)
    form.locator("input[name=national_id]").fill(national_id)
    form.locator("input[name=name]").fill(name)
    form.locator("input[name=joined_on]").fill(joined_on)
    form.locator("select[name=status]").select_option(status)
    form.locator("input[name=status_since]").fill(joined_on)
    form.locator("button[type=submit]").click()
    expect(page.locator(".flash.ok")).to_be_visible()
    return page


def admin_looks_up_member(
    web: WebSystem, lang: str, association: str, national_id: str, *, page: Page | None = None
) -> Page:
    """The administrator looks the member up by national id (posted, not in the URL).
    Returns the page showing the member (`#member`)."""
    page = page or web.page(ADMIN, lang)
    page.goto(web.url + "/admin/members")
    form = page.locator("#lookup form")
    form.locator("select[name=association_id]").select_option(association)
    form.locator("input[name=national_id]").fill(national_id)
    form.locator("button[type=submit]").click()
    expect(page.locator("#member")).to_be_visible()
    assert national_id not in page.url
    return page
