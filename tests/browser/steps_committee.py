"""Journey steps of the research committee, each driving the browser as the person.

Each committee seat (`chair`, `member-2`, …) signs in once per language in a
browser session of its own (`seat_page`), kept for the next steps, so that a
member's page stays open while the others act and their votes appear on it.
"""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from shared.roles import COMMITTEE_CHAIR, COMMITTEE_MEMBER
from tests.web import WebSystem

CHAIR = "chair"  # the chair's seat in every seed pack
# The agenda updates by polling; a case reaches it a moment after its verification.
AGENDA_TIMEOUT = 30_000
_seats: dict[tuple[int, str, str], Page] = {}


def seat_page(web: WebSystem, lang: str, seat: str) -> Page:
    """The seat's own browser session, signed in as its member (the chair for `chair`)."""
    key = (id(web), lang, seat)
    page = _seats.get(key)
    if page is None or page.is_closed():
        role = COMMITTEE_CHAIR if seat == CHAIR else COMMITTEE_MEMBER
        page = web.page(role, lang, username=seat)
        _seats[key] = page
    return page


def case_card(page: Page, case_ref: str) -> Locator:
    return page.locator(f"article.case[data-case-ref='{case_ref}']")


def agenda_page(web: WebSystem, lang: str, association_id: str, case_ref: str = "") -> Page:
    """The chair's agenda of the association (only the case with that reference, when
    given: the agenda of a busy association runs over many pages), open: it polls."""
    page = seat_page(web, lang, CHAIR)
    query = f"association_id={association_id}" + (f"&case_ref={case_ref}" if case_ref else "")
    page.goto(f"{web.url}/committee/agenda?{query}")
    expect(page.locator("#agenda")).to_be_visible()
    return page


def wait_on_agenda(web: WebSystem, lang: str, association_id: str, case_ref: str) -> None:
    """The agenda page shows the case, by itself (no reload)."""
    page = agenda_page(web, lang, association_id, case_ref)
    row = page.locator(f"#agenda tr[data-case-ref='{case_ref}']")
    expect(row).to_be_visible(timeout=AGENDA_TIMEOUT)


def open_sitting(web: WebSystem, lang: str, association_id: str, present: list[str]) -> str:
    """The chair opens a sitting with these seats present; returns the sitting's id."""
    page = seat_page(web, lang, CHAIR)
    page.goto(f"{web.url}/committee/sittings/new?association_id={association_id}")
    boxes = page.locator("#open-sitting input[name=members_present]")
    for index in range(boxes.count()):
        box = boxes.nth(index)
        box.set_checked(box.get_attribute("value") in present)
    page.locator("#open-sitting button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/committee/sittings/[0-9a-f-]{36}$"))
    for seat in present:
        expect(page.locator(f"ul.present li[data-member='{seat}']")).to_be_visible()
    return page.url.rsplit("/", 1)[-1]


def sitting_page(web: WebSystem, lang: str, seat: str, sitting_id: str) -> Page:
    """The seat's session on the sitting's page."""
    page = seat_page(web, lang, seat)
    page.goto(f"{web.url}/committee/sittings/{sitting_id}")
    return page


def cast(
    web: WebSystem,
    lang: str,
    seat: str,
    sitting_id: str,
    case_ref: str,
    vote: str,
    reason: str | None = None,
) -> Page:
    """The seat sends its vote (and dissent); the page as the service answered it."""
    page = sitting_page(web, lang, seat, sitting_id)
    form = case_card(page, case_ref).locator("form.vote-form")
    form.locator(f"input[name=vote][value={vote}]").check()
    form.locator("textarea[name=dissent_note]").fill(reason or "")
    form.locator("button[type=submit]").click()
    return page


def vote(
    web: WebSystem,
    lang: str,
    seat: str,
    sitting_id: str,
    case_ref: str,
    vote: str,
    reason: str | None = None,
) -> None:
    """As that seat, in its own browser session: approve, reject or abstain."""
    page = cast(web, lang, seat, sitting_id, case_ref, vote, reason)
    card = case_card(page, case_ref)
    expect(card.locator(f".vote[data-member='{seat}']")).to_have_attribute("data-vote", vote)
    expect(card.locator(".mine")).to_be_visible()


def recuse(
    web: WebSystem, lang: str, seat: str, sitting_id: str, case_ref: str, reason: str
) -> None:
    """As that seat: a conflict of interest, with its reason."""
    page = sitting_page(web, lang, seat, sitting_id)
    form = case_card(page, case_ref).locator("form.recusal-form")
    form.locator("textarea[name=reason]").fill(reason)
    form.locator("button[type=submit]").click()
    card = case_card(page, case_ref)
    expect(card.locator(f".recusal[data-member='{seat}']")).to_contain_text(reason)


def decide(
    web: WebSystem, lang: str, sitting_id: str, case_ref: str, decision: str, reasons: list[str]
) -> None:
    """The chair records the decision ("approved" or "rejected") with its reasons."""
    page = sitting_page(web, lang, CHAIR, sitting_id)
    form = case_card(page, case_ref).locator("form.decision-form")
    form.locator("select[name=decision]").select_option(decision)
    form.locator("textarea[name=reasons]").fill("\n".join(reasons))
    form.locator("button[type=submit]").click()
    decided = case_card(page, case_ref).locator(".decision")
    expect(decided).to_have_attribute("data-decision", decision)


def close_sitting(web: WebSystem, lang: str, sitting_id: str) -> None:
    page = sitting_page(web, lang, CHAIR, sitting_id)
    page.locator("#close-sitting button").click()
    expect(page.locator(".sitting-state .badge")).not_to_have_class(re.compile(r"\bok\b"))
