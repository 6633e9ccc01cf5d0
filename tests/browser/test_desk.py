"""The front desk, in Arabic and in English: the cases, a new request from a phone
call, completing, referral, delivery; and the survey answered from its link."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from khidma.signin import STAFF
from khidma.simulate import simulated_applicant
from services.surveys.outbound import invitation_links
from shared.roles import FRONT_DESK, VERIFIER
from tests.browser.steps_desk import complete_request, deliver, new_request, open_case, refer
from tests.browser.steps_public import (
    REQUESTS,
    VALID_CARD,
    answer_survey,
    apply_on_website,
    fill_request,
    request_status,
)
from tests.web import WebSystem

pytestmark = pytest.mark.e2e

SEEDLINGS = REQUESTS[("sidr", "seedlings")]
SIDR_MEMBER = {"ar": "عضو الجمعية العمومية", "en": "member of the general assembly"}
PRESENT = ("chair", "member-2", "member-3")


def expect_language(page: Page, lang: str) -> None:
    expect(page.locator("html")).to_have_attribute("lang", lang)
    expect(page.locator("html")).to_have_attribute("dir", "rtl" if lang == "ar" else "ltr")


def by_phone(web: WebSystem, lang: str) -> Any:
    return new_request(web, lang, "sidr", "seedlings", "phone", simulated_applicant(), *SEEDLINGS)


def test_the_cases_list_finds_a_new_request_by_itself(
    web_system: WebSystem, lang: str, shoot
) -> None:
    page = web_system.page(FRONT_DESK, lang)
    page.goto(web_system.url + "/desk?association_id=sidr")
    expect_language(page, lang)
    applied = apply_on_website(web_system, lang, "sidr", "seedlings", simulated_applicant())
    # The list polls: the new request appears without a reload (at the end, oldest first).
    page.goto(web_system.url + f"/desk?association_id=sidr&page={last_page(web_system)}")
    row = page.locator(f"tr[data-case-ref='{applied.case_ref}']")
    expect(row).to_be_visible()
    expect(row.locator("bdi[dir=ltr]").first).to_have_text(applied.case_ref)
    shoot(page, "desk-cases")
    page.locator("select[name=status]").select_option("received")
    page.locator("form[action='/desk'] button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"status=received"))


def last_page(web: WebSystem) -> int:
    """The page of the list holding the newest cases (the list is oldest first)."""
    found = call(
        token(web, STAFF[FRONT_DESK]),
        "GET",
        web.system.services["intake"].url + "/cases",
        params={"association_id": "sidr", "limit": 1000},
    )
    return max(1, (len(found) + 24) // 25)


def test_a_new_request_from_a_phone_call(web_system: WebSystem, lang: str, shoot) -> None:
    page = web_system.page(FRONT_DESK, lang)
    page.goto(web_system.url + "/desk/new?association_id=sidr")
    channels = page.locator("select[name=channel] option")
    expect(channels).to_have_count(4)  # empty, interview, phone, letter: sidr has no branch
    assert "website" not in [channels.nth(i).get_attribute("value") for i in range(4)]
    page.locator("select[name=service_code]").select_option("seedlings")
    page.locator("select[name=channel]").select_option("phone")
    page.locator("form.chooser button[type=submit]").click()
    expect(page.locator("legend").first).to_contain_text(SIDR_MEMBER[lang])
    fill_request(
        page,
        simulated_applicant(),
        {"planting_site": "الدرعية", "seedling_count": 900},
        SEEDLINGS[1],
    )
    expect(page.locator("#eligibility .eligibility-answer")).to_have_attribute(
        "data-eligible", "no"
    )
    page.locator("input[name='field.seedling_count']").fill("30")
    expect(page.locator("#eligibility .eligibility-answer")).to_have_attribute(
        "data-eligible", "yes"
    )
    shoot(page, "desk-new")
    page.locator("form.request-form button[type=submit]").click()
    expect(page.locator(".handover .case-ref bdi[dir=ltr]")).to_have_text(re.compile(r"^SDR-"))
    expect(page.locator(".handover .case-code bdi[dir=ltr]")).to_be_visible()
    expect(page.locator("dd")).to_contain_text([{"ar": "اتصال هاتفي", "en": "Phone call"}[lang]])
    shoot(page, "desk-case")
    page.reload()  # the code is handed over once
    expect(page.locator(".handover")).to_have_count(0)


def test_the_desk_completes_a_request_left_incomplete_on_the_website(
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
    page = open_case(web_system, lang, applied.case_ref)
    expect(page.locator(".case-status .badge")).to_have_attribute("data-status", "incomplete")
    page.context.close()
    complete_request(web_system, lang, applied.case_ref, {"national_id_card": VALID_CARD})
    page = open_case(web_system, lang, applied.case_ref)
    expect(page.locator(".case-status .badge")).not_to_have_attribute("data-status", "incomplete")
    expect(page.locator("#complete")).to_have_count(0)
    status = request_status(web_system, lang, applied.case_ref, applied.code)
    assert status and "incomplete" not in status.lower()


def test_a_referral_to_the_social_researcher(web_system: WebSystem, lang: str) -> None:
    made = by_phone(web_system, lang)
    refer(
        web_system, lang, made.case_ref, "الإجراء غير واضح لمقدم الطلب", ["ما المستندات؟", "متى؟"]
    )
    page = open_case(web_system, lang, made.case_ref)
    wait_for_text(
        page,
        ".history",
        {"ar": "أحيل إلى الباحث الاجتماعي", "en": "Referred to the social researcher"}[lang],
    )


def wait_for_text(page: Page, selector: str, text: str, timeout: float = 15.0) -> None:
    """Reloads until the read model shows `text` (it follows the store a moment later)."""
    deadline = time.monotonic() + timeout
    while text not in page.locator(selector).inner_text():
        assert time.monotonic() < deadline, f"{text!r} never appeared in {selector}"
        page.wait_for_timeout(300)
        page.reload()


def test_delivery_once_approved_then_the_survey_from_its_link(
    web_system: WebSystem, lang: str, shoot
) -> None:
    made = by_phone(web_system, lang)
    page = open_case(web_system, lang, made.case_ref)
    expect(page.locator("#delivery")).to_have_count(0)  # not before the committee approves
    page.context.close()
    assert made.case_id
    approve(web_system, made.case_id)
    deliver(web_system, lang, made.case_ref)
    link = survey_link(web_system, made.case_id)
    assert link.startswith(web_system.url + "/surveys/")  # the link opens the web app
    survey = web_system.visit(lang, link.removeprefix(web_system.url))
    expect_language(survey, lang)
    expect(survey.locator("fieldset.rating legend").first).to_contain_text(
        {"ar": "ما مدى رضاك عن الخدمة؟", "en": "How satisfied are you with the service?"}[lang]
    )
    shoot(survey, "public-survey")
    answer_survey(web_system, lang, link, 5, 9, "خدمة ممتازة")
    again = web_system.visit(lang, link.removeprefix(web_system.url))
    expect(again.locator("h1")).to_have_text(
        {"ar": "تمت الإجابة على هذا الاستبيان", "en": "This survey was answered"}[lang]
    )


def token(web: WebSystem, username: str) -> dict[str, str]:
    """A bearer header for the person (a role's person, or a committee seat)."""
    answer = httpx.post(
        web.system.services["identity"].url + "/oauth/token",
        data={"grant_type": "password", "username": username, "password": web.passwords[username]},
    )
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def call(headers: dict[str, str], method: str, url: str, **kw: Any) -> Any:
    """The service's answer, asked again while the case has not reached it (404, 409)."""
    deadline = time.monotonic() + 20
    while True:
        response = httpx.request(method, url, headers=headers, timeout=10, **kw)
        if response.is_success:
            return response.json()
        assert response.status_code in (404, 409) and time.monotonic() < deadline, (
            f"{method} {url}: {response.status_code} {response.text[:300]}"
        )
        time.sleep(0.2)


def wait_until(headers: dict[str, str], url: str, key: str, wanted: str) -> None:
    while call(headers, "GET", url).get(key) != wanted:
        time.sleep(0.2)


def survey_link(web: WebSystem, case_id: str, timeout: float = 20.0) -> str:
    """The link the applicant was sent (the surveys' logged outbox)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        link = invitation_links(web.system.surveys_outbox).get(case_id)
        if link:
            return link
        time.sleep(0.2)
    raise AssertionError(f"no invitation for {case_id}")


def approve(web: WebSystem, case_id: str) -> None:
    """The verifier confirms and three seats approve, through the services' APIs."""
    urls = {name: process.url for name, process in web.system.services.items()}
    verifier, chair = token(web, STAFF[VERIFIER]), token(web, "chair")
    verification = f"{urls['verification']}/verifications/{case_id}"
    call(verifier, "GET", verification)
    call(verifier, "POST", verification + "/confirmation", json={})
    committee = urls["committee"]
    wait_until(chair, f"{committee}/cases/{case_id}", "verification_outcome", "verified")
    sitting = call(
        chair,
        "POST",
        f"{committee}/sittings",
        json={"association_id": "sidr", "members_present": list(PRESENT)},
    )
    on_case = f"{committee}/sittings/{sitting['sitting_id']}/cases/{case_id}"
    for seat in PRESENT:
        call(token(web, seat), "POST", on_case + "/votes", json={"vote": "approve"})
    call(
        chair,
        "POST",
        on_case + "/decision",
        json={"decision": "approved", "reasons": ["يستوفي الشروط"]},
    )
    desk = token(web, STAFF[FRONT_DESK])
    wait_until(desk, f"{urls['intake']}/cases/{case_id}", "status", "approved")


def test_the_desk_corrects_what_verification_listed(web_system: WebSystem, lang: str) -> None:
    expired = {"national_id_card": {**VALID_CARD, "expires_on": "2020-01-01"}}
    made = new_request(
        web_system,
        lang,
        "sidr",
        "seedlings",
        "interview",
        simulated_applicant(),
        SEEDLINGS[0],
        expired,
    )
    assert made.case_id
    urls = {name: process.url for name, process in web_system.system.services.items()}
    verifier = token(web_system, STAFF[VERIFIER])
    verification = f"{urls['verification']}/verifications/{made.case_id}"
    call(verifier, "GET", verification)
    call(verifier, "POST", verification + "/confirmation", json={})
    desk = token(web_system, STAFF[FRONT_DESK])
    wait_until(desk, f"{urls['intake']}/cases/{made.case_id}", "status", "discrepancies")
    page = open_case(web_system, lang, made.case_ref)
    form = page.locator("#correct form")
    expect(form).to_be_visible()
    form.locator("input[name='doc.national_id_card.number']").fill(VALID_CARD["number"])
    form.locator("input[name='doc.national_id_card.expires_on']").fill(VALID_CARD["expires_on"])
    form.locator("input[name=attested]").check()
    form.locator("button[type=submit]").click()
    expect(page.locator(".flash.ok")).to_be_visible()
    expect(page.locator(".case-status .badge")).not_to_have_attribute(
        "data-status", "discrepancies"
    )
