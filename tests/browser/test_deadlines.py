"""Deadlines: the committee's cases near and past their decision window, by association.

A system of this module's own, so that its clock can move past the window without
moving the shared one; every case is "approaching" from the start (a warning of 20
days before a 14-day window)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from khidma.run import EmbeddedSystem
from services.web.i18n import Catalogue
from services.web.pages.deadlines import days_text
from shared.roles import AUDITOR, FRONT_DESK
from tests.browser.oversight_cases import submit_case
from tests.browser.steps_deadlines import deadlines_show_case
from tests.web import WebSystem, prepare_web_staff

pytestmark = pytest.mark.e2e

TITLE = {"ar": "المواعيد النهائية لقرارات اللجنة", "en": "The committee's decision deadlines"}
LEFT = {"ar": "بقي ١٣ يومًا", "en": "13 days left"}
LATE = {"ar": "متأخر يومين", "en": "2 days late"}
DAY = 86400


@pytest.fixture(scope="module")
def clocked(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[WebSystem]:
    data_dir = tmp_path_factory.mktemp("khidma-deadlines")
    environment = {
        "KHIDMA_CLOCK_FILE": str(data_dir / "clock-offset"),
        "KHIDMA_DEADLINE_SCAN_SECONDS": "0.5",
        "KHIDMA_DEADLINE_WARNING_DAYS": "20",
        "KHIDMA_REFRESH_SECONDS": "1",
    }
    with EmbeddedSystem(data_dir, fixed_ports=False, service_env=environment) as system:
        web = WebSystem(system, prepare_web_staff(data_dir, system.services["identity"].url), browser)
        try:
            yield web
        finally:
            web.close_contexts()


def move_clock(web: WebSystem, seconds: int) -> None:
    (Path(web.system.data_dir) / "clock-offset").write_text(str(seconds))


def test_a_new_case_appears_as_approaching_by_itself(clocked: WebSystem, lang: str, shoot) -> None:
    move_clock(clocked, 0)
    page = clocked.page("committee_chair", lang, username="chair")
    page.goto(clocked.url + "/deadlines")
    expect(page.locator("h1")).to_have_text(TITLE[lang])
    # The case is made after the page opened: the list shows it without a reload.
    case = submit_case(clocked, "sidr")
    deadlines_show_case(clocked, lang, case["case_ref"], "approaching", page=page)
    row = page.locator(f"tr[data-case='{case['case_ref']}']")
    expect(row).to_contain_text(LEFT[lang])
    expect(row.locator("time")).to_have_count(1)
    expect(page.locator("section[data-association='sidr'] h2")).to_be_visible()
    shoot(page, "deadlines")


def test_a_case_past_its_window_shows_how_late(clocked: WebSystem, lang: str, shoot) -> None:
    move_clock(clocked, 0)
    case = submit_case(clocked, "health-coop")
    page = deadlines_show_case(clocked, lang, case["case_ref"], "approaching")
    move_clock(clocked, 15 * DAY + 3600)  # a day and an hour past the 14-day window
    deadlines_show_case(clocked, lang, case["case_ref"], "overdue", page=page)
    row = page.locator(f"tr[data-case='{case['case_ref']}']")
    expect(row.locator(".badge.bad")).to_have_text(LATE[lang])
    # Filtered to what is past its deadline, in one association.
    page.goto(clocked.url + "/deadlines?status=overdue&association=health-coop")
    expect(page.locator(f"tr[data-case='{case['case_ref']}']")).to_be_visible()
    expect(page.locator("tr[data-flag='approaching']")).to_have_count(0)
    shoot(page, "deadlines-overdue")
    # The auditor watches them too; the front desk may not.
    deadlines_show_case(clocked, lang, case["case_ref"], "overdue", role=AUDITOR, username=None)
    desk = clocked.page(FRONT_DESK, lang)
    assert desk.request.get(clocked.url + "/deadlines").status == 403


@pytest.mark.parametrize(
    ("days", "ar", "en"),
    [
        (0, "اليوم آخر يوم", "Today is the last day"),
        (1, "بقي يوم واحد", "1 day left"),
        (2, "بقي يومان", "2 days left"),
        (7, "بقيت ٧ أيام", "7 days left"),
        (11, "بقي ١١ يومًا", "11 days left"),
        (-1, "متأخر يومًا واحدًا", "1 day late"),
        (-4, "متأخر ٤ أيام", "4 days late"),
    ],
)
def test_the_days_read_in_each_languages_own_number_forms(days: int, ar: str, en: str) -> None:
    catalogue = Catalogue.load()
    for lang, expected in (("ar", ar), ("en", en)):
        shown = days_text(days, lang)
        assert shown is not None
        assert catalogue.text(shown[0], lang, **shown[1]) == expected
